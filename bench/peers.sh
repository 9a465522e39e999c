#!/usr/bin/env bash
# dbward beside its peers through the official Python MCP SDK, in one run on the same
# machine and database: sequential p50/p99, CPU per call (server, PostgreSQL, client), 8
# stdio sessions, HTTP with 8 and 32 clients, cold start; ratios to the reference server.
# Installs @modelcontextprotocol/server-postgres@0.6.2 and @bytebase/dbhub@0.21.2 from npm
# and the mcp SDK from PyPI under target/ (never committed). Needs the local PostgreSQL.
# The servers take turns over ROUNDS rounds; ratios are per round (median and range).
# BENCH_WRITES_PER_S=N and BENCH_CATALOG_VERSION=1 as in bench/cpu.sh (bench/db_in_use.sh).
# Usage: bench/peers.sh [SECONDS per measurement, default 5] [only: dbward|dbhub|server-postgres]
#   [ROUNDS, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/peers_install.sh
db="dbward_peers_bench_$$"
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
"$venv/bin/python" bench/peers.py --dbward target/release/dbward --db "$db" --peers "$peers" \
  --seconds "${1:-5}" --only "${2:-}" --rounds "${3:-3}"
