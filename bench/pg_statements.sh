#!/usr/bin/env bash
# PostgreSQL's own CPU per call for the statement sequences a point query costs, measured
# with pgbench (simple protocol, one client) on the local server: the reference server's
# three round trips (BEGIN; SELECT; ROLLBACK), the same in one message, and dbward's
# steady-state call (BEGIN, the LOCK TABLE of the relations the query names, the guard of a
# kept resolution answer, DECLARE, the guard again, FETCH, ROLLBACK, pg_advisory_unlock_all)
# in one message; also as it was before the lock and the second guard, and with no guard.
# (dbward prepares its guard once per session; pgbench cannot, so the guard here is parsed
# and planned on every call: an upper bound. bench/cpu.sh measures the real call.)
# CPU is read from the postmaster's reaped-children counters (/proc/PID/stat cutime +
# cstime), so the backends' whole lives count; ratios are against the reference sequence
# in the same run. Needs the local PostgreSQL and pgbench, run as a user that can read
# the postmaster's /proc entry. Usage: bench/pg_statements.sh [CALLS per sequence, default 8000]
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-8000}"
db="dbward_pgstmt_bench_$$"
work=$(mktemp -d)
trap 'psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT
. bench/servers_db.sh
servers_db "$db"
datadir=$(psql -h 127.0.0.1 -U postgres -Atc "SHOW data_directory")
pm=$(head -1 "$datadir/postmaster.pid")
fp="pg_catalog.pg_current_snapshot()::pg_catalog.text OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.current_schemas(true)::pg_catalog.text OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) CURRENT_USER::pg_catalog.text"
# The guard as dbward sends it, here comparing with the session's own fingerprint.
guard="SELECT 1 OPERATOR(pg_catalog./) (CASE WHEN $fp OPERATOR(pg_catalog.=) ($fp) THEN 1 ELSE 0 END)"
q="SELECT hostname, os, status FROM servers WHERE id = :id"
cursor="DECLARE dbward_cursor NO SCROLL CURSOR FOR $q\\; FETCH FORWARD 1001 FROM dbward_cursor"
end="ROLLBACK\\; SELECT pg_catalog.pg_advisory_unlock_all()"
mk() { printf '\\set id random(1, 20000)\n%s\n' "$2" > "$work/$1.pgb"; }
mk reference "BEGIN TRANSACTION READ ONLY;
$q;
ROLLBACK;"
mk reference_one_message "BEGIN READ ONLY\\; $q\\; ROLLBACK;"
decl="DECLARE dbward_cursor NO SCROLL CURSOR FOR $q"
fetch="FETCH FORWARD 1001 FROM dbward_cursor"
mk dbward_steady "BEGIN READ ONLY\\; LOCK TABLE public.servers IN ACCESS SHARE MODE\\; $guard\\; $decl\\; $guard\\; $fetch\\; $end;"
mk dbward_before_lock "BEGIN READ ONLY\\; $guard\\; $cursor\\; $end;"
mk dbward_without_guard "BEGIN READ ONLY\\; $cursor\\; $end;"
cpu() { awk '{print $16 + $17}' "/proc/$pm/stat"; }
ticks=$(getconf CLK_TCK)
declare -A us
for round in 1 2 3; do
  for s in reference reference_one_message dbward_steady dbward_before_lock dbward_without_guard; do
    a=$(cpu)
    pgbench -n -h 127.0.0.1 -U postgres -M simple -f "$work/$s.pgb" -t "$calls" -c 1 "$db" >/dev/null 2>&1
    sleep 0.3
    b=$(cpu)
    us[$s]="${us[$s]:-} $(( (b - a) * 1000000 / ticks / calls ))"
  done
done
median() { tr ' ' '\n' | grep . | sort -n | sed -n 2p; }
ref=$(echo "${us[reference]}" | median)
echo "| sequence (PostgreSQL CPU per call, median of 3) | us | / reference |"
echo "|---|---|---|"
for s in reference reference_one_message dbward_steady dbward_before_lock dbward_without_guard; do
  m=$(echo "${us[$s]}" | median)
  echo "| $s | $m | $(awk -v a="$m" -v b="$ref" 'BEGIN{printf "%.2fx", a/b}') |"
done
