//! Opening the pool: TLS mode, the options every pooled session starts with, and the
//! one round trip that checks the server and reads its version.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::Executor;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions, MySqlSslMode};

use super::types::text_at;
use super::{MyBackend, PIN_SQL_MODE, classify};
use crate::config::{Limits, SslMode};
use crate::connection::ConnectSpec;
use crate::error::GatewayError;

fn ssl(mode: SslMode) -> MySqlSslMode {
    match mode {
        SslMode::Disable => MySqlSslMode::Disabled,
        SslMode::Prefer => MySqlSslMode::Preferred,
        SslMode::Require => MySqlSslMode::Required,
        SslMode::VerifyCa => MySqlSslMode::VerifyCa,
        SslMode::VerifyFull => MySqlSslMode::VerifyIdentity,
    }
}

/// Any failure while opening the pool means the connection is unavailable; a login refusal
/// says so.
fn classify_connect(e: sqlx::Error, secrets: &[&str]) -> GatewayError {
    let login = matches!(&e, sqlx::Error::Database(db)
        if db.try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|m| matches!(m.number(), 1044 | 1045 | 1698)));
    match classify(e, secrets) {
        GatewayError::ConnectionUnavailable(m) => GatewayError::ConnectionUnavailable(m),
        other => {
            let msg = match other {
                GatewayError::PermissionDenied(m) | GatewayError::Database(m) => m,
                o => o.to_string(),
            };
            if login {
                GatewayError::ConnectionUnavailable(format!("login refused: {msg}"))
            } else {
                GatewayError::ConnectionUnavailable(msg)
            }
        }
    }
}

impl MyBackend {
    /// Opens a pool and checks the connection with one round trip.
    pub async fn connect(spec: &ConnectSpec, limits: &Limits) -> Result<MyBackend, GatewayError> {
        let mut opts = MySqlConnectOptions::new()
            .host(&spec.host)
            .port(spec.port)
            .ssl_mode(ssl(spec.sslmode))
            // sqlx would append PIPES_AS_CONCAT to the server's mode; the mode is pinned
            // whole below instead.
            .pipes_as_concat(false)
            .no_engine_substitution(false)
            // No packet larger than this is ever buffered (see `message_limit`).
            .max_packet_len(crate::backends::message_limit(limits.max_bytes));
        if let Some(u) = &spec.username {
            opts = opts.username(u);
        }
        if let Some(p) = &spec.password {
            opts = opts.password(p.expose_secret());
        }
        if let Some(d) = &spec.database {
            opts = opts.database(d);
        }
        let secrets = spec.secrets();
        let pool = MySqlPoolOptions::new()
            .max_connections(limits.pool_max_size)
            .acquire_timeout(Duration::from_millis(limits.acquire_timeout_ms))
            .idle_timeout(Duration::from_secs(limits.idle_timeout_s))
            .test_before_acquire(true)
            // Every session reads SQL the way the policy's parser did, whatever the
            // server's global sql_mode (ANSI_QUOTES would make "ssn" a column,
            // NO_BACKSLASH_ESCAPES would end 'x\' early). Catalog reads run with it too.
            // `execute` sets it again before each query.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(PIN_SQL_MODE).await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| classify_connect(e, &secrets))?;
        // The version and the posture on one checkout: a connection given back is
        // returned by a spawned task, so checkouts right after each other would each open
        // a session of their own at start-up.
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| classify_connect(e, &secrets))?;
        let row = sqlx::query("SELECT version()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| classify_connect(e, &secrets))?;
        let posture = super::catalog::posture_on(&mut conn).await?;
        drop(conn);
        let server_version = text_at(&row, 0).unwrap_or_default();
        let mariadb = server_version.to_ascii_lowercase().contains("mariadb");
        Ok(MyBackend {
            pool,
            mariadb,
            server_version,
            catalog_timeout_ms: limits.statement_timeout_ms,
            catalog_lock_timeout_ms: limits.lock_timeout_ms,
            connect_posture: std::sync::Arc::new(std::sync::Mutex::new(Some(posture))),
        })
    }
}
