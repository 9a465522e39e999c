//! How many round trips an `execute_query` call makes to PostgreSQL, observed on the wire:
//! the gateway connects through a relay on a local port that counts the client's bursts
//! (client bytes sent after the server last spoke), each one a round trip.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{PgFixture, client_config};
use dbward_gateway::{ConnectRequest, Gateway};
use secrecy::SecretString;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Round trips seen so far, over every relayed connection.
#[derive(Default)]
struct Wire {
    round_trips: AtomicUsize,
}

/// Relays every connection on a local port to PostgreSQL, counting round trips. Returns the
/// port.
async fn relay(wire: Arc<Wire>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect("127.0.0.1:5432").await.expect("pg");
            let wire = wire.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                // Whether the server spoke since the client last did.
                let server_spoke = Arc::new(AtomicBool::new(true));
                let spoke = server_spoke.clone();
                let up = async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if spoke.swap(false, Ordering::SeqCst) {
                            wire.round_trips.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                };
                let down = async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = sr.read(&mut buf).await {
                        server_spoke.store(true, Ordering::SeqCst);
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
    port
}

#[tokio::test]
async fn a_point_query_is_two_round_trips() {
    let fx = PgFixture::new().await;
    let wire = Arc::new(Wire::default());
    let port = relay(wire.clone()).await;
    // Without TLS, so the relay sees the protocol (not needed for the count).
    let url = format!(
        "{}?sslmode=disable",
        fx.url().replace(":5432/", &format!(":{port}/"))
    );
    let mut config = client_config();
    config.limits.pool_max_size = 1;
    let gw = Gateway::new(config);
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(url)))
        .await
        .expect("connects through the relay")
        .id
        .to_string();
    let sql = "SELECT hostname, status FROM servers WHERE id = $1";
    // The first call warms the session (type names, the pool).
    gw.execute_query(&id, sql, &[json!(7)], None)
        .await
        .expect("first");
    for (params, trips) in [
        // BEGIN with the resolution; then the DECLARE, FETCH and the end, in one flush.
        (vec![json!(8)], 2),
        // A string parameter whose type the database infers adds its Describe.
        (vec![json!("srv-9")], 3),
    ] {
        let sql = if params[0].is_string() {
            "SELECT hostname, status FROM servers WHERE hostname = $1"
        } else {
            sql
        };
        let before = wire.round_trips.load(Ordering::SeqCst);
        let r = gw
            .execute_query(&id, sql, &params, None)
            .await
            .expect("runs");
        let seen = wire.round_trips.load(Ordering::SeqCst) - before;
        assert_eq!(r.rows.len(), 1, "{sql}");
        assert_eq!(seen, trips, "{sql} with {params:?}: {seen} round trips");
    }
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
