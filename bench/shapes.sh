#!/usr/bin/env bash
# PostgreSQL calls of different shapes (a point query by an integer parameter, by a
# string parameter whose type the database infers, one that finds no row, and an
# explain_query of a point query): wall time, dbward's CPU and PostgreSQL's CPU per call
# over a bare JSON-RPC pipe, against BASELINE (another dbward binary, e.g. one built from main and copied aside) in
# the same run. Needs the local PostgreSQL. Usage:
#   bench/shapes.sh [CALLS per run, default 1000] [BASELINE binary]
set -euo pipefail
cd "$(dirname "$0")/.."
db="dbward_shapes_bench_$$"
trap 'psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
. bench/servers_db.sh
servers_db "$db"
cargo build -q --release --bin dbward
args=(--dbward target/release/dbward --pg-db "$db" --calls "${1:-1000}")
if [ -n "${2:-}" ]; then args+=(--baseline "$2"); fi
python3 bench/shapes.py "${args[@]}"
