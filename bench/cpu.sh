#!/usr/bin/env bash
# dbward's own CPU (utime+stime) and voluntary context switches per point-query
# `execute_query` call, over a bare JSON-RPC stdio pipe, on the SQLite demo (the database
# costs almost nothing) and on PostgreSQL (`SELECT hostname, os, status FROM servers WHERE
# id = $1`, 20,000 rows, as bench/peers.sh), where the backends' CPU is read too. Audit
# on, the detector's call-rate threshold lifted. Ratios in the same run: against BASELINE (another dbward binary, e.g. one built
# from main and copied aside) and, on PostgreSQL, the reference server
# @modelcontextprotocol/server-postgres when bench/peers.sh has installed it.
# With BENCH_WRITES_PER_S=N, pgbench commits N small write transactions a second in
# another database of the same cluster during the whole run (a database in use: every
# commit changes the snapshot a kept resolution answer is fingerprinted with); with
# BENCH_CATALOG_VERSION=1, dbward's catalog version (`dbward setup-role
# --catalog-version`) is installed in the bench database first, so kept answers are
# fingerprinted with it instead (bench/db_in_use.sh).
# Needs the local PostgreSQL (and pgbench for BENCH_WRITES_PER_S). Usage:
#   [BENCH_WRITES_PER_S=N] [BENCH_CATALOG_VERSION=1] bench/cpu.sh [CALLS per run, default 3000] [BASELINE binary]
set -euo pipefail
cd "$(dirname "$0")/.."
db="dbward_cpu_bench_$$"
cleanup() {
  db_in_use_end
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
}
trap cleanup EXIT
. bench/servers_db.sh
. bench/db_in_use.sh
servers_db "$db"
cargo build -q --release --bin dbward
db_in_use "$db"
reference=target/bench-peers/node_modules/@modelcontextprotocol/server-postgres/dist/index.js
args=(--dbward target/release/dbward --pg-db "$db" --calls "${1:-3000}")
if [ -n "${2:-}" ]; then args+=(--baseline "$2"); fi
if [ -f "$reference" ] && command -v node >/dev/null; then args+=(--reference "$reference"); fi
python3 bench/cpu.py "${args[@]}"
