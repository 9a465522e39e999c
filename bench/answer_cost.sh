#!/usr/bin/env bash
# What each server's answer to the same PostgreSQL point query costs the official Python
# MCP SDK, with the server taken out: answers recorded once from dbward and the peers of
# bench/peers.sh, then replayed (same bytes every call) to the SDK client; its own CPU per
# call, median over rounds, and the difference to the reference server's answer. Variants
# of dbward's answer without its outputSchema and without structuredContent/_meta tell
# those parts apart. Installs what bench/peers.sh installs. Needs the local PostgreSQL.
# Usage: bench/answer_cost.sh [ROUNDS, default 12] [CALLS per round, default 2000]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/peers_install.sh
db="dbward_answer_bench_$$"
trap 'psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
. bench/servers_db.sh
servers_db "$db"
cargo build -q --release --bin dbward
"$venv/bin/python" bench/answer_cost.py --dbward target/release/dbward --db "$db" --peers "$peers" \
  --rounds "${1:-12}" --calls "${2:-2000}"
