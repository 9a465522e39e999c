#!/usr/bin/env bash
# Starts PostgreSQL and MariaDB on this machine if they are not running, and waits until
# both accept connections. Used by .ci/run and by developers; safe to run twice.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
my_up() { mariadb-admin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1 || mysqladmin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }

if ! pg_up; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! my_up; then
  echo "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
for _ in $(seq 1 60); do
  if pg_up && my_up; then
    echo "PostgreSQL and MariaDB are up"
    exit 0
  fi
  sleep 1
done
pg_up || echo "PostgreSQL did not come up" >&2
my_up || echo "MariaDB did not come up" >&2
exit 1
