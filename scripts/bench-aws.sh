#!/usr/bin/env bash
# The AWS measurements of the README: requests and cost per first-try webhook, a 10-message
# webhook-deliver batch against a 200 ms receiver, init time and size of each Lambda binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/moto.sh
trap stop_moto EXIT
cargo build --release --locked -p trigger-intake -p scenario-api -p stats-query -p scenario-advance -p webhook-deliver
start_moto
cargo bench --locked -p hookline-e2e --bench aws
