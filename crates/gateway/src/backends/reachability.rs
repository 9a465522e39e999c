//! Why a database server cannot be reached, in words an operator can act on: the driver's
//! pool retries a failed connect until its acquire timeout and then reports only that no
//! pooled connection became free, and a server that speaks another protocol gives a
//! message about a nonsensical length. Before a pool is opened (and when a pool times out
//! at run time), one probe names the cause: a DNS failure, connection refused at
//! host:port, timed out connecting, or not a PostgreSQL / MySQL server.
//!
//! The probe sends no credential: for PostgreSQL only the protocol's 8-byte SSLRequest
//! (any PostgreSQL server answers it with one byte, `S` or `N`); for MySQL it only reads
//! the greeting the server sends first (protocol version 10).
//!
//! Invariant: messages name the host and port the operator configured, never a user name
//! or password.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::DbKind;
use crate::error::GatewayError;

/// How long the probe waits for a TCP connection and then for the server's first bytes.
/// Five seconds: the pool's default acquire timeout, so a probe never takes longer than
/// the failure it explains.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn unavailable(msg: String) -> GatewayError {
    GatewayError::ConnectionUnavailable(msg)
}

/// Checks that `host:port` resolves, accepts a connection and speaks `kind`'s protocol.
pub(crate) async fn probe(kind: DbKind, host: &str, port: u16) -> Result<(), GatewayError> {
    // SQLite has no server; a host that is a directory is a Unix socket, left to the driver.
    if kind == DbKind::Sqlite || host.is_empty() || host.starts_with('/') {
        return Ok(());
    }
    let at = format!("{host}:{port}");
    let addrs: Vec<std::net::SocketAddr> =
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::lookup_host(at.clone())).await {
            Err(_) => {
                return Err(unavailable(format!(
                    "timed out resolving the host name `{host}`"
                )));
            }
            Ok(Err(_)) => {
                return Err(unavailable(format!(
                    "DNS failure: the host name `{host}` does not resolve"
                )));
            }
            Ok(Ok(a)) => a.collect(),
        };
    let mut last = None;
    let mut stream = None;
    for addr in &addrs {
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Some(format!(
                    "connection refused at {at} (is the server running?)"
                ));
            }
            Ok(Err(e)) => last = Some(format!("cannot connect to {at}: {e}")),
            Err(_) => {
                last = Some(format!(
                    "timed out connecting to {at} after {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
        }
    }
    let Some(mut stream) = stream else {
        return Err(unavailable(
            last.unwrap_or_else(|| format!("`{host}` resolves to no address")),
        ));
    };
    let silent = || {
        unavailable(format!(
            "{at} accepted the connection but did not answer within {} s",
            PROBE_TIMEOUT.as_secs()
        ))
    };
    match kind {
        DbKind::Postgresql => {
            // SSLRequest: length 8, code 80877103.
            let request = [0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
            stream
                .write_all(&request)
                .await
                .map_err(|e| unavailable(format!("cannot talk to {at}: {e}")))?;
            let mut answer = [0u8; 1];
            match tokio::time::timeout(PROBE_TIMEOUT, stream.read(&mut answer)).await {
                Err(_) => Err(silent()),
                Ok(Ok(1)) if answer[0] == b'S' || answer[0] == b'N' => Ok(()),
                Ok(_) => Err(unavailable(format!(
                    "{at} is not a PostgreSQL server (it does not speak the PostgreSQL protocol)"
                ))),
            }
        }
        DbKind::Mysql => {
            // The greeting: a 4-byte packet header, then protocol version 10 (or 0xff and
            // an error, e.g. too many connections, which the driver will report itself).
            let mut greeting = [0u8; 5];
            match tokio::time::timeout(PROBE_TIMEOUT, stream.read_exact(&mut greeting)).await {
                Err(_) => Err(silent()),
                Ok(Ok(_)) if greeting[4] == 10 || greeting[4] == 0xff => Ok(()),
                Ok(_) => Err(unavailable(format!(
                    "{at} is not a MySQL or MariaDB server (it does not speak the MySQL protocol)"
                ))),
            }
        }
        DbKind::Sqlite => Ok(()),
    }
}
