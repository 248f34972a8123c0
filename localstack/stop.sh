#!/usr/bin/env bash
# Stops the LocalStack started by localstack/start.sh.
root=$(cd "$(dirname "$0")/.." && pwd)
pidfile="$root/.tmp/localstack/pid"
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null && for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "localstack: stopped"
fi
