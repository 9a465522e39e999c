//! Connection targets, opaque ids and masked targets.
//!
//! Invariants:
//! - A [`ConnectionId`] is 128 random bits, never derived from the target.
//! - A [`MaskedTarget`] has no way back to the secret: it is built from the parts without
//!   the password, and is all a client ever sees of where a connection goes.
//! - Passwords live in `SecretString` from the moment they are read until the driver's
//!   options are built; `ConnectSpec`'s `Debug` never shows them.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::config::{DbKind, NamedConnection, SslMode};
use crate::error::GatewayError;

/// An opaque, unguessable connection id (32 hex characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ConnectionId(String);

impl ConnectionId {
    /// A fresh random id.
    pub fn random() -> ConnectionId {
        let bytes: [u8; 16] = rand::random();
        ConnectionId(hex::encode(bytes))
    }

    /// The id as a client sends it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a client-sent id; anything but 32 hex characters is not an id.
    pub fn parse(s: &str) -> Result<ConnectionId, GatewayError> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(ConnectionId(s.to_ascii_lowercase()))
        } else {
            Err(GatewayError::UnknownConnection)
        }
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a connection goes, with the password replaced by `****`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskedTarget(String);

impl MaskedTarget {
    /// The masked form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MaskedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything needed to open one connection. Holds the password as a secret.
pub struct ConnectSpec {
    /// The database kind.
    pub kind: DbKind,
    /// Host (server databases).
    pub host: String,
    /// Port (server databases).
    pub port: u16,
    /// Database name (server databases).
    pub database: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// Password, secret.
    pub password: Option<SecretString>,
    /// File path (SQLite).
    pub path: Option<PathBuf>,
    /// TLS mode.
    pub sslmode: SslMode,
    /// Role to `SET LOCAL ROLE` to (PostgreSQL).
    pub reader_role: Option<String>,
    /// The config name, for named connections.
    pub name: Option<String>,
}

impl fmt::Debug for ConnectSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectSpec({})", self.masked())
    }
}

impl ConnectSpec {
    /// The masked target: `postgresql://app:****@host:5432/db`.
    pub fn masked(&self) -> MaskedTarget {
        if self.kind == DbKind::Sqlite {
            let p = self
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return MaskedTarget(format!("sqlite://{p}"));
        }
        let user = match (&self.username, &self.password) {
            (Some(u), Some(_)) => format!("{u}:****@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        };
        let db = self.database.as_deref().unwrap_or("");
        MaskedTarget(format!(
            "{}://{user}{}:{}/{db}",
            self.kind.as_str(),
            self.host,
            self.port
        ))
    }

    /// The secrets to scrub from any driver message about this connection.
    pub fn secrets(&self) -> Vec<&str> {
        self.password.iter().map(|p| p.expose_secret()).collect()
    }

    /// From a named connection in config; credentials come from its environment variable.
    pub fn from_named(name: &str, n: &NamedConnection) -> Result<ConnectSpec, GatewayError> {
        let (username, password) = match &n.credentials_env {
            Some(var) => {
                let value = std::env::var(var).map_err(|_| {
                    GatewayError::Config(format!(
                        "connection `{name}`: environment variable {var} is not set (it must hold username:password)"
                    ))
                })?;
                let value = SecretString::from(value);
                let (u, p) = value.expose_secret().split_once(':').ok_or_else(|| {
                    GatewayError::Config(format!(
                        "connection `{name}`: {var} must hold username:password"
                    ))
                })?;
                (Some(u.to_string()), Some(SecretString::from(p.to_string())))
            }
            None => (None, None),
        };
        if n.kind == DbKind::Sqlite && n.path.is_none() {
            return Err(GatewayError::Config(format!(
                "connection `{name}`: a sqlite connection needs `path`"
            )));
        }
        Ok(ConnectSpec {
            kind: n.kind,
            host: n.host.clone().unwrap_or_else(|| "localhost".into()),
            port: n.port.unwrap_or(default_port(n.kind)),
            database: n.database.clone(),
            username,
            password,
            path: n.path.clone(),
            sslmode: n.sslmode.unwrap_or_default(),
            reader_role: n.reader_role.clone(),
            name: Some(name.to_string()),
        })
    }

    /// From a connection string: `postgresql://user:pass@host:port/db?sslmode=verify-full`,
    /// `mysql://...`, `mariadb://...`, `sqlite:///path/to/file.db` or `sqlite:relative.db`.
    pub fn from_url(url: &SecretString) -> Result<ConnectSpec, GatewayError> {
        let text = url.expose_secret();
        // Never echo the URL: it may hold a password.
        let bad =
            |what: &str| GatewayError::InvalidInput(format!("invalid connection string: {what}"));
        let (scheme, _) = text.split_once(':').ok_or_else(|| bad("no scheme"))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => DbKind::Postgresql,
            "mysql" | "mariadb" => DbKind::Mysql,
            "sqlite" | "sqlite3" => DbKind::Sqlite,
            _ => return Err(bad("scheme must be postgresql, mysql, mariadb or sqlite")),
        };
        if kind == DbKind::Sqlite {
            let rest = &text[scheme.len() + 1..];
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(bad("no file path"));
            }
            return Ok(ConnectSpec {
                kind,
                host: String::new(),
                port: 0,
                database: None,
                username: None,
                password: None,
                path: Some(PathBuf::from(path)),
                sslmode: SslMode::Disable,
                reader_role: None,
                name: None,
            });
        }
        let parsed = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        let host = parsed.host_str().ok_or_else(|| bad("no host"))?.to_string();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let username = (!parsed.username().is_empty()).then(|| decode(parsed.username()));
        let password = parsed.password().map(|p| SecretString::from(decode(p)));
        let database = parsed
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|d| !d.is_empty())
            .map(decode);
        let mut sslmode = SslMode::default();
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "sslmode" | "ssl-mode" => {
                    sslmode = SslMode::parse(&v.to_ascii_lowercase().replace('_', "-"))?
                }
                "application_name" | "connect_timeout" => {}
                other => return Err(bad(&format!("unsupported parameter `{other}`"))),
            }
        }
        Ok(ConnectSpec {
            kind,
            host,
            port: parsed.port().unwrap_or(default_port(kind)),
            database,
            username,
            password,
            path: None,
            sslmode,
            reader_role: None,
            name: None,
        })
    }
}

/// The default port of a server database.
pub fn default_port(kind: DbKind) -> u16 {
    match kind {
        DbKind::Postgresql => 5432,
        DbKind::Mysql => 3306,
        DbKind::Sqlite => 0,
    }
}

/// What a client learns about an open connection.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionInfo {
    /// The opaque id to pass to every tool.
    pub id: ConnectionId,
    /// The config name, for named connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `postgresql`, `mysql` or `sqlite`.
    #[serde(rename = "type")]
    pub kind: DbKind,
    /// Where it goes, password masked.
    pub target: MaskedTarget,
    /// The server's version string.
    pub server_version: String,
    /// When it was opened (seconds since the Unix epoch).
    pub opened_at: u64,
    /// The role queries run as, read at connect time.
    pub role: String,
    /// Whether that role could change data if every other layer failed (superuser, write
    /// grants, create privileges, file or program roles). See `security_posture`.
    pub role_can_write: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing_masks_the_password_and_debug_hides_it() {
        let spec = ConnectSpec::from_url(&SecretString::from(
            "postgresql://app:Hunter%232@db.internal:5433/cmdb?sslmode=verify-full",
        ))
        .expect("parses");
        assert_eq!(
            spec.masked().as_str(),
            "postgresql://app:****@db.internal:5433/cmdb"
        );
        assert_eq!(
            spec.password.as_ref().map(|p| p.expose_secret()),
            Some("Hunter#2")
        );
        assert_eq!(spec.sslmode, SslMode::VerifyFull);
        let debug = format!("{spec:?}");
        assert!(!debug.contains("Hunter"), "{debug}");
    }

    #[test]
    fn bad_urls_do_not_echo_their_text() {
        let e = ConnectSpec::from_url(&SecretString::from("ftp://u:Sekr1t@h/x"))
            .expect_err("bad scheme");
        assert!(!e.to_string().contains("Sekr1t"));
    }

    #[test]
    fn ids_are_random_and_well_formed() {
        let a = ConnectionId::random();
        let b = ConnectionId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(ConnectionId::parse(a.as_str()).is_ok());
        assert!(ConnectionId::parse("../../etc").is_err());
    }
}
