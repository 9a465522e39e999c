//! PostgreSQL: dbward's catalog version (`dbward setup-role --catalog-version`), the number
//! a superuser's event trigger raises with every DDL command, which kept resolution answers
//! are fingerprinted with instead of the snapshot (so writes no longer make them stale).
//!
//! It stands in for the snapshot only while nothing but a superuser could change it: each
//! install the database's owner could alter is ignored, the owner cannot disable, drop or
//! rewind the real one, and a trigger a superuser disables makes kept answers fall back to
//! the snapshot in the very next call.

mod common;

use common::{PgFixture, client_config};
use dbward_gateway::backends::postgres::resolve::{BUMP_BODY, CATALOG_VERSION_SQL};
use dbward_gateway::{Gateway, GatewayConfig};
use sqlx::{Connection, PgConnection};

const QUERY: &str = "SELECT name FROM departments WHERE id = 1";

/// Held by each test for its whole run: a commit anywhere in the cluster makes an answer
/// kept under the snapshot stale, so the tests that watch for one do not run beside each
/// other's DDL.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn version(c: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT version FROM dbward.catalog_version")
        .fetch_one(c)
        .await
        .expect("read the version")
}

/// Raises the catalog version to at least `n` with the owner's DDL, two commands at a time.
async fn raise_to(owner: &mut PgConnection, n: i64) {
    while version(owner).await < n {
        run(
            "CREATE TABLE public.filler (x int); DROP TABLE public.filler",
            owner,
        )
        .await;
    }
}

async fn superuser(db: &str) -> PgConnection {
    PgConnection::connect(&format!("postgresql://postgres@127.0.0.1:5432/{db}"))
        .await
        .expect("superuser")
}

async fn run(sql: &str, conn: &mut PgConnection) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Whether a kept answer outlives a write: the query runs twice (its answer kept), the
/// owner commits a row, and the next call must run on the kept answer with its guard
/// passing. `false` when the guard failed (the answer was stale).
async fn survives_a_write(gw: &Gateway, id: &str, owner: &mut PgConnection) -> bool {
    // First a call that ran on the kept answer with its guard passing. (A stale answer makes
    // the next second's calls ask afresh: each try waits that out.)
    let mut on_kept = false;
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        gw.execute_query(id, QUERY, &[], None).await.expect("runs");
        let before = common::pg_resolution_counts(gw);
        gw.execute_query(id, QUERY, &[], None).await.expect("runs");
        let after = common::pg_resolution_counts(gw);
        if after[0] - before[0] == 1 && after[1] == before[1] {
            on_kept = true;
            break;
        }
    }
    assert!(on_kept, "a call ran on a kept answer");
    run(
        "INSERT INTO departments VALUES (99, 'Temp'); DELETE FROM departments WHERE id = 99",
        owner,
    )
    .await;
    let before = common::pg_resolution_counts(gw);
    gw.execute_query(id, QUERY, &[], None).await.expect("runs");
    let after = common::pg_resolution_counts(gw);
    assert_eq!(
        after[0] - before[0],
        1,
        "the call was sent on a kept answer"
    );
    after[1] == before[1]
}

/// A fixture database, a gateway connected to it as its owner, and the owner's own session.
struct Setup {
    fx: PgFixture,
    gw: Gateway,
    id: String,
    owner: PgConnection,
}

/// [`Setup`], with `install` run in the database as the superuser first (`{owner}` stands
/// for the owner role).
async fn setup(install: &str, config: GatewayConfig) -> Setup {
    let fx = PgFixture::new().await;
    if !install.is_empty() {
        let mut su = superuser(&fx.db).await;
        run(&install.replace("{owner}", &fx.role), &mut su).await;
        su.close().await.ok();
    }
    let gw = Gateway::new(config);
    let id = common::pg_connect(&gw, &fx).await;
    let owner = PgConnection::connect(&fx.url()).await.expect("owner");
    Setup { fx, gw, id, owner }
}

impl Setup {
    /// [`survives_a_write`] on this setup.
    async fn survives_a_write(&mut self) -> bool {
        survives_a_write(&self.gw, &self.id, &mut self.owner).await
    }

    async fn done(self) {
        self.owner.close().await.ok();
        self.gw.close_connection(&self.id).await.expect("close");
        self.fx.drop().await;
    }
}

/// Whether a kept answer survives a write in a database with `install` run in it.
async fn survives_with(install: &str) -> bool {
    let mut s = setup(install, client_config()).await;
    let survived = s.survives_a_write().await;
    let posture = s.gw.security_posture(&s.id).await.expect("posture");
    assert_eq!(
        posture.layers.catalog_version,
        Some(survived),
        "the posture says what the guard did"
    );
    s.done().await;
    survived
}

#[test]
fn the_install_script_holds_the_body_the_check_expects() {
    assert!(CATALOG_VERSION_SQL.contains(&format!("$${BUMP_BODY}$$")));
}

/// The script as an earlier dbward printed it: its trigger raised the number at the end of
/// each DDL command and did not wait for the calls in flight.
const EARLIER_INSTALL: &str = "\
CREATE SCHEMA dbward;
GRANT USAGE ON SCHEMA dbward TO PUBLIC;
CREATE TABLE dbward.catalog_version (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version bigint NOT NULL
);
INSERT INTO dbward.catalog_version (version) VALUES (0);
GRANT SELECT ON dbward.catalog_version TO PUBLIC;
CREATE FUNCTION dbward.bump_catalog_version() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog
  AS $$ BEGIN UPDATE dbward.catalog_version SET version = version + 1; END $$;
REVOKE ALL ON FUNCTION dbward.bump_catalog_version() FROM PUBLIC;
CREATE EVENT TRIGGER dbward_catalog_version ON ddl_command_end
  EXECUTE FUNCTION dbward.bump_catalog_version();
ALTER EVENT TRIGGER dbward_catalog_version ENABLE ALWAYS;
";

/// An earlier install is not trusted (its trigger does not keep the catalog still during a
/// call); running the script printed now over it brings it up to date, its number kept.
#[tokio::test]
async fn running_the_script_again_brings_an_earlier_install_up_to_date() {
    let _serial = SERIAL.lock().await;
    let mut s = setup(EARLIER_INSTALL, client_config()).await;
    let posture = s.gw.security_posture(&s.id).await.expect("posture");
    assert_eq!(
        posture.layers.catalog_version,
        Some(false),
        "earlier: not trusted"
    );
    raise_to(&mut s.owner, 3).await;
    let before = version(&mut s.owner).await;
    let mut su = superuser(&s.fx.db).await;
    run(CATALOG_VERSION_SQL, &mut su).await;
    run(CATALOG_VERSION_SQL, &mut su).await;
    su.close().await.ok();
    assert!(version(&mut s.owner).await >= before, "the number is kept");
    let gw = Gateway::new(client_config());
    let id = common::pg_connect(&gw, &s.fx).await;
    let posture = gw.security_posture(&id).await.expect("posture");
    assert_eq!(
        posture.layers.catalog_version,
        Some(true),
        "up to date: trusted"
    );
    gw.close_connection(&id).await.expect("close");
    s.done().await;
}

/// Without it, every commit makes a kept answer stale; installed as printed, a write does
/// not; any install the owner could change (their table, their schema, a table they may
/// write, another function body) is not trusted and the snapshot is used as before.
#[tokio::test]
async fn only_an_install_that_only_a_superuser_can_change_is_trusted() {
    let _serial = SERIAL.lock().await;
    assert!(!survives_with("").await, "no catalog version: stale");
    assert!(
        survives_with(CATALOG_VERSION_SQL).await,
        "installed as printed: a write leaves the answer kept"
    );
    for (what, install) in [
        (
            "a table the owner may write",
            format!("{CATALOG_VERSION_SQL} GRANT UPDATE ON dbward.catalog_version TO {{owner}};"),
        ),
        (
            "a table the owner owns",
            format!("{CATALOG_VERSION_SQL} ALTER TABLE dbward.catalog_version OWNER TO {{owner}};"),
        ),
        (
            "a schema the owner owns",
            format!("{CATALOG_VERSION_SQL} ALTER SCHEMA dbward OWNER TO {{owner}};"),
        ),
        (
            "another function body",
            CATALOG_VERSION_SQL.replace(
                "SET version = version + 1;",
                "SET version = version + 1 WHERE false;",
            ),
        ),
        (
            "a function run with the caller's search_path",
            CATALOG_VERSION_SQL.replace(" SET search_path = pg_catalog", ""),
        ),
        (
            "a function run as its caller",
            CATALOG_VERSION_SQL.replace(" SECURITY DEFINER", ""),
        ),
        (
            "a trigger for some commands only",
            CATALOG_VERSION_SQL.replace(
                "ON ddl_command_start\n",
                "ON ddl_command_start WHEN TAG IN ('CREATE FUNCTION')\n",
            ),
        ),
        (
            "a trigger at the end of commands (after they changed the catalog)",
            CATALOG_VERSION_SQL.replace("ON ddl_command_start\n", "ON ddl_command_end\n"),
        ),
        (
            "a function that does not wait for the calls in flight",
            CATALOG_VERSION_SQL.replace("PERFORM pg_advisory_xact_lock(1684174692, 1); ", ""),
        ),
        (
            "a trigger that does not fire in replicating sessions",
            format!("{CATALOG_VERSION_SQL} ALTER EVENT TRIGGER dbward_catalog_version ENABLE;"),
        ),
        (
            "a disabled trigger",
            format!("{CATALOG_VERSION_SQL} ALTER EVENT TRIGGER dbward_catalog_version DISABLE;"),
        ),
    ] {
        assert_ne!(install, CATALOG_VERSION_SQL, "{what}: the variant differs");
        assert!(!survives_with(&install).await, "{what}: not trusted");
    }
}

/// The database's owner (not a superuser) can neither stop the count nor wind it back, and
/// their own DDL raises it (the trigger's function runs as its superuser owner).
#[tokio::test]
async fn the_owner_cannot_disable_drop_or_rewind_the_catalog_version() {
    let _serial = SERIAL.lock().await;
    let fx = PgFixture::new().await;
    common::pg_install_catalog_version(&fx.db).await;
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    let start = version(&mut owner).await;
    for attack in [
        "ALTER EVENT TRIGGER dbward_catalog_version DISABLE",
        "ALTER EVENT TRIGGER dbward_catalog_version ENABLE REPLICA",
        "DROP EVENT TRIGGER dbward_catalog_version",
        "UPDATE dbward.catalog_version SET version = 0",
        "DELETE FROM dbward.catalog_version",
        "TRUNCATE dbward.catalog_version",
        "INSERT INTO dbward.catalog_version VALUES (false, 0)",
        "ALTER TABLE dbward.catalog_version RENAME TO old",
        "DROP SCHEMA dbward CASCADE",
        "ALTER SCHEMA dbward RENAME TO old",
        "CREATE OR REPLACE FUNCTION dbward.bump_catalog_version() RETURNS event_trigger \
         LANGUAGE plpgsql AS $$ BEGIN END $$",
        "CREATE TABLE dbward.other (x int)",
        "SET session_replication_role = replica",
        "ALTER DATABASE CURRENT SET session_replication_role = replica",
    ] {
        let r = sqlx::raw_sql(sqlx::AssertSqlSafe(attack.to_string()))
            .execute(&mut owner)
            .await;
        assert!(r.is_err(), "the owner could: {attack}");
    }
    assert_eq!(version(&mut owner).await, start, "nothing moved it");
    // Nor can the owner's own `+` before the builtin on their path hold it still: the
    // function runs with `search_path = pg_catalog`.
    run(
        "CREATE SCHEMA evil; \
         CREATE FUNCTION evil.same(bigint, integer) RETURNS bigint LANGUAGE sql AS $$ SELECT $1 $$; \
         CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = evil.same)",
        &mut owner,
    )
    .await;
    let start = version(&mut owner).await;
    run(
        "SET search_path = evil, pg_catalog, public; \
         CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$; \
         RESET search_path",
        &mut owner,
    )
    .await;
    assert_eq!(
        version(&mut owner).await,
        start + 1,
        "the hijacked + was not used"
    );
    run("DROP FUNCTION public.f()", &mut owner).await;
    let start = version(&mut owner).await;
    run(
        "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
        &mut owner,
    )
    .await;
    run("ALTER FUNCTION public.f() RENAME TO g", &mut owner).await;
    run("DROP FUNCTION public.g()", &mut owner).await;
    assert_eq!(
        version(&mut owner).await,
        start + 3,
        "each of the owner's DDL commands raised it"
    );
    // A superuser's session replicating changes (where ordinary triggers are off) too.
    let mut su = superuser(&fx.db).await;
    run(
        "SET session_replication_role = replica; CREATE TABLE public.r (x int)",
        &mut su,
    )
    .await;
    su.close().await.ok();
    assert_eq!(
        version(&mut owner).await,
        start + 4,
        "a replica session's DDL"
    );
    owner.close().await.ok();
    fx.drop().await;
}

/// Sessions opened while the trigger was on keep the versioned guard; once a superuser
/// disables the trigger, that guard reads the snapshot instead, in the same statement: the
/// next write makes the kept answer stale again, and a change is seen.
#[tokio::test]
async fn a_disabled_trigger_falls_back_to_the_snapshot_at_once() {
    let _serial = SERIAL.lock().await;
    let mut s = setup(CATALOG_VERSION_SQL, client_config()).await;
    assert!(s.survives_a_write().await, "versioned");
    let mut su = superuser(&s.fx.db).await;
    run(
        "ALTER EVENT TRIGGER dbward_catalog_version DISABLE",
        &mut su,
    )
    .await;
    assert!(!s.survives_a_write().await, "disabled: the snapshot again");
    // With the trigger off, a DDL command does not raise the number; the snapshot still
    // sees it.
    let lower = "SELECT lower(name) FROM departments";
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    for _ in 0..2 {
        s.gw.execute_query(&s.id, lower, &[], None)
            .await
            .expect("runs");
    }
    run(
        "CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT 'x' $$",
        &mut s.owner,
    )
    .await;
    let e =
        s.gw.execute_query(&s.id, lower, &[], None)
            .await
            .expect_err("the owner's lower(text) is on the path now");
    assert_eq!(e.rule(), Some("function.user_defined"), "{e}");
    su.close().await.ok();
    s.done().await;
}

/// A database dropped and created again under the same name, the catalog version
/// installed again and raised to the same number: a different catalog, which an answer
/// kept from the first must not pass for (the number goes with the counter table's OID).
#[tokio::test]
async fn a_database_made_again_under_the_same_name_does_not_reuse_answers() {
    let _serial = SERIAL.lock().await;
    let mut s = setup(CATALOG_VERSION_SQL, client_config()).await;
    raise_to(&mut s.owner, 6).await;
    let first = version(&mut s.owner).await;
    let lower = "SELECT lower(name) FROM departments";
    for _ in 0..2 {
        s.gw.execute_query(&s.id, lower, &[], None)
            .await
            .expect("runs");
    }
    let mut admin = common::pg_admin().await;
    for sql in [
        format!("DROP DATABASE {} WITH (FORCE)", s.fx.db),
        format!("CREATE DATABASE {} OWNER {}", s.fx.db, s.fx.role),
    ] {
        run(&sql, &mut admin).await;
    }
    admin.close().await.ok();
    let mut su = superuser(&s.fx.db).await;
    run(CATALOG_VERSION_SQL, &mut su).await;
    su.close().await.ok();
    // (The owner's first session died with the first database.)
    s.owner = PgConnection::connect(&s.fx.url()).await.expect("owner");
    let owner = &mut s.owner;
    run(
        "CREATE TABLE departments (id int, name text); INSERT INTO departments VALUES (1, 'Ops'); \
         CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT 'owner code' $$",
        owner,
    )
    .await;
    raise_to(owner, first).await;
    assert_eq!(version(owner).await, first, "the same number again");
    // The pool's sessions died with the first database: a call may fail on one before a
    // new session is opened.
    let mut last = None;
    for _ in 0..3 {
        match s.gw.execute_query(&s.id, lower, &[], None).await {
            Err(e) if e.rule().is_none() => last = Some(e.to_string()),
            other => {
                let e = other.expect_err("the owner's lower(text) must not run");
                assert_eq!(e.rule(), Some("function.user_defined"), "{e}");
                last = None;
                break;
            }
        }
    }
    assert!(last.is_none(), "no call got through: {last:?}");
    s.done().await;
}

/// A call whose string parameter needs its type inferred makes the session drop every
/// prepared statement and prepare dbward's again (`session.rs`, `reprepare`): the guard
/// prepared again is the versioned one, so answers kept afterwards still survive writes.
#[tokio::test]
async fn statements_prepared_again_keep_the_catalog_version() {
    let _serial = SERIAL.lock().await;
    let mut config = client_config();
    config.limits.pool_max_size = 1;
    let mut s = setup(CATALOG_VERSION_SQL, config).await;
    let r =
        s.gw.execute_query(
            &s.id,
            "SELECT count(*) FROM departments WHERE name = $1",
            &[serde_json::json!("Ops")],
            None,
        )
        .await
        .expect("runs");
    assert_eq!(r.rows[0][0], serde_json::json!(1));
    assert!(
        s.survives_a_write().await,
        "the one session's guard, prepared again, is versioned"
    );
    s.done().await;
}
