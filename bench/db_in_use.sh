# Sourced by the bench scripts after `servers_db DB` and a release build of dbward:
# `db_in_use DB` then, from the environment,
# - BENCH_CATALOG_VERSION=1: installs dbward's catalog version in DB
#   (`dbward setup-role --catalog-version`, as the superuser postgres);
# - BENCH_WRITES_PER_S=N: starts a pgbench writer committing N small write transactions a
#   second in another database of the same cluster (a database in use: every commit
#   changes the snapshot a kept resolution answer is otherwise fingerprinted with).
# `db_in_use_end` stops the writer and drops its database (call it from the EXIT trap).
writer=
writer_db=
db_in_use() {
  if [ "${BENCH_CATALOG_VERSION:-0}" = 1 ]; then
    target/release/dbward setup-role --catalog-version |
      psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d "$1" >/dev/null
    echo "dbward's catalog version is installed in $1" >&2
  fi
  if [ "${BENCH_WRITES_PER_S:-0}" != 0 ]; then
    writer_db="${1}_writes"
    psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $writer_db" >/dev/null
    pgbench -i -q -h 127.0.0.1 -U postgres "$writer_db" >/dev/null 2>&1
    pgbench -n -h 127.0.0.1 -U postgres -b simple-update -c 1 -R "$BENCH_WRITES_PER_S" \
      -T 86400 "$writer_db" >/dev/null 2>&1 &
    writer=$!
    echo "a writer commits $BENCH_WRITES_PER_S transactions/s in database $writer_db" >&2
  fi
}
db_in_use_end() {
  if [ -n "$writer" ]; then kill "$writer" 2>/dev/null || true; wait "$writer" 2>/dev/null || true; fi
  if [ -n "$writer_db" ]; then
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $writer_db WITH (FORCE)" >/dev/null
  fi
}
