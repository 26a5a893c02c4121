#!/usr/bin/env bash
# The local soak (not part of scripts/test.sh): N events (the first argument; default 1,000,000)
# through the release `hookline serve`, against a receiver that fails 10 % of requests and hangs
# 1 % past the 15 s timeout, with the server killed (SIGKILL) every 60 s and started again; the
# client sends again every batch not answered in full. Then the checks of scripts/soak.py: one
# delivery per enrolled contact, accepted + pending + failed == passes in every sample, no
# envelope id accepted twice except across a kill (counted), RSS sampled per tenth of the run.
#
#   scripts/soak.sh 100000                    # 100,000 events
#   scripts/soak.sh 1000000 --kill-every 60   # further flags go to scripts/soak.py (--help)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-1000000}"
shift || true
cargo build --release -p hookline
exec python3 scripts/soak.py --events "$events" --binary target/release/hookline "$@"
