#!/usr/bin/env bash
# dbward's start-up on PostgreSQL: spawn to the first query's result over a bare JSON-RPC
# pipe, and the process's CPU for it (rusage), with a fresh audit log and with a 50 MiB
# one; ratios to BASELINE (another dbward binary, e.g. one built from main and copied
# aside) in the same run. Needs the local PostgreSQL. Usage:
#   bench/start.sh [BASELINE binary] [RUNS, default 15]
set -euo pipefail
cd "$(dirname "$0")/.."
db="dbward_start_bench_$$"
trap 'psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
. bench/servers_db.sh
servers_db "$db"
cargo build -q --release --bin dbward
args=(--dbward target/release/dbward --db "$db" --runs "${2:-15}")
if [ -n "${1:-}" ]; then args+=(--baseline "$1"); fi
python3 bench/start.py "${args[@]}"
