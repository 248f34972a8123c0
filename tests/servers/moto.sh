#!/usr/bin/env bash
# moto's S3 server on 127.0.0.1:${MOTO_PORT:-5000}:  tests/servers/moto.sh start [BUCKET…] | stop
# (served by moto_atomic.py: moto with its mutating requests serialized, so a
# conditional create is atomic as on S3)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${MOTO_PORT:-5000}
venv="$root/.venv-moto"
state="$root/.tmp/moto"
mkdir -p "$state"
case "${1:-}" in
start)
  shift
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "moto: installing pinned venv in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/servers/moto-requirements.txt"
  fi
  if ! curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then
    nohup "$venv/bin/python" "$root/tests/servers/moto_atomic.py" 127.0.0.1 "$port" >"$state/moto.log" 2>&1 &
    echo $! >"$state/pid"
    for _ in $(seq 1 60); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.25; done
    curl -s -o /dev/null "http://127.0.0.1:$port/" || { echo "moto failed to start"; tail -20 "$state/moto.log"; exit 1; }
    echo "moto: S3 on http://127.0.0.1:$port (pid $(cat "$state/pid"))"
  fi
  for bucket in "$@"; do "$venv/bin/python" "$root/localstack/make_bucket.py" "http://127.0.0.1:$port" "$bucket"; done
  ;;
stop)
  if [ -f "$state/pid" ]; then
    kill "$(cat "$state/pid")" 2>/dev/null || true
    rm -f "$state/pid"
    echo "moto: stopped"
  fi
  ;;
*) echo "usage: $0 start [BUCKET…] | stop" >&2; exit 2 ;;
esac
