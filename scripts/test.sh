#!/usr/bin/env bash
# Every test of the project: unit, property, contract and end-to-end tests, in local mode and
# against the AWS APIs emulated by moto on 127.0.0.1.
# Usage: scripts/test.sh    (needs a Rust toolchain and python3; installs moto into .venv-moto)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/moto.sh
log=$(mktemp)
trap 'stop_moto; rm -f "$log"' EXIT

echo "== formatting"
cargo fmt --all -- --check

echo "== moto (the AWS APIs, on loopback)"
start_moto

echo "== tests (unit, property, port contracts on SQLite and DynamoDB/SQS/Scheduler, end to end)"
cargo test --workspace --locked 2>&1 | tee "$log"

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
