#!/usr/bin/env bash
# Peak RSS of a capped read: 1,000,000 rows with a 1,000-row cap versus a 1,000-row table,
# with the same query fetched whole (sqlx fetch_all) as the baseline dbward avoids. Then one
# value of 400 MB (a stored 100 MB value concatenated four times) under the default caps,
# against the same query fetched whole.
# Each case is a fresh process; figures are VmHWM in kB. Needs the local PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
db="dbward_mem_$$"
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $db" >/dev/null
trap 'psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null' EXIT
psql -q -h 127.0.0.1 -U postgres -d "$db" -c "
  CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, now() AS t FROM generate_series(1, 1000000) g;
  CREATE TABLE small AS SELECT * FROM big WHERE id <= 1000;
  CREATE TABLE blob AS SELECT repeat('x', 100000000) AS v;" >/dev/null
cargo build -q --release -p dbward-gateway --example peak_rss
bin=target/release/examples/peak_rss
url="postgresql://postgres@127.0.0.1:5432/$db"
small=$($bin "$url" "SELECT * FROM small" 1000)
big=$($bin "$url" "SELECT * FROM big" 1000)
whole=$($bin "$url" "SELECT * FROM big" 1000 whole)
value=$($bin "$url" "SELECT v || v || v || v AS big FROM blob" 1000 bytes)
value_whole=$($bin "$url" "SELECT v || v || v || v AS big FROM blob" 1000 whole)
kb() { sed -E 's/.*peak_rss_kb=([0-9]+).*/\1/' <<<"$1"; }
echo "1,000-row table, cap 1000:      $small"
echo "1,000,000-row table, cap 1000:  $big"
echo "1,000,000 rows fetched whole:   $whole"
awk -v s="$(kb "$small")" -v b="$(kb "$big")" -v w="$(kb "$whole")" 'BEGIN {
  printf "capped 1M / 1k peak RSS ratio: %.3f (difference %d kB)\n", b / s, b - s;
  printf "fetched-whole / capped ratio:  %.2f\n", w / b }'
echo "400 MB value, default caps:     $value"
echo "400 MB value fetched whole:     $value_whole"
awk -v s="$(kb "$small")" -v v="$(kb "$value")" -v w="$(kb "$value_whole")" 'BEGIN {
  printf "400 MB value / 1k-row table peak RSS ratio: %.3f (%d MB peak)\n", v / s, v / 1024;
  printf "fetched-whole / dbward ratio (400 MB value): %.1f\n", w / v }'
