#!/usr/bin/env bash
# Every test of the project: unit, property, contract and end-to-end tests.
# Usage: scripts/test.sh        (from anywhere; needs only a Rust toolchain)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== formatting"
cargo fmt --all -- --check

echo "== tests (unit, property, port contracts on SQLite, end to end on the real binary)"
cargo test --workspace --locked
