# Sourced by scripts/test.sh and scripts/bench-aws.sh: installs moto[server] into .venv-moto
# (once), starts it on a free 127.0.0.1 port, one request at a time (scripts/moto_serial.py),
# exports HOOKLINE_TEST_AWS_ENDPOINT and stops it when the calling script exits.
moto_pid=""
stop_moto() {
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
}
start_moto() {
  if ! .venv-moto/bin/python -c 'import moto, flask, werkzeug' 2>/dev/null; then
    rm -rf .venv-moto
    python3 -m venv .venv-moto
    .venv-moto/bin/pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
  fi
  mkdir -p target
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  .venv-moto/bin/python scripts/moto_serial.py 127.0.0.1 "$port" > target/moto.log 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 150); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then break; fi
    sleep 0.1
  done
  export HOOKLINE_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
  echo "moto_server on $HOOKLINE_TEST_AWS_ENDPOINT"
}
