#!/usr/bin/env bash
# MCP point-query throughput and latency (stdio, HTTP; 8 and 32 clients) beside the same
# query run directly with sqlx, in one run. Needs the local PostgreSQL. Usage:
#   bench/mcp.sh [SECONDS per measurement, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
db="dbward_mcp_bench_$$"
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" >/dev/null
trap 'psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
psql -q -h 127.0.0.1 -U postgres -d "$db" -c "
  CREATE TABLE servers AS SELECT g AS id, 'srv-' || g AS hostname FROM generate_series(1, 1000) g;
  ALTER TABLE servers ADD PRIMARY KEY (id);" >/dev/null
cargo build -q --release --bin dbward --example mcp_bench
target/release/examples/mcp_bench target/release/dbward "postgresql://postgres@127.0.0.1:5432/$db" "${1:-5}"
