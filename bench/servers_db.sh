# Sourced by the bench scripts: servers_db NAME creates database NAME on the local
# PostgreSQL with the bench table `servers` (20,000 rows, primary key, analyzed), the
# table every PostgreSQL point-query bench reads. The caller drops it (trap).
servers_db() {
  psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $1" >/dev/null
  psql -q -h 127.0.0.1 -U postgres -d "$1" -c "
    CREATE TABLE servers AS SELECT g AS id, 'srv-' || g AS hostname,
      (ARRAY['debian', 'ubuntu', 'rhel'])[1 + g % 3] AS os,
      (ARRAY['active', 'maintenance', 'retired'])[1 + g % 3] AS status
    FROM generate_series(1, 20000) g;
    ALTER TABLE servers ADD PRIMARY KEY (id); ANALYZE servers;" >/dev/null
}
