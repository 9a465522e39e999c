//! Test fixtures on the real databases of this machine: PostgreSQL on 127.0.0.1:5432 (trust
//! auth), MariaDB on 127.0.0.1:3306 (see [`mysql`]) and SQLite files in a temp directory. Each test creates its own database and owner
//! role, so the tests connect as the database *owner*: only dbward stands between a query
//! and a write. A missing database server is a test failure, never a skip.

#![allow(dead_code)]

pub mod mysql;

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// A password distinctive enough to scan every output for.
pub const PASSWORD: &str = "Zq9-Unmistakable-Secret-7Kp";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique suffix for database and role names.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub const PG_ADMIN: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

pub async fn pg_admin() -> PgConnection {
    PgConnection::connect(PG_ADMIN).await.unwrap_or_else(|e| {
        panic!("PostgreSQL must be running on 127.0.0.1:5432 (run scripts/start-services.sh): {e}")
    })
}

/// Connects `gw` to the fixture's database by its URL; the connection id.
pub async fn pg_connect(gw: &dbward_gateway::Gateway, fx: &PgFixture) -> String {
    gw.connect(dbward_gateway::ConnectRequest::Url(
        secrecy::SecretString::from(fx.url()),
    ))
    .await
    .expect("connects")
    .id
    .to_string()
}

/// How many of dbward's FETCHes (where a call's statement runs; the DECLARE only opens the
/// cursor) are still active in database `db` after up to 5 s of waiting for none.
pub async fn pg_fetches_still_running(db: &str) -> i64 {
    let mut admin = pg_admin().await;
    let mut running = 1;
    for _ in 0..50 {
        running = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND query LIKE 'FETCH FORWARD % FROM dbward_cursor%' AND state = 'active'",
        )
        .bind(db)
        .fetch_one(&mut admin)
        .await
        .expect("activity");
        if running == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    running
}

/// The fixture CMDB plus a secrets table, as SQL.
pub const PG_FIXTURE: &str = r#"
CREATE TABLE departments (id serial PRIMARY KEY, name text NOT NULL UNIQUE, budget numeric(12,2));
COMMENT ON TABLE departments IS 'Organisational units';
CREATE TABLE servers (
  id serial PRIMARY KEY,
  hostname text NOT NULL,
  department_id int REFERENCES departments(id),
  status text NOT NULL DEFAULT 'active',
  cpu_cores int,
  ip inet,
  tags text[],
  meta jsonb
);
CREATE INDEX servers_department_idx ON servers(department_id);
CREATE TABLE applications (id serial PRIMARY KEY, name text NOT NULL, server_id int REFERENCES servers(id));
CREATE TABLE incidents (id serial PRIMARY KEY, server_id int REFERENCES servers(id), severity int, opened_at timestamptz, note text);
CREATE TABLE secrets (id serial PRIMARY KEY, service text, api_key text);
CREATE SEQUENCE ticket_seq;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
INSERT INTO departments (name, budget) VALUES ('Engineering', 1200000.50), ('Finance', 300000.00), ('Ops', 450000.25);
INSERT INTO servers (hostname, department_id, status, cpu_cores, ip, tags, meta)
  SELECT 'srv-' || g, 1 + g % 3, CASE WHEN g % 5 = 0 THEN 'retired' ELSE 'active' END, 2 + g % 16,
         ('10.0.' || (g / 250) || '.' || (g % 250))::inet, ARRAY['t' || (g % 4), 'rack' || (g % 7)],
         jsonb_build_object('rack', g % 7, 'os', CASE WHEN g % 2 = 0 THEN 'linux' ELSE 'bsd' END)
  FROM generate_series(1, 300) g;
INSERT INTO applications (name, server_id) SELECT 'app-' || g, 1 + g % 300 FROM generate_series(1, 200) g;
INSERT INTO incidents (server_id, severity, opened_at, note)
  SELECT 1 + g % 300, 1 + g % 4, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 hour', 'incident ' || g
  FROM generate_series(1, 1000) g;
INSERT INTO secrets (service, api_key) VALUES ('billing', 'sk_live_do_not_leak');
CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT nextval('ticket_seq')::int $$;
CREATE FUNCTION shout(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper($1) $$;
"#;

/// Drops databases and roles left by test processes that died (their pid is gone).
async fn drop_stale(admin: &mut PgConnection) {
    let names: Vec<(String, bool)> = sqlx::query_as(
        "SELECT datname::text, true FROM pg_database WHERE datname LIKE 'dbward_t\\_%' \
         UNION ALL SELECT rolname::text, false FROM pg_roles WHERE rolname LIKE 'dbward\\_%\\_%\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for (name, is_db) in names {
        let pid = name.rsplit('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let stmt = if is_db {
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        } else {
            format!("DROP ROLE IF EXISTS {name}")
        };
        let _ = admin.execute(sqlx::AssertSqlSafe(stmt)).await;
    }
}

/// Installs dbward's catalog version in database `db`, as the superuser
/// (`dbward setup-role --catalog-version`).
#[allow(dead_code)]
pub async fn pg_install_catalog_version(db: &str) {
    let mut su = PgConnection::connect(&format!("postgresql://postgres@127.0.0.1:5432/{db}"))
        .await
        .expect("superuser");
    sqlx::raw_sql(dbward_gateway::backends::postgres::resolve::CATALOG_VERSION_SQL)
        .execute(&mut su)
        .await
        .expect("install the catalog version");
    su.close().await.ok();
}

/// The gateway's PostgreSQL resolution counts: calls sent behind the guard of a kept answer,
/// those whose guard failed, and those resolved afresh (`dbward_pg_resolutions`).
#[allow(dead_code)]
pub fn pg_resolution_counts(gw: &dbward_gateway::Gateway) -> [u64; 4] {
    let text = gw.metrics_text();
    ["kept", "stale", "asked", "rechecked"].map(|answer| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("dbward_pg_resolutions{{answer=\"{answer}\"}} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// A fresh PostgreSQL database owned by a fresh login role with [`PASSWORD`].
pub struct PgFixture {
    pub db: String,
    pub role: String,
}

impl PgFixture {
    pub async fn new() -> PgFixture {
        let db = unique("dbward_t");
        let role = unique("dbward_owner");
        let mut admin = pg_admin().await;
        drop_stale(&mut admin).await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'"
            )))
            .await
            .expect("create role");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {db} OWNER {role}"
            )))
            .await
            .expect("create database");
        let mut owner = PgConnection::connect(&format!(
            "postgresql://{role}:{PASSWORD}@127.0.0.1:5432/{db}"
        ))
        .await
        .expect("connect as owner");
        sqlx::raw_sql(PG_FIXTURE)
            .execute(&mut owner)
            .await
            .expect("load fixture");
        owner.close().await.ok();
        PgFixture { db, role }
    }

    /// The owner's connection string (with the password).
    pub fn url(&self) -> String {
        format!(
            "postgresql://{}:{PASSWORD}@127.0.0.1:5432/{}",
            self.role, self.db
        )
    }

    /// A fingerprint of every table's content and the sequence, to prove nothing changed.
    pub async fn fingerprint(&self) -> String {
        let mut c = PgConnection::connect(&self.url()).await.expect("connect");
        let mut parts = Vec::new();
        for t in [
            "departments",
            "servers",
            "applications",
            "incidents",
            "secrets",
        ] {
            let h: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {t} t"
            )))
            .fetch_one(&mut c)
            .await
            .expect("hash");
            parts.push(format!("{t}:{h}"));
        }
        let seq: i64 = sqlx::query_scalar("SELECT last_value FROM ticket_seq")
            .fetch_one(&mut c)
            .await
            .expect("seq");
        let objects: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
        )
        .fetch_one(&mut c)
        .await
        .expect("objects");
        c.close().await.ok();
        format!("{} seq:{seq} objects:{objects}", parts.join(" "))
    }

    /// Advisory locks held and dbward sessions idle in a transaction, on this database.
    pub async fn leftovers(&self) -> (i64, i64) {
        let mut admin = pg_admin().await;
        let locks: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND d.datname = $1",
        )
        .bind(&self.db)
        .fetch_one(&mut admin)
        .await
        .expect("locks");
        let idle: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND application_name = 'dbward' AND state LIKE 'idle in transaction%'",
        )
        .bind(&self.db)
        .fetch_one(&mut admin)
        .await
        .expect("activity");
        (locks, idle)
    }
}

impl PgFixture {
    /// Drops the database and role (closing dbward's pools first is the caller's job).
    pub async fn drop(self) {
        let mut admin = pg_admin().await;
        let _ = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
        )
        .bind(&self.db)
        .execute(&mut admin)
        .await;
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {}",
                self.db
            )))
            .await;
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP ROLE IF EXISTS {}",
                self.role
            )))
            .await;
    }
}

/// A gateway config allowing client connection strings, with small limits for tests.
pub fn client_config() -> dbward_gateway::GatewayConfig {
    let mut c = dbward_gateway::GatewayConfig {
        allow_client_connections: true,
        ..Default::default()
    };
    c.limits.statement_timeout_ms = 2_000;
    // The enforcement suites send dozens of attacks in a row from one principal: the
    // detector would (rightly) block them. Detection has its own test with the defaults.
    c.detector.probing_refusals = 10_000;
    c.detector.high_severity_refusals = 10_000;
    c.detector.cap_hits = 10_000;
    c.detector.detect_injection = false;
    c
}

/// The same, with the detector's default thresholds.
pub fn client_config_detecting() -> dbward_gateway::GatewayConfig {
    let mut c = dbward_gateway::GatewayConfig {
        allow_client_connections: true,
        ..Default::default()
    };
    c.limits.statement_timeout_ms = 2_000;
    c
}

/// Asserts that a pooled session holds no prepared statement of an earlier call: reads
/// `pg_prepared_statements` through the gateway (on a one-connection pool, the session
/// earlier calls used) and allows only the statement doing the reading and dbward's own
/// resolution statement, unlock, guard and recheck, which are kept per session and hold no client
/// text.
pub async fn assert_no_statements_of_earlier_calls(gw: &dbward_gateway::Gateway, id: &str) {
    let r = gw
        .execute_query(
            id,
            "SELECT name, statement FROM pg_catalog.pg_prepared_statements",
            &[],
            None,
        )
        .await
        .expect("pg_prepared_statements");
    let own = [
        "dbward_resolve",
        "dbward_guard",
        "dbward_recheck",
        "dbward_unlock",
    ];
    let texts: Vec<String> = r
        .rows
        .iter()
        .filter(|row| !own.iter().any(|n| row[0] == serde_json::json!(n)))
        .map(|row| row[1].to_string())
        .collect();
    assert!(
        texts.iter().all(|t| t.contains("pg_prepared_statements")),
        "statements of earlier calls survived in the pooled session: {texts:?}"
    );
    for name in own {
        assert!(
            r.rows.iter().any(|row| row[0] == serde_json::json!(name)),
            "{name} is kept: {:?}",
            r.rows
        );
    }
    // Each of dbward's own keeps its own text and nothing more: a statement prepared in a
    // message of several keeps the whole message, which the server then measures and
    // copies at every use of it.
    for row in r
        .rows
        .iter()
        .filter(|row| own.iter().any(|n| row[0] == serde_json::json!(n)))
    {
        let name = row[0].as_str().unwrap_or_default();
        let text = row[1].as_str().unwrap_or_default();
        assert!(
            text.trim_start().starts_with(&format!("PREPARE {name}("))
                || text.trim_start().starts_with(&format!("PREPARE {name} AS")),
            "{name} keeps another text: {}",
            &text[..text.len().min(200)]
        );
        assert_eq!(
            text.matches("PREPARE ").count(),
            1,
            "{name} keeps the text of other statements too ({} bytes)",
            text.len()
        );
    }
}
