#!/usr/bin/env bash
# Starts LocalStack's S3 on 127.0.0.1:${LOCALSTACK_PORT:-4566}, on the host (no Docker),
# and creates the buckets named as arguments. Installs its own pinned venv on first use.
#   localstack/start.sh strata-test        # then: STRATA_STORE=s3://strata-test ...
# Stop it with localstack/stop.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${LOCALSTACK_PORT:-4566}
venv="$root/.venv-localstack"
state="$root/.tmp/localstack"
mkdir -p "$state"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import localstack' 2>/dev/null; then
  echo "localstack: installing pinned venv in $venv (about 20 s)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/localstack/requirements.txt"
fi
if curl -sf "http://127.0.0.1:$port/_localstack/health" >/dev/null 2>&1; then
  echo "localstack: already running on 127.0.0.1:$port"
else
  # The hypercorn gateway: LocalStack 4.13.1's default (twisted) gateway ignores the host in
  # GATEWAY_LISTEN and binds every interface; hypercorn binds 127.0.0.1 only.
  GATEWAY_SERVER=hypercorn GATEWAY_LISTEN=127.0.0.1:$port SERVICES=s3 EAGER_SERVICE_LOADING=1 DNS_ADDRESS=0 DISABLE_EVENTS=1 \
    LOCALSTACK_TELEMETRY_DISABLED=1 SKIP_SSL_CERT_DOWNLOAD=1 FILESYSTEM_ROOT="$state" \
    LOCALSTACK_VOLUME_DIR="$state/volume" \
    nohup "$venv/bin/python" -m localstack.runtime.main >"$state/localstack.log" 2>&1 &
  echo $! >"$state/pid"
  for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$port/_localstack/health" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -sf "http://127.0.0.1:$port/_localstack/health" >/dev/null || { echo "localstack failed to start; log:"; tail -20 "$state/localstack.log"; exit 1; }
  echo "localstack: S3 on http://127.0.0.1:$port (pid $(cat "$state/pid"))"
fi
for bucket in "$@"; do
  "$venv/bin/python" "$root/localstack/make_bucket.py" "http://127.0.0.1:$port" "$bucket"
done
