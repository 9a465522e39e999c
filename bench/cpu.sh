#!/usr/bin/env bash
# dbward's own CPU (utime+stime) and voluntary context switches per point-query
# `execute_query` call, over a bare JSON-RPC stdio pipe, on the SQLite demo (the database
# costs almost nothing) and on PostgreSQL (`SELECT hostname, os, status FROM servers WHERE
# id = $1`, 20,000 rows, as bench/peers.sh), where the backends' CPU is read too. Audit
# on, the detector's call-rate threshold lifted. Ratios in the same run: against BASELINE (another dbward binary, e.g. one built
# from main and copied aside) and, on PostgreSQL, the reference server
# @modelcontextprotocol/server-postgres when bench/peers.sh has installed it.
# Needs the local PostgreSQL. Usage:
#   bench/cpu.sh [CALLS per run, default 3000] [BASELINE binary]
set -euo pipefail
cd "$(dirname "$0")/.."
db="dbward_cpu_bench_$$"
trap 'psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
. bench/servers_db.sh
servers_db "$db"
cargo build -q --release --bin dbward
reference=target/bench-peers/node_modules/@modelcontextprotocol/server-postgres/dist/index.js
args=(--dbward target/release/dbward --pg-db "$db" --calls "${1:-3000}")
if [ -n "${2:-}" ]; then args+=(--baseline "$2"); fi
if [ -f "$reference" ] && command -v node >/dev/null; then args+=(--reference "$reference"); fi
python3 bench/cpu.py "${args[@]}"
