#!/usr/bin/env bash
# Every test and check of the project: formatting; the SAM template (cfn-lint, sam validate) and
# the Lambda builds (cargo lambda, arm64); unit, property, contract and end-to-end tests, in
# local mode and against the AWS APIs emulated by moto on 127.0.0.1 (webhook signatures checked by
# the reference verifiers, PyPI standardwebhooks and svix); schemathesis against the
# OpenAPI document of a running `hookline serve` (scripts/schemathesis.sh).
# Usage: scripts/test.sh    (needs a Rust toolchain and python3; installs moto, aws-sam-cli,
#                            cfn-lint, cargo-lambda, schemathesis, standardwebhooks and svix
#                            into ignored .venv-* folders, and Debian's chromium and
#                            chromium-driver with apt-get when they are missing;
#                            as root, or where unprivileged user namespaces are allowed)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/moto.sh
source scripts/deploy-checks.sh
log=$(mktemp)
trap 'stop_moto; rm -f "$log"' EXIT

echo "== formatting"
cargo fmt --all -- --check

deploy_checks

echo "== moto (the AWS APIs, on loopback)"
start_moto

echo "== the reference webhook verifiers (standardwebhooks, svix: .venv-webhooks)"
if ! .venv-webhooks/bin/python -c 'import standardwebhooks, svix' >/dev/null 2>&1; then
  rm -rf .venv-webhooks
  python3 -m venv .venv-webhooks
  .venv-webhooks/bin/pip install --quiet --disable-pip-version-check standardwebhooks svix
fi
export HOOKLINE_TEST_PYTHON="$PWD/.venv-webhooks/bin/python"

echo "== headless Chromium and chromedriver (Debian packages) for the console's browser test"
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

echo "== tests (unit, property, port contracts on SQLite and DynamoDB/SQS/Scheduler, end to end, the console in Chromium)"
cargo test --workspace --locked 2>&1 | tee "$log"

echo "== schemathesis (the OpenAPI document against hookline serve, in a loopback-only network namespace)"
scripts/schemathesis.sh

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
