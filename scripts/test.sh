#!/usr/bin/env bash
# Every test of the project: unit, property, contract and end-to-end tests, in local mode and
# against the AWS APIs emulated by moto_server on 127.0.0.1.
# Usage: scripts/test.sh    (needs a Rust toolchain and python3; installs moto into .venv-moto)
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
moto_pid=""
cleanup() {
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
  rm -f "$log"
}
trap cleanup EXIT

echo "== formatting"
cargo fmt --all -- --check

echo "== moto_server (the AWS APIs, on loopback)"
if ! .venv-moto/bin/python -c 'import moto, flask' 2>/dev/null; then
  rm -rf .venv-moto
  python3 -m venv .venv-moto
  .venv-moto/bin/pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
fi
mkdir -p target
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
.venv-moto/bin/python scripts/moto_serial.py 127.0.0.1 "$port" > target/moto.log 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then break; fi
  sleep 0.1
done
export HOOKLINE_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
echo "moto_server on $HOOKLINE_TEST_AWS_ENDPOINT"

echo "== tests (unit, property, port contracts on SQLite and DynamoDB/SQS/Scheduler, end to end)"
cargo test --workspace --locked 2>&1 | tee "$log"

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
