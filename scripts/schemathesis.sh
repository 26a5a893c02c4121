#!/usr/bin/env bash
# The OpenAPI document against the real `hookline serve`: schemathesis with every check
# (stateful phase included), a fixed seed and a bounded number of examples. The server and the
# fuzzer run in a network namespace of their own with only loopback up (`unshare --net`), so
# no URL the fuzzer invents (the Test button, activated scenarios) can leave the machine.
# Usage: scripts/schemathesis.sh   (after `cargo build -p hookline`; installs schemathesis into
#                                   the ignored .venv-schemathesis)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv-schemathesis/bin/st --version >/dev/null 2>&1; then
  rm -rf .venv-schemathesis
  python3 -m venv .venv-schemathesis
  .venv-schemathesis/bin/pip install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
fi
bin=target/debug/hookline
[ -x "$bin" ] || cargo build --quiet -p hookline

if [ "${1:-}" != "--inside" ]; then
  exec unshare --net --map-root-user "$0" --inside
fi

# inside the namespace: loopback only
ip link set lo up
if ip route get 1.1.1.1 >/dev/null 2>&1; then
  echo "schemathesis: the namespace has a route out; refusing to fuzz" >&2
  exit 1
fi
dir=$(mktemp -d)
key="hk_schemathesis_$(date +%s%N)"
"$bin" serve --listen 127.0.0.1:18080 --db "$dir/fuzz.db" --api-key "1:$key" >"$dir/out" 2>"$dir/err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  if .venv-schemathesis/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:18080/healthz')" 2>/dev/null; then break; fi
  sleep 0.1
done
.venv-schemathesis/bin/st --config-file schemathesis.toml run http://127.0.0.1:18080/v1/openapi.json \
  --checks all -H "Authorization: Bearer $key" --seed 1 --max-examples 30 --workers 1 \
  --no-color
