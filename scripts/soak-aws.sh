#!/usr/bin/env bash
# The AWS soak (not part of scripts/test.sh): N events (the first argument; default 10,000)
# through the Lambda functions' handlers on moto, each function run as its own processes (the
# `soak_worker` example of the tests crate) behind its event source mapping or API Gateway,
# played on 127.0.0.1; a random function process killed (SIGKILL) every few seconds and started
# again; SQS redelivers what a killed process left. Then the checks of scripts/soak_aws.py: one
# delivery per enrolled contact, accepted + pending + failed == passes in every sample, no
# envelope id accepted twice except across a webhook-deliver kill (counted), the receiver's
# distinct accepted ids equal to `accepted`.
#
#   scripts/soak-aws.sh 500                     # 500 events
#   scripts/soak-aws.sh 10000 --kill-every 3    # further flags go to scripts/soak_aws.py (--help)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000}"
shift || true
source scripts/moto.sh
trap stop_moto EXIT
cargo build -p hookline-e2e --example soak_worker
start_moto
PYTHONDONTWRITEBYTECODE=1 .venv-moto/bin/python scripts/soak_aws.py --events "$events" "$@"
