//! Issues 11 and 12 on the real MariaDB, connected as the database owner: the pinned
//! sql_mode, session state between calls, function names resolved by the server, server
//! secrets, and statements that outlive their call. Where the policy and the database both
//! guard something, each is tested alone (the backend called directly bypasses the policy).

use super::*;
use dbward_gateway::backends::mysql::SQL_MODE;

/// A backend whose pool holds one connection, so consecutive calls share a session unless
/// the backend discards it.
async fn one_connection_backend(fx: &MyFixture) -> MyBackend {
    let spec = ConnectSpec::from_url(&SecretString::from(fx.url())).expect("spec");
    let mut limits = GatewayConfig::default().limits;
    limits.pool_max_size = 1;
    MyBackend::connect(&spec, &limits).await.expect("connect")
}

async fn scalar(b: &MyBackend, sql: &str) -> serde_json::Value {
    let r = b.execute(sql, &[], caps(2_000)).await.expect(sql);
    r.rows[0][0].clone()
}

fn config_denying_api_key() -> GatewayConfig {
    let mut c = client_config();
    c.policy.denied_columns = vec!["secrets.api_key".into()];
    c
}

/// Runs `body` with the server's GLOBAL sql_mode set to `mode`, and restores the old value
/// afterwards even when `body` panics. Only sessions opened meanwhile inherit it; the other
/// tests' own SQL has no double quotes or backslashes, so they are unaffected.
async fn with_global_sql_mode<F>(mode: &str, body: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut admin = common::mysql::my_admin().await;
    let old: String = sqlx::query_scalar("SELECT @@GLOBAL.sql_mode")
        .fetch_one(&mut admin)
        .await
        .expect("global mode");
    sqlx::query("SET GLOBAL sql_mode = ?")
        .bind(mode)
        .execute(&mut admin)
        .await
        .expect("set global mode");
    let outcome = tokio::spawn(body).await;
    sqlx::query("SET GLOBAL sql_mode = ?")
        .bind(&old)
        .execute(&mut admin)
        .await
        .expect("restore global mode");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn sql_mode_is_pinned_whatever_the_servers_global_mode() {
    let fx = MyFixture::new().await;
    let url = fx.url();
    with_global_sql_mode(
        "ANSI_QUOTES,NO_BACKSLASH_ESCAPES,PIPES_AS_CONCAT",
        async move {
            let gw = Gateway::new(config_denying_api_key());
            let id = gw
                .connect(ConnectRequest::Url(SecretString::from(url.clone())))
                .await
                .expect("connects")
                .id
                .to_string();
            // The policy reads "api_key" as a string; so must the server.
            for sql in [
                "SELECT \"api_key\" FROM secrets",
                "SELECT \"api_key\" AS k FROM secrets WHERE \"api_key\" <> ''",
                "SELECT CONCAT(\"api_\", \"key\") FROM secrets",
            ] {
                let r = gw.execute_query(&id, sql, &[], None).await.expect(sql);
                assert!(
                    !format!("{:?}", r.rows).contains("sk_live"),
                    "{sql}: {:?}",
                    r.rows
                );
            }
            // Direct denied reads stay refused.
            let e = gw
                .execute_query(&id, "SELECT api_key FROM secrets", &[], None)
                .await
                .expect_err("denied column");
            assert_eq!(e.rule(), Some("column.denied"), "{e}");
            // Backslash escapes mean what the parser assumed; `||` is OR, not concatenation.
            let r = gw
                .execute_query(&id, r"SELECT 'a\'b', 'c\\', 'x' || 'y'", &[], None)
                .await
                .expect("runs");
            assert_eq!(r.rows[0], vec![json!("a'b"), json!("c\\"), json!(0)]);
            let r = gw
                .execute_query(&id, "SELECT @@SESSION.sql_mode", &[], None)
                .await
                .expect("runs");
            assert_eq!(r.rows[0][0], json!(SQL_MODE));
            // The catalog tools run under the pinned mode too (they use `\` escapes).
            assert!(
                !gw.search_tables(&id, "host")
                    .await
                    .expect("search")
                    .is_empty()
            );
            gw.close_connection(&id).await.expect("close");

            // The database layer alone: a statement that sets the mode for itself does not
            // change the session's, and every call starts pinned.
            let spec = ConnectSpec::from_url(&SecretString::from(url)).expect("spec");
            let mut limits = GatewayConfig::default().limits;
            limits.pool_max_size = 1;
            let b = MyBackend::connect(&spec, &limits).await.expect("connect");
            let r = b
                .execute(
                    "SET STATEMENT sql_mode = 'ANSI_QUOTES' FOR SELECT \"api_key\" FROM secrets",
                    &[],
                    caps(2_000),
                )
                .await
                .expect("runs");
            // The server parsed the text with the session's pinned mode before the statement's
            // own mode applied: a string, not the column.
            assert_eq!(r.rows[0][0], json!("api_key"));
            assert_eq!(
                scalar(&b, "SELECT @@SESSION.sql_mode").await,
                json!(SQL_MODE)
            );
            assert_eq!(
                scalar(&b, "SELECT \"api_key\" FROM secrets").await,
                json!("api_key")
            );
            b.close().await;
        },
    )
    .await;
    fx.drop().await;
}

#[tokio::test]
async fn session_state_never_crosses_calls_at_the_database_layer() {
    let fx = MyFixture::new().await;
    let b = one_connection_backend(&fx).await;
    // A clean call keeps its pooled connection (no reconnect per query).
    let first = scalar(&b, "SELECT CONNECTION_ID()").await;
    assert_eq!(scalar(&b, "SELECT CONNECTION_ID()").await, first);
    // Each way a SELECT can leave state, each read back by the next call.
    for (set, read, fresh) in [
        ("SELECT @a := 5", "SELECT @a", json!(null)),
        (
            "SELECT @a := 'x', @b := 2 FROM servers LIMIT 1",
            "SELECT @b",
            json!(null),
        ),
        (
            "SELECT id, @n := id FROM servers ORDER BY id",
            "SELECT @n",
            json!(null),
        ),
        (
            "SELECT @c := NULL",
            "SELECT COUNT(*) FROM information_schema.USER_VARIABLES",
            json!(0),
        ),
        (
            "SELECT LAST_INSERT_ID(42)",
            "SELECT LAST_INSERT_ID()",
            json!(0),
        ),
        (
            "SELECT LAST_INSERT_ID(7), @d := 1",
            "SELECT LAST_INSERT_ID() + (@d IS NOT NULL)",
            json!(0),
        ),
    ] {
        b.execute(set, &[], caps(2_000)).await.expect(set);
        assert_eq!(scalar(&b, read).await, fresh, "{set} then {read}");
    }
    // The truncated and failed paths discard the session too.
    let r = b
        .execute("SELECT id, @t := id FROM servers", &[], caps(2_000))
        .await
        .expect("runs");
    assert!(r.truncated);
    assert_eq!(scalar(&b, "SELECT @t").await, json!(null));
    let _ = b
        .execute("SELECT @e := 1, 1 / (SELECT 1 FROM nope)", &[], caps(2_000))
        .await
        .expect_err("unknown table");
    assert_eq!(scalar(&b, "SELECT @e").await, json!(null));
    b.close().await;
    fx.drop().await;
}

#[tokio::test]
async fn session_state_is_refused_by_the_policy() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    for sql in [
        "SELECT @a := 5",
        "SELECT id, @n := @n + 1 FROM servers",
        "SELECT * FROM servers WHERE (@x := id) > 0",
        "SELECT LAST_INSERT_ID(42)",
        "SELECT 1 FROM servers ORDER BY LAST_INSERT_ID(id) LIMIT 1",
    ] {
        let e = gw.execute_query(&id, sql, &[], None).await.expect_err(sql);
        assert_eq!(e.rule(), Some("statement.data_modifying"), "{sql}: {e}");
    }
    // Reading is fine (and empty).
    let r = gw
        .execute_query(&id, "SELECT @a, LAST_INSERT_ID()", &[], None)
        .await
        .expect("runs");
    assert_eq!(r.rows[0], vec![json!(null), json!(0)]);
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// Creates, as the owner, stored functions that KILL a victim session when run, under
/// names a policy might trust: another dialect's builtin (`glob`, `iif`), a MySQL native
/// name (`soundex`), and a plain one (`twice`).
async fn killer_functions(fx: &MyFixture) -> sqlx::MySqlConnection {
    let (v, vid) = victim_session(fx).await;
    for name in ["glob", "iif", "soundex", "twice"] {
        fx.owner_exec(&format!(
            "CREATE FUNCTION `{name}`(a TEXT, b TEXT) RETURNS INT BEGIN KILL {vid}; RETURN 1; END"
        ))
        .await;
    }
    v
}

async fn alive(v: &mut sqlx::MySqlConnection) -> bool {
    sqlx::query("SELECT 1").fetch_one(v).await.is_ok()
}

#[tokio::test]
async fn every_function_name_is_resolved_by_the_server() {
    let fx = MyFixture::new().await;
    let mut victim = killer_functions(&fx).await;
    let mut cfg = client_config();
    cfg.policy.allowed_functions = vec![format!("{}.twice", fx.db)];
    let gw = Gateway::new(cfg);
    let id = connect(&gw, &fx).await;
    let db = &fx.db;
    for sql in [
        "SELECT glob('a*', 'abc')".to_string(),
        "SELECT GLOB('a*', 'abc')".to_string(),
        "SELECT iif('a', 'b')".to_string(),
        format!("SELECT `{db}`.glob('a', 'b')"),
        format!("SELECT {db}.iif('a', 'b')"),
        "SELECT hostname FROM servers WHERE glob(hostname, 'x') = 1".to_string(),
        "SELECT 1 FROM servers ORDER BY glob(hostname, 'x') LIMIT 1".to_string(),
        format!("SELECT {db}.soundex('a', 'b')"),
        // Native names are resolved too: the builtin would win here, but a routine of
        // that name in scope is refused all the same (conservative).
        "SELECT soundex('x')".to_string(),
    ] {
        let e = gw
            .execute_query(&id, &sql, &[], None)
            .await
            .expect_err(&sql);
        assert_eq!(e.rule(), Some("function.volatile"), "{sql}: {e}");
        assert!(alive(&mut victim).await, "{sql} killed the victim");
    }
    // Qualified names that are unknown to the server are not stored routines.
    let e = gw
        .execute_query(&id, &format!("SELECT {db}.nope(1)"), &[], None)
        .await
        .expect_err("no such function");
    assert_ne!(e.code(), "ok");
    // A name the policy does not know, with no routine, that this login cannot check is
    // not a UDF: refused too.
    let e = gw
        .execute_query(&id, "SELECT printf('%d', 1)", &[], None)
        .await
        .expect_err("unverifiable");
    assert_eq!(e.rule(), Some("function.volatile"), "{e}");
    // Native builtins without a same-named routine run.
    let r = gw
        .execute_query(
            &id,
            "SELECT CONCAT('a', 'b'), UPPER('x'), STRCMP('a', 'b')",
            &[],
            None,
        )
        .await
        .expect("builtins run");
    assert_eq!(r.rows[0], vec![json!("ab"), json!("X"), json!(-1)]);
    // Never stale: STRCMP ran a moment ago; once the owner defines a routine of that
    // name it is refused on the very next call, and allowed again once it is dropped.
    fx.owner_exec("CREATE FUNCTION strcmp(a TEXT, b TEXT) RETURNS INT RETURN 0")
        .await;
    let e = gw
        .execute_query(&id, "SELECT STRCMP('a', 'b')", &[], None)
        .await
        .expect_err("now a routine exists");
    assert_eq!(e.rule(), Some("function.volatile"), "{e}");
    fx.owner_exec("DROP FUNCTION strcmp").await;
    gw.execute_query(&id, "SELECT STRCMP('a', 'b')", &[], None)
        .await
        .expect("builtin again");
    // The allowlisted routine runs only under its qualified allowlist entry (the test's
    // `twice` kills the victim: that is the point of allowlisting being explicit).
    let r = gw
        .execute_query(&id, &format!("SELECT {db}.twice('a', 'b')"), &[], None)
        .await;
    assert!(
        r.is_ok() || r.as_ref().is_err_and(|e| e.code() == "read_only_violation"),
        "{r:?}"
    );
    assert!(!alive(&mut victim).await, "the allowlisted routine ran");
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn server_secrets_and_other_sessions_sql_are_refused() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    for sql in [
        "SELECT @@global.datadir",
        "SELECT @@datadir",
        "SELECT @@GLOBAL.`plugin_dir`",
        "SELECT @@session.secure_file_priv",
        "SELECT CONCAT(@@ssl_key, @@general_log_file)",
        "SELECT 1 FROM servers WHERE @@basedir LIKE '/%' LIMIT 1",
        "SELECT * FROM information_schema.GLOBAL_VARIABLES",
        "SELECT VARIABLE_VALUE FROM information_schema.SESSION_VARIABLES WHERE VARIABLE_NAME = 'DATADIR'",
        "SELECT * FROM INFORMATION_SCHEMA.SYSTEM_VARIABLES",
        "SELECT * FROM performance_schema.global_variables",
        "SELECT * FROM performance_schema.session_variables",
        "SELECT SQL_TEXT FROM performance_schema.events_statements_current",
        "SELECT SQL_TEXT FROM performance_schema.events_statements_history_long",
        "SELECT PROCESSLIST_INFO FROM performance_schema.threads",
        "SELECT INFO FROM information_schema.PROCESSLIST",
        "SELECT trx_query FROM information_schema.INNODB_TRX",
        "SELECT * FROM (SELECT INFO FROM information_schema.PROCESSLIST) p",
        "SELECT * FROM mysql.general_log",
        "SELECT body FROM mysql.proc",
        "SHOW VARIABLES LIKE 'plugin\\_dir'",
        "SHOW VARIABLES LIKE 'plugin_dir'",
        "SHOW VARIABLES LIKE '%dir'",
        "SHOW GLOBAL VARIABLES",
        "SHOW SESSION VARIABLES",
        "SHOW VARIABLES WHERE Variable_name = 'datadir'",
        "SHOW PROCESSLIST",
        "SHOW FULL PROCESSLIST",
    ] {
        let e = gw.execute_query(&id, sql, &[], None).await.expect_err(sql);
        assert_eq!(e.code(), "policy_refused", "{sql}: {e}");
        let text = format!("{e}");
        assert!(!text.contains("/var/lib"), "{sql}: {text}");
    }
    // What analysts need still runs.
    for sql in [
        "SHOW VARIABLES LIKE 'max_connections'",
        "SHOW VARIABLES LIKE 'version'",
        "SELECT @@version, @@sql_mode",
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    ] {
        gw.execute_query(&id, sql, &[], None).await.expect(sql);
    }
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// Seconds until no thread of the fixture user runs a statement containing `marker`.
async fn seconds_until_gone(fx: &MyFixture, marker: &str, bound: Duration) -> f64 {
    let mut admin = common::mysql::my_admin().await;
    let started = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE ?",
        )
        .bind(&fx.user)
        .bind(format!("%{marker}%"))
        .fetch_one(&mut admin)
        .await
        .expect("processlist");
        if n == 0 || started.elapsed() > bound {
            return started.elapsed().as_secs_f64();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_timed_out_statement_is_gone_from_the_server_within_two_seconds() {
    let fx = MyFixture::new().await;
    let b = backend(&fx).await;
    // Lifts its own server timeout, so only the client deadline and the kill end it.
    let started = Instant::now();
    let e = b
        .execute(
            "SET STATEMENT max_statement_time = 0 FOR \
             SELECT COUNT(*) FROM incidents a, incidents b, incidents c WHERE a.note <> 'marker_1'",
            &[],
            caps(500),
        )
        .await
        .expect_err("times out");
    assert_eq!(e.code(), "timeout", "{e:?}");
    let returned = started.elapsed();
    let gone = seconds_until_gone(&fx, "marker_1", Duration::from_secs(10)).await;
    eprintln!("mysql: call returned after {returned:?}; statement gone {gone:.2}s later");
    assert!(
        gone < 2.0,
        "still running {gone:.2}s after the call returned"
    );
    // A caller that drops the call (a client hanging up) stops its statement too.
    let call = b.execute(
        "SET STATEMENT max_statement_time = 0 FOR \
         SELECT COUNT(*) FROM incidents a, incidents b, incidents c WHERE a.note <> 'marker_2'",
        &[],
        caps(60_000),
    );
    let _ = tokio::time::timeout(Duration::from_millis(500), call).await;
    let gone = seconds_until_gone(&fx, "marker_2", Duration::from_secs(10)).await;
    eprintln!("mysql: dropped call's statement gone {gone:.2}s after the drop");
    assert!(
        gone < 2.0,
        "still running {gone:.2}s after the call was dropped"
    );
    // The pool still serves.
    assert_eq!(
        b.execute("SELECT 1", &[], caps(1_000))
            .await
            .expect("runs")
            .rows[0][0],
        json!(1)
    );
    b.close().await;
    fx.drop().await;
}

#[tokio::test]
async fn searches_the_server_cannot_stop_are_refused_before_they_run() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    for sql in [
        "SELECT LOCATE(CONCAT(REPEAT('a', 50000), 'X'), REPEAT('a', 200000))",
        "SELECT INSTR(REPEAT('a', 900000), CONCAT(REPEAT('a', 900), 'b'))",
        "SELECT POSITION(REPEAT('a', 20000) IN REPEAT('a', 100000))",
        "SELECT REPLACE(REPEAT('a', 100000), REPEAT('a', 5000), 'b')",
        "SELECT REPEAT('a', 100000) LIKE CONCAT('%', REPEAT('a', 5000), 'b')",
        // Texts whose size the query does not show, searched for long or computed strings.
        "SELECT LOCATE(CONCAT(REPEAT('a', 5000), 'X'), GROUP_CONCAT(hostname SEPARATOR '')) FROM servers",
        "SELECT INSTR(a.hostname, b.status) FROM servers a JOIN servers b ON a.id = b.id",
        "SELECT hostname LIKE CONCAT('%', status, '%') FROM servers",
    ] {
        let e = gw.execute_query(&id, sql, &[], None).await.expect_err(sql);
        assert_eq!(e.rule(), Some("resource.bomb"), "{sql}: {e}");
    }
    let sql = "SELECT COUNT(*) AS n FROM servers WHERE LOCATE(?, hostname) > 0";
    let e = gw
        .execute_query(&id, sql, &[json!("X".repeat(65))], None)
        .await
        .expect_err("a long searched-for parameter");
    assert_eq!(e.rule(), Some("resource.bomb"), "{e}");
    gw.execute_query(&id, sql, &[json!("srv-1")], None)
        .await
        .expect("a short one runs");
    let started = Instant::now();
    gw.execute_query(&id, "SELECT LOCATE('X', REPEAT('a', 100000))", &[], None)
        .await
        .expect("small search runs");
    assert!(started.elapsed() < Duration::from_secs(2));
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
