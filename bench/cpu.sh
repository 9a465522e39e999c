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
# commit changes the snapshot a kept resolution answer is fingerprinted with).
# With BENCH_CATALOG_VERSION=1, dbward's catalog version (`dbward setup-role
# --catalog-version`) is installed in the bench database first, so kept answers are
# fingerprinted with it instead of the snapshot.
# Needs the local PostgreSQL (and pgbench for BENCH_WRITES_PER_S). Usage:
#   [BENCH_WRITES_PER_S=N] [BENCH_CATALOG_VERSION=1] bench/cpu.sh [CALLS per run, default 3000] [BASELINE binary]
set -euo pipefail
cd "$(dirname "$0")/.."
db="dbward_cpu_bench_$$"
side="dbward_cpu_writes_$$"
writer=
cleanup() {
  if [ -n "$writer" ]; then kill "$writer" 2>/dev/null || true; wait "$writer" 2>/dev/null || true; fi
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS $side WITH (FORCE)" >/dev/null
}
trap cleanup EXIT
. bench/servers_db.sh
servers_db "$db"
cargo build -q --release --bin dbward
if [ "${BENCH_CATALOG_VERSION:-0}" = 1 ]; then
  target/release/dbward setup-role --catalog-version | psql -q -h 127.0.0.1 -U postgres -d "$db" >/dev/null
  echo "dbward's catalog version is installed in $db" >&2
fi
if [ "${BENCH_WRITES_PER_S:-0}" != 0 ]; then
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $side" >/dev/null
  pgbench -i -q -h 127.0.0.1 -U postgres "$side" >/dev/null 2>&1
  pgbench -n -h 127.0.0.1 -U postgres -b simple-update -c 1 -R "$BENCH_WRITES_PER_S" \
    -T 86400 "$side" >/dev/null 2>&1 &
  writer=$!
  echo "a writer commits $BENCH_WRITES_PER_S transactions/s in database $side" >&2
fi
reference=target/bench-peers/node_modules/@modelcontextprotocol/server-postgres/dist/index.js
args=(--dbward target/release/dbward --pg-db "$db" --calls "${1:-3000}")
if [ -n "${2:-}" ]; then args+=(--baseline "$2"); fi
if [ -f "$reference" ] && command -v node >/dev/null; then args+=(--reference "$reference"); fi
python3 bench/cpu.py "${args[@]}"
