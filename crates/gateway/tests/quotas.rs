//! One principal cannot take every connection id: a per-principal quota under the
//! server-wide cap (issue 13, item 8). Real SQLite files, the real gateway.

mod common;

use common::client_config;
use dbward_gateway::calls::{CallContext, with_context};
use dbward_gateway::{ConnectRequest, Gateway, GatewayError};
use secrecy::SecretString;

async fn connect_as(gw: &Gateway, who: &str, db: &std::path::Path) -> Result<String, GatewayError> {
    with_context(CallContext::new(who, None), async {
        gw.connect(ConnectRequest::Url(SecretString::from(format!(
            "sqlite://{}",
            db.display()
        ))))
        .await
        .map(|i| i.id.to_string())
    })
    .await
}

#[tokio::test]
async fn one_principal_cannot_take_every_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("q.db");
    rusqlite::Connection::open(&db)
        .expect("create")
        .execute_batch("CREATE TABLE t (id INTEGER)")
        .expect("fixture");
    let mut config = client_config();
    config.limits.max_open_connections = 6;
    assert_eq!(
        config.limits.max_connections_per_principal, 4,
        "the default"
    );
    let gw = Gateway::new(config);
    let mut mine = Vec::new();
    for _ in 0..4 {
        mine.push(
            connect_as(&gw, "greedy", &db)
                .await
                .expect("within the quota"),
        );
    }
    let e = connect_as(&gw, "greedy", &db)
        .await
        .expect_err("over the quota");
    assert_eq!(e.code(), "too_many_connections");
    assert!(matches!(e, GatewayError::ConnectionQuota(4)), "{e}");
    // Others still connect, up to the server-wide cap.
    connect_as(&gw, "alice", &db).await.expect("alice");
    connect_as(&gw, "bob", &db).await.expect("bob");
    let e = connect_as(&gw, "carol", &db)
        .await
        .expect_err("server full");
    assert!(matches!(e, GatewayError::TooManyConnections(6)), "{e}");
    // Closing one of greedy's frees a place.
    with_context(
        CallContext::new("greedy", None),
        gw.close_connection(&mine[0]),
    )
    .await
    .expect("close");
    connect_as(&gw, "carol", &db).await.expect("carol now");
}
