#!/usr/bin/env bash
# Every test of the project: unit, property, contract and end-to-end tests.
# Usage: scripts/test.sh        (from anywhere; needs only a Rust toolchain)
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== formatting"
cargo fmt --all -- --check

echo "== tests (unit, property, port contracts on SQLite, end to end on the real binary)"
cargo test --workspace --locked 2>&1 | tee "$log"

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
