#!/usr/bin/env bash
# Throughput and latency with SigV4 verification and policy checks on (--auth)
# and off, the same workload from aws-sdk-dynamodb (which signs every request):
#   bench/auth.sh [--concurrency 16] [--ops 10000]
# Prints strata-loadgen's table; the second target's ratios are auth on vs off.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet --bin strata --bin strata-loadgen
work=$(mktemp -d)
pids=()
cleanup() {
  # Stopped by PID (never by name: other people's processes share the machine).
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/users.json" <<'JSON'
{"users": [{"name": "loadgen", "access_key_id": "AKIDSTRATA", "secret_access_key": "secret",
  "policy": {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "arn:aws:dynamodb:*:*:table/loadgen*"},
    {"Effect": "Deny", "Action": "dynamodb:DeleteTable", "Resource": "*"}]}}]}
JSON
"$root/target/release/strata" serve --port 8011 --data "$work/off" >"$work/off.log" 2>&1 &
pids+=($!)
"$root/target/release/strata" serve --port 8012 --data "$work/on" --auth "$work/users.json" >"$work/on.log" 2>&1 &
pids+=($!)
for port in 8011 8012; do
  for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.25; done
done
"$root/target/release/strata-loadgen" --client sdk --phases put,get-strong,query \
  --target auth-off=http://127.0.0.1:8011 --target auth-on=http://127.0.0.1:8012 "$@"
