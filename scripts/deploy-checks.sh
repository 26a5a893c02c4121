# Sourced by scripts/test.sh: the deploy checks of infra/template.yaml and the Lambda builds.
# Installs aws-sam-cli + cfn-lint (.venv-sam) and cargo-lambda with zig (.venv-lambda), once.
deploy_checks() {
  export SAM_CLI_TELEMETRY=0
  if ! .venv-sam/bin/sam --version >/dev/null 2>&1 || ! .venv-sam/bin/cfn-lint --version >/dev/null 2>&1; then
    rm -rf .venv-sam
    python3 -m venv .venv-sam
    .venv-sam/bin/pip install --quiet --disable-pip-version-check aws-sam-cli cfn-lint
  fi
  if ! .venv-lambda/bin/cargo-lambda lambda --version >/dev/null 2>&1; then
    rm -rf .venv-lambda
    python3 -m venv .venv-lambda
    .venv-lambda/bin/pip install --quiet --disable-pip-version-check cargo-lambda
  fi
  echo "== cfn-lint infra/template.yaml"
  .venv-sam/bin/cfn-lint infra/template.yaml
  echo "== sam validate --lint"
  .venv-sam/bin/sam validate --lint --template-file infra/template.yaml
  echo "== cargo lambda build --release --arm64 (every function)"
  rustup target add aarch64-unknown-linux-gnu >/dev/null
  PATH="$PWD/.venv-lambda/bin:$PATH" cargo lambda build --release --arm64 --locked \
    -p trigger-intake -p scenario-api -p stats-query -p scenario-advance -p webhook-deliver
  for f in trigger-intake scenario-api stats-query scenario-advance webhook-deliver; do
    bootstrap="target/lambda/$f/bootstrap"
    [ -f "$bootstrap" ] || { echo "missing $bootstrap"; return 1; }
    awk -v f="$f" -v b="$bootstrap" -v s="$(stat -c %s "$bootstrap")" 'BEGIN { printf "  %-18s %s  %6.2f MB\n", f, b, s / 1e6 }'
  done
}
