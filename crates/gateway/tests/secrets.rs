//! Secret scanning: every scenario runs with a distinctive password, and the password must
//! appear in no tool output, error, Debug form or log line.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{PASSWORD, PgFixture, client_config};
use dbward_gateway::{ConnectRequest, Gateway, GatewayConfig};
use secrecy::SecretString;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_appears_anywhere() {
    // The fixture itself sends the password (CREATE ROLE ... PASSWORD): set it up before
    // logs are captured; everything dbward does afterwards is captured at TRACE level,
    // including the drivers' own logs.
    let fx = PgFixture::new().await;
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let audit_path = std::env::temp_dir()
        .join(common::unique("dbward_secrets_audit"))
        .join("audit.jsonl");
    let mut audit_cfg = dbward_gateway::audit::AuditConfig::new(audit_path.clone());
    audit_cfg.store_query_text = true;
    let gw = Gateway::new(client_config())
        .with_audit(dbward_gateway::audit::AuditLog::open(audit_cfg).expect("audit log"));
    let mut outputs: Vec<String> = Vec::new();
    let mut record = |s: String| outputs.push(s);

    // Success, then every kind of failure, each captured in Display and Debug form.
    let info = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects");
    record(format!(
        "{info:?} {}",
        serde_json::to_string(&info).expect("json")
    ));
    let id = info.id.to_string();
    for sql in [
        "SELECT * FROM servers LIMIT 3",
        "SELECT * FROM secrets",
        "SELECT nope FROM servers",
        "SELEC 1",
        "DELETE FROM servers",
        "SELECT pg_sleep(10)",
        "SELECT bump()",
        "SELECT 1/0",
    ] {
        match gw.execute_query(&id, sql, &[], None).await {
            Ok(r) => record(serde_json::to_string(&r).expect("json")),
            Err(e) => record(format!("{e} {e:?}")),
        }
    }
    record(format!("{:?}", gw.list_connections()));
    record(format!(
        "{:?}",
        gw.security_posture(&id)
            .await
            .map(|p| serde_json::to_string(&p).ok())
    ));
    for url in [
        format!(
            "postgresql://{}:{PASSWORD}@127.0.0.1:5432/no_such_db_x",
            fx.role
        ),
        format!("postgresql://u:{PASSWORD}@no-such-host.invalid:5432/db"),
        format!("postgresql://u:{PASSWORD}@127.0.0.1:1/db"),
        format!("postgresql://u:{PASSWORD}@127.0.0.1:5432/db?sslmode=verify-full"),
        format!("ftp://u:{PASSWORD}@h/x"),
        format!("postgresql://u:{PASSWORD}@127.0.0.1:5432/db?password={PASSWORD}"),
    ] {
        match gw
            .connect(ConnectRequest::Url(SecretString::from(url)))
            .await
        {
            Ok(i) => record(format!("{i:?}")),
            Err(e) => record(format!("{e} {e:?}")),
        }
    }
    // A named connection whose variable is missing or malformed.
    let cfg = GatewayConfig::from_toml(
        "[connections.x]\ntype = \"postgresql\"\ncredentials_env = \"DBWARD_TEST_UNSET_VAR\"\n",
    )
    .expect("config");
    let gw2 = Gateway::new(cfg);
    match gw2.connect(ConnectRequest::Named("x".into())).await {
        Ok(i) => record(format!("{i:?}")),
        Err(e) => record(format!("{e} {e:?}")),
    }
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;

    drop(gw);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let audit_text = std::fs::read_to_string(&audit_path).expect("audit log");
    assert!(audit_text.lines().count() > 10, "calls were audited");
    assert!(
        !audit_text.contains(PASSWORD),
        "password in the audit log:\n{audit_text}"
    );
    let log_text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf8 logs");
    assert!(
        log_text.contains("connection opened"),
        "logging is captured: {log_text}"
    );
    assert!(log_text.contains("query failed"), "{log_text}");
    assert!(
        !log_text.contains(PASSWORD),
        "password in logs:\n{log_text}"
    );
    for o in &outputs {
        assert!(!o.contains(PASSWORD), "password in output: {o}");
    }
    assert!(outputs.len() >= 15);
}
