#!/usr/bin/env bash
# The soak (issue 19): N minutes (default 5) of mixed load against three
# `strata serve` on one store injecting faults, with kill -9s; prints the
# per-minute table (operations, outcomes, errors by kind, RSS, p99) and the
# anomalies the history checkers find (must be 0).
#   bench/soak.sh [MINUTES]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --quiet --bin strata
if [ ! -x "$root/.venv-e2e/bin/python" ]; then
  python3 -m venv "$root/.venv-e2e"
  "$root/.venv-e2e/bin/pip" install -q -r "$root/tests/e2e/requirements.txt"
fi
cd "$root/tests/e2e"
STRATA_BIN="$root/target/debug/strata" "$root/.venv-e2e/bin/python" soak.py "${1:-5}"
