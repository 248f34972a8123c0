#!/usr/bin/env bash
# Strata's whole test suite, from a fresh machine:
#   ./tests/run.sh
# Installs what it needs (pinned Python venvs for LocalStack and moto; Rust
# crates through cargo), starts LocalStack and moto's S3 servers on 127.0.0.1,
# runs lint and every test against memory, local-filesystem, LocalStack and
# moto stores (the console's tests in Debian's headless Chromium, installed
# with apt-get when missing), then the differential test against DynamoDB Local 3.3.0 (Java
# 17 and npm needed; tests/differential/run.sh), and stops the servers
# whatever happens.
#
# Extra S3 endpoints (MinIO, AWS…) join the engine suite through
#   STRATA_TEST_S3_EXTRA="minio=http://127.0.0.1:9000/bucket"
# (bucket must exist; credentials from the usual AWS variables are not used:
# the harness signs with test/test, fine for MinIO in dev mode).
# STRATA_SKIP_LINT=1 skips cargo fmt --check and clippy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bucket=strata-test
ls_port=${LOCALSTACK_PORT:-4566}
moto_port=${MOTO_PORT:-5000}

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }

cleanup() {
  "$root/localstack/stop.sh" || true
  "$root/tests/servers/moto.sh" stop || true
}
trap cleanup EXIT INT TERM

echo "== starting S3 servers"
"$root/localstack/start.sh" "$bucket"
"$root/tests/servers/moto.sh" start "$bucket"

export STRATA_TEST_S3="localstack=http://127.0.0.1:$ls_port/$bucket,moto=http://127.0.0.1:$moto_port/$bucket${STRATA_TEST_S3_EXTRA:+,$STRATA_TEST_S3_EXTRA}"
echo "== S3 backends: $STRATA_TEST_S3"

if [ "${STRATA_SKIP_LINT:-0}" != 1 ]; then
  echo "== cargo fmt --check, cargo clippy"
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

echo "== Lambda: SAM template and arm64 function builds"
if [ ! -x "$root/.venv-lambda/bin/cargo-lambda" ] || [ ! -x "$root/.venv-lambda/bin/sam" ]; then
  python3 -m venv "$root/.venv-lambda"
  "$root/.venv-lambda/bin/pip" install -q --disable-pip-version-check -r "$root/tests/lambda-requirements.txt"
fi
SAM_CLI_TELEMETRY=0 "$root/.venv-lambda/bin/sam" validate --lint -t "$root/template.yaml"
"$root/.venv-lambda/bin/python" "$root/tests/check_template.py" 2>&1 | grep -v "unpublished metrics"
if rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu; then
  PATH="$root/.venv-lambda/bin:$PATH" cargo lambda build --release --arm64 --bin strata-api --bin strata-compactor --bin strata-replicator --bin strata-exporter
  for f in strata-api strata-compactor strata-replicator strata-exporter; do
    echo "lambda: $f bootstrap (arm64, stripped): $(stat -c %s "$root/target/lambda/$f/bootstrap") bytes"
  done
else
  echo "lambda: WARNING: the aarch64-unknown-linux-gnu standard library could not be installed here; arm64 build skipped" >&2
fi

echo "== cargo test"
mkdir -p "$root/.tmp"
set +e
cargo test --workspace 2>&1 | tee "$root/.tmp/cargo-test.log"
cargo_status=${PIPESTATUS[0]}
set -e

echo "== end-to-end: boto3 against strata serve (local filesystem and LocalStack stores)"
# (Re)install when the pinned requirements change.
if ! cmp -s "$root/tests/e2e/requirements.txt" "$root/.venv-e2e/requirements.installed" 2>/dev/null; then
  [ -x "$root/.venv-e2e/bin/python" ] || python3 -m venv "$root/.venv-e2e"
  "$root/.venv-e2e/bin/pip" install -q --disable-pip-version-check -r "$root/tests/e2e/requirements.txt"
  cp "$root/tests/e2e/requirements.txt" "$root/.venv-e2e/requirements.installed"
fi
# The console's browser tests drive Debian's Chromium through its ChromeDriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "== installing Debian's chromium and chromium-driver (the console's browser tests)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -x "$root/.venv-awscli/bin/aws" ]; then
  python3 -m venv "$root/.venv-awscli"
  "$root/.venv-awscli/bin/pip" install -q --disable-pip-version-check -r "$root/tests/e2e/awscli-requirements.txt"
fi
cargo build --bin strata --quiet
set +e
(cd "$root/tests/e2e" && STRATA_BIN="$root/target/debug/strata" STRATA_E2E_STORES=file,localstack \
  STRATA_AWS_CLI="$root/.venv-awscli/bin/aws" STRATA_CARGO_LAMBDA="$root/.venv-lambda/bin/cargo-lambda" \
  PATH="$root/.venv-lambda/bin:$PATH" \
  STRATA_E2E_S3_ENDPOINT="http://127.0.0.1:$ls_port" STRATA_E2E_MOTO_ENDPOINT="http://127.0.0.1:$moto_port" \
  STRATA_E2E_BUCKET="$bucket" STRATA_E2E_REQUIRE_BROWSER=1 \
  "$root/.venv-e2e/bin/python" -m pytest -q -p no:cacheprovider 2>&1 | tee "$root/.tmp/e2e.log")
e2e_status=${PIPESTATUS[0]}
set -e

echo "== differential: the same seeded requests to DynamoDB Local 3.3.0 and strata serve"
set +e
"$root/tests/differential/run.sh" 5 400 2>&1 | tee "$root/.tmp/differential.log"
diff_status=${PIPESTATUS[0]}
set -e

count() { grep -Eo "$1" "$2" 2>/dev/null || true; }
passed=$(count '^test result: [A-Za-z]+\. [0-9]+ passed' "$root/.tmp/cargo-test.log" | awk '{s+=$4} END {print s+0}')
failed=$(count '^test result: .* [0-9]+ failed' "$root/.tmp/cargo-test.log" | { grep -Eo '[0-9]+ failed' || true; } | awk '{s+=$1} END {print s+0}')
py_passed=$(count '[0-9]+ passed' "$root/.tmp/e2e.log" | tail -1 | awk '{print $1+0}')
py_failed=$(count '[0-9]+ (failed|error)' "$root/.tmp/e2e.log" | tail -1 | awk '{print $1+0}')
echo "== summary: cargo test $passed passed, $failed failed; e2e ${py_passed:-0} passed, ${py_failed:-0} failed"
diff_line=$(grep -E '^identical:' "$root/.tmp/differential.log" || echo "differential did not finish")
echo "== differential: $diff_line"
echo "$((passed + ${py_passed:-0})) passed, $((failed + ${py_failed:-0})) failed"
[ "$cargo_status" = 0 ] && [ "$e2e_status" = 0 ] && [ "$diff_status" = 0 ]
