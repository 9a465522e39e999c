//! Connections the operator opened (`connect_trusted`) are the server's own: idle expiry,
//! which closes client connections left unused, never closes them.

use dbward_gateway::{ConnectRequest, ConnectSpec, Gateway, GatewayConfig};
use secrecy::SecretString;

#[tokio::test]
async fn idle_expiry_spares_operator_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dbward_gateway::demo::ensure_demo_db(&dir.path().join("demo.db")).expect("demo");
    let url = SecretString::from(format!("sqlite://{}", path.display()));
    let mut config = GatewayConfig {
        allow_client_connections: true,
        ..Default::default()
    };
    config.limits.connection_idle_expiry_s = 0;
    let gw = Gateway::new(config);
    let own = gw
        .connect_trusted(ConnectSpec::from_url(&url).expect("url"))
        .await
        .expect("operator connection");
    let client = gw
        .connect(ConnectRequest::Url(url.clone()))
        .await
        .expect("client connection");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Opening another connection runs the idle expiry.
    gw.connect(ConnectRequest::Url(url)).await.expect("third");
    let ids: Vec<String> = gw
        .list_connections()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert!(
        ids.contains(&own.id.to_string()),
        "the operator's connection stays"
    );
    assert!(
        !ids.contains(&client.id.to_string()),
        "the idle client connection expired"
    );
    gw.execute_query(own.id.as_str(), "SELECT 1", &[], None)
        .await
        .expect("still usable");
}
