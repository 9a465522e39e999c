//! End-to-end tests of the `dbward` binary: `check`'s output and exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn dbward(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbward"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dbward starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("dbward exits")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn allowed_query_exits_zero() {
    let o = dbward(&["check", "SELECT 1"], None);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).starts_with("allowed (SELECT) [postgres]"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn refused_query_exits_one_with_rule_and_position() {
    let o = dbward(&["check", "SELECT 1; DROP TABLE t"], None);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.starts_with("refused"), "{out}");
    assert!(out.contains("statement.multiple at position"), "{out}");
}

#[test]
fn json_output_carries_the_verdict() {
    let o = dbward(
        &[
            "check",
            "--json",
            "--dialect",
            "mysql",
            "SELECT SLEEP(5) FROM t",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["decision"], "refused");
    assert_eq!(v["dialect"], "mysql");
    assert_eq!(v["kind"], "select");
    assert_eq!(v["reasons"][0]["rule"], "function.sleep");
    assert_eq!(v["reasons"][0]["position"], 8);
    assert_eq!(v["tables"][0]["name"], "t");
}

#[test]
fn reads_standard_input() {
    let o = dbward(
        &["check", "--dialect", "sqlite", "-"],
        Some(b"SELECT name FROM t -- hi\n"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = dbward(&["check", "-"], Some(b"DELETE FROM t"));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn usage_and_input_errors_exit_two() {
    let o = dbward(&["check", "--dialect", "oracle", "SELECT 1"], None);
    assert_eq!(o.status.code(), Some(2));
    let o = dbward(&["check"], None);
    assert_eq!(o.status.code(), Some(2));
    let o = dbward(&["check", "-"], Some(&[0x53, 0x45, 0xff, 0xfe]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not valid UTF-8"));
    assert!(o.stdout.is_empty(), "errors go to stderr");
}

#[test]
fn hostile_input_is_refused_cleanly() {
    let huge = "SELECT 1 ".repeat(5_000);
    let o = dbward(&["check", "-"], Some(huge.as_bytes()));
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("input.too_long"));
    let o = dbward(&["check", "-"], Some(b"SELECT 1\0; DROP TABLE t"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("input.nul_byte"));
}

#[test]
fn check_and_setup_role_read_the_operators_policy() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("dbward.toml");
    std::fs::write(
        &config,
        "[policy]\ndenied_tables = [\"payroll\"]\ndenied_columns = [\"customers.ssn\"]\n",
    )
    .expect("config");
    let config = config.to_str().expect("path");
    // The operator's rules, and the built-in ones they add to.
    for (sql, rule) in [
        ("SELECT ssn FROM customers", "column.denied"),
        ("SELECT * FROM payroll", "table.denied"),
        ("SELECT * FROM pg_settings", "table.denied"),
    ] {
        let o = dbward(&["check", "--json", "--config", config, sql], None);
        assert_eq!(o.status.code(), Some(1), "{sql}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(v["reasons"][0]["rule"], rule, "{sql}");
    }
    let o = dbward(
        &["check", "--config", config, "SELECT name FROM customers"],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let o = dbward(&["check", "SELECT ssn FROM customers"], None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "without --config, the default policy"
    );
    let o = dbward(&["check", "--json", "DELETE FROM t"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["kind"], "delete", "one shape for the kind");
    let o = dbward(
        &["setup-role", "--type", "postgresql", "--config", config],
        None,
    );
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.contains("REVOKE SELECT (%I) ON %s FROM %I', 'ssn'"),
        "{out}"
    );
    assert!(out.contains("c.relname LIKE 'payroll'"), "{out}");
    let o = dbward(
        &["check", "--config", "/nonexistent/dbward.toml", "SELECT 1"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn setup_role_prints_sql_for_each_database() {
    let o = dbward(&["setup-role", "--database", "cmdb"], None);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("CREATE ROLE \"dbward_reader\" LOGIN"), "{out}");
    assert!(out.contains("GRANT SELECT, SHOW VIEW ON `cmdb`.*"), "{out}");
    assert!(out.contains("chmod 0444"), "{out}");
    assert!(out.contains("dbward setup-role --catalog-version"), "{out}");
    assert!(!out.contains("GRANT ALL"), "{out}");
}

#[test]
fn connections_lists_and_checks_named_connections() {
    let dir = std::env::temp_dir().join(format!("dbward_cli_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("dbward.json");
    std::fs::write(
        &cfg,
        r#"{"connections": {"local_pg": {"type": "postgresql", "host": "127.0.0.1", "port": 5432,
            "database": "postgres", "credentialsEnv": "DBWARD_CLI_TEST_CREDS"}}}"#,
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_dbward"))
        .args(["connections", "--check", "--config"])
        .arg(&cfg)
        .env("DBWARD_CLI_TEST_CREDS", "postgres:Cli-Secret-Pw-42")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("local_pg\tpostgresql\tpostgresql://127.0.0.1:5432/postgres (credentials from $DBWARD_CLI_TEST_CREDS)"), "{text}");
    assert!(text.contains("ok: PostgreSQL"), "{text}");
    assert!(
        text.contains("CAN WRITE") && text.contains("superuser"),
        "postgres is a superuser: {text}"
    );
    assert!(
        !text.contains("Cli-Secret-Pw-42")
            && !String::from_utf8_lossy(&out.stderr).contains("Cli-Secret-Pw-42")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn audit_verify_and_tail() {
    use dbward_gateway::audit::{AuditConfig, AuditLog, Entry};
    let dir = std::env::temp_dir().join(format!("dbward_cli_audit_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("audit.jsonl");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let log = AuditLog::open(AuditConfig::new(path.clone())).expect("opens");
        for i in 0..5u64 {
            log.append(Entry {
                kind: "call".into(),
                tool: Some("execute_query".into()),
                rows: Some(i),
                outcome: Some("ok".into()),
                ..Entry::default()
            })
            .await
            .expect("append");
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    let p = path.to_str().expect("utf8 path");
    let o = dbward(&["audit", "verify", p], None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("ok: 6 entries"));
    let o = dbward(&["audit", "tail", "-n", "2", p], None);
    assert_eq!(stdout(&o).lines().count(), 2);
    assert!(stdout(&o).contains("tool=execute_query"));
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("\"rows\":2", "\"rows\":7")).expect("tamper");
    let o = dbward(&["audit", "verify", p], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("line 4 (seq 3): content does not match its hash"),
        "{}",
        stdout(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `dbward setup-role --type mysql --config` reads the catalog of the config's MySQL
/// connection and prints GRANTs per table; applied to a fresh user on the real MariaDB,
/// they keep the denied column and table from it and let it read the rest.
#[tokio::test]
async fn setup_role_for_mysql_prints_grants_that_keep_denied_data_out() {
    use sqlx::{Connection, Executor, MySqlConnection};
    let n = std::process::id();
    let (db, owner, reader) = (
        format!("dbward_cli_{n}"),
        format!("dbward_cli_own_{n}"),
        format!("dbward_cli_rd_{n}"),
    );
    let pw = "Cli-Owner-Pw-42";
    let mut admin = MySqlConnection::connect("mysql://root@127.0.0.1:3306/")
        .await
        .expect("MariaDB must be running on 127.0.0.1:3306 (run scripts/start-services.sh)");
    for sql in [
        format!("CREATE DATABASE `{db}`"),
        format!("CREATE USER '{owner}'@'%' IDENTIFIED BY '{pw}'"),
        format!("CREATE USER '{owner}'@'localhost' IDENTIFIED BY '{pw}'"),
        format!("GRANT ALL ON `{db}`.* TO '{owner}'@'%'"),
        format!("GRANT ALL ON `{db}`.* TO '{owner}'@'localhost'"),
        format!(
            "CREATE TABLE `{db}`.customers (id INT PRIMARY KEY, name TEXT, ssn TEXT); \
             INSERT INTO `{db}`.customers VALUES (1, 'Ada', '123-45-6789'); \
             CREATE TABLE `{db}`.payroll (id INT, salary INT); INSERT INTO `{db}`.payroll VALUES (1, 9)"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("setup");
    }
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("dbward.toml");
    std::fs::write(
        &config,
        format!(
            "[connections.shop]\ntype = \"mysql\"\nhost = \"127.0.0.1\"\nport = 3306\ndatabase = \"{db}\"\ncredentials_env = \"DBWARD_CLI_MY_CREDS\"\n\n[policy]\ndenied_tables = [\"payroll\"]\ndenied_columns = [\"customers.ssn\"]\n"
        ),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbward"))
        .args([
            "setup-role",
            "--type",
            "mysql",
            "--role",
            &reader,
            "--config",
        ])
        .arg(&config)
        .env("DBWARD_CLI_MY_CREDS", format!("{owner}:{pw}"))
        .output()
        .expect("runs");
    let sql = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{sql}{err}");
    assert!(
        !sql.contains(pw) && !err.contains(pw),
        "no secret in the output"
    );
    assert!(
        sql.contains(&format!(
            "GRANT SELECT (`id`, `name`) ON `{db}`.`customers` TO '{reader}'@'%';"
        )),
        "{sql}"
    );
    assert!(
        sql.contains(&format!("-- `{db}`.`payroll`: denied")),
        "{sql}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(
        sql.replace("'change-me'", &format!("'{pw}'")),
    ))
    .execute(&mut admin)
    .await
    .expect("the printed SQL applies");
    let mut rd = MySqlConnection::connect(&format!("mysql://{reader}:{pw}@127.0.0.1:3306/{db}"))
        .await
        .expect("reader connects");
    for denied in ["SELECT ssn FROM customers", "SELECT * FROM payroll"] {
        let e = sqlx::query(denied)
            .fetch_all(&mut rd)
            .await
            .expect_err(denied);
        assert!(e.to_string().contains("denied"), "{denied}: {e}");
    }
    let rows = sqlx::query("SELECT id, name FROM customers")
        .fetch_all(&mut rd)
        .await
        .expect("allowed columns");
    assert_eq!(rows.len(), 1);
    rd.close().await.ok();
    for sql in [
        format!("DROP DATABASE `{db}`"),
        format!("DROP USER '{owner}'@'%', '{owner}'@'localhost', '{reader}'@'%'"),
    ] {
        let _ = admin.execute(sqlx::AssertSqlSafe(sql)).await;
    }
}
