//! The gateway's configuration: one strict struct, read from `dbward.toml` or the JSON
//! form `{"connections": {"name": {"type": "postgresql", ..., "credentialsEnv": "ENV"}}}`.
//!
//! Invariant: credentials never appear in config, only the *name* of an environment
//! variable holding `username:password`, resolved at connect time into a `SecretString`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dbward_policy::PolicyConfig;
use serde::Deserialize;

use crate::error::GatewayError;

/// The whole gateway configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Named connections, the normal way to connect. Default none.
    pub connections: BTreeMap<String, NamedConnection>,
    /// Whether clients may connect with their own parameters or URLs (their credentials
    /// would pass through the model's context). Default false.
    #[serde(alias = "allowClientConnections")]
    pub allow_client_connections: bool,
    /// Row, byte, time and pool limits.
    pub limits: Limits,
    /// The policy engine's settings.
    pub policy: PolicyConfig,
    /// Anomaly detection thresholds and responses.
    pub detector: crate::detector::DetectorConfig,
    /// The audit log.
    pub audit: AuditSettings,
    /// Who may use which connection, tool and data; without it, every caller may use
    /// everything (see [`crate::access`]).
    pub access: Option<crate::access::AccessConfig>,
    /// How HTTP callers authenticate besides bearer tokens (`[auth.oauth]`).
    pub auth: AuthConfig,
    /// The web UI's settings that belong in the file (`[web.oidc]`); the child server
    /// reads them too, to know the one identity provider its web host may vouch for.
    pub web: WebSettings,
}

/// `[web]`: the web UI's settings kept in the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// Sign-in through an OpenID Connect provider (authorization code with PKCE).
    pub oidc: Option<OidcLoginConfig>,
}

/// `[web.oidc]`: people sign in to the web UI through an OpenID Connect provider, and each
/// is then the principal `NAME:SUB`, as an OAuth caller of that provider is over HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcLoginConfig {
    /// The provider's issuer identifier (the `iss` of its ID tokens); its endpoints are
    /// found at `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id registered at the provider for this UI (ID tokens' `aud`).
    pub client_id: String,
    /// The environment variable holding the client secret, for a confidential client
    /// (sent with HTTP Basic authentication). Default none: a public client (PKCE only).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The scopes asked for. Default `openid profile email`; `openid` is always asked.
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// The callback URL registered at the provider: the UI's public address with
    /// `/auth/callback` (`https://dbward.example.com/auth/callback`).
    pub redirect_url: String,
    /// The provider's name on the login page ("Sign in with NAME"). Default: `name`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The provider's short name, which prefixes subjects in principals (`corp:alice`).
    /// Default: the issuer's host name, as `[auth.oauth]`'s `name`.
    #[serde(default)]
    pub name: Option<String>,
    /// Accepted ID token signature algorithms: `RS256`, `ES256` (default both).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `iat`, in seconds. Default 60.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_s: u64,
}

fn default_oidc_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

impl OidcLoginConfig {
    /// The short name of the provider, prefixing principals.
    pub fn short_name(&self) -> String {
        short_name(&self.issuer, self.name.as_deref())
    }

    /// The name the login page shows.
    pub fn display(&self) -> String {
        self.display_name
            .clone()
            .unwrap_or_else(|| self.short_name())
    }
}

/// An issuer's short name: `name` when given, else the issuer URL's host.
fn short_name(issuer: &str, name: Option<&str>) -> String {
    if let Some(n) = name {
        return n.to_string();
    }
    let rest = issuer.split_once("://").map(|(_, r)| r).unwrap_or(issuer);
    let host = rest.split(['/', ':']).next().unwrap_or(rest);
    if host.is_empty() {
        "oauth".into()
    } else {
        host.to_string()
    }
}

/// `[auth]`: authentication of HTTP callers beyond the token file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// An OAuth 2.1 authorization server whose access tokens are accepted.
    pub oauth: Option<OAuthConfig>,
}

/// `[auth.oauth]`: dbward as an OAuth 2.1 resource server (the MCP authorization spec).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The authorization server's issuer identifier (the `iss` of its tokens).
    pub issuer: String,
    /// This server's resource URL (`https://host/mcp`): tokens must name it in `aud`.
    pub audience: String,
    /// Where the signing keys are; default: the `jwks_uri` of the issuer's
    /// `/.well-known/openid-configuration` or `/.well-known/oauth-authorization-server`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Accepted signature algorithms: `RS256`, `ES256` (default both). Never `none` or HS*.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds. Default 60.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_s: u64,
    /// Scopes every token must carry. Default none.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// The issuer's short name, which prefixes subjects in principals (`idp:alice`).
    /// Default: the issuer's host name.
    #[serde(default)]
    pub name: Option<String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into()]
}

fn default_clock_skew() -> u64 {
    60
}

impl OAuthConfig {
    /// The short name of the issuer, prefixing principals.
    pub fn short_name(&self) -> String {
        short_name(&self.issuer, self.name.as_deref())
    }
}

/// `[audit]`: where and how the audit log is written. On by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Whether calls are audited. Default true.
    pub enabled: bool,
    /// The log file. Default `audit.jsonl` in the data directory.
    pub path: Option<PathBuf>,
    /// `"always"` (fsync each entry) or a number of milliseconds between fsyncs. Entries
    /// are in the kernel before a call returns either way. Default 100.
    pub fsync: FsyncSetting,
    /// Whether entries hold the query text (restricted data). Default false.
    pub store_query_text: bool,
    /// Environment variable holding an HMAC key for the chain. Default none (SHA-256).
    pub hmac_key_env: Option<String>,
    /// Rotate past this many bytes. Default 64 MiB.
    pub max_file_bytes: u64,
}

/// The `fsync` setting: `"always"` or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FsyncSetting {
    /// fsync every N ms.
    EveryMs(u64),
    /// `"always"`.
    Named(FsyncNamed),
}

/// Named fsync settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncNamed {
    /// fsync every entry.
    Always,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            path: None,
            fsync: FsyncSetting::EveryMs(100),
            store_query_text: false,
            hmac_key_env: None,
            max_file_bytes: 64 * 1024 * 1024,
        }
    }
}

impl AuditSettings {
    /// Where the audit log goes: `path` (the command line's `--audit-log`), else the
    /// configured path, else `audit.jsonl` in `data_dir`; `None` when auditing is off and
    /// no path was given.
    pub fn path_for(&self, path: Option<PathBuf>, data_dir: &Path) -> Option<PathBuf> {
        if !self.enabled && path.is_none() {
            return None;
        }
        Some(
            path.or_else(|| self.path.clone())
                .unwrap_or_else(|| data_dir.join("audit.jsonl")),
        )
    }

    /// Opens the audit log these settings describe (`None` when disabled). `path` overrides
    /// the configured path (the command line's `--audit-log`); `data_dir` is where the
    /// default file goes.
    pub fn open(
        &self,
        path: Option<PathBuf>,
        data_dir: &Path,
    ) -> Result<Option<crate::audit::AuditLog>, GatewayError> {
        let Some(path) = self.path_for(path, data_dir) else {
            return Ok(None);
        };
        let mut cfg = crate::audit::AuditConfig::new(path);
        cfg.fsync = match self.fsync {
            FsyncSetting::EveryMs(ms) => crate::audit::FsyncPolicy::EveryMs(ms),
            FsyncSetting::Named(FsyncNamed::Always) => crate::audit::FsyncPolicy::EveryEntry,
        };
        cfg.store_query_text = self.store_query_text;
        cfg.max_file_bytes = self.max_file_bytes;
        if let Some(var) = &self.hmac_key_env {
            let key = std::env::var(var).map_err(|_| {
                GatewayError::Config(format!("audit.hmac_key_env: {var} is not set"))
            })?;
            cfg.hmac_key = Some(secrecy::SecretBox::new(Box::new(key.into_bytes())));
        }
        crate::audit::AuditLog::open(cfg)
            .map(Some)
            .map_err(|e| GatewayError::Config(e.to_string()))
    }
}

/// The database kinds dbward speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    /// PostgreSQL.
    #[serde(alias = "postgres")]
    Postgresql,
    /// MySQL or MariaDB.
    #[serde(alias = "mariadb")]
    Mysql,
    /// SQLite, always opened read-only.
    #[serde(alias = "sqlite3")]
    Sqlite,
}

impl DbKind {
    /// The policy dialect for this kind.
    pub fn dialect(self) -> dbward_policy::Dialect {
        match self {
            DbKind::Postgresql => dbward_policy::Dialect::Postgres,
            DbKind::Mysql => dbward_policy::Dialect::Mysql,
            DbKind::Sqlite => dbward_policy::Dialect::Sqlite,
        }
    }

    /// The name used in config and metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Postgresql => "postgresql",
            DbKind::Mysql => "mysql",
            DbKind::Sqlite => "sqlite",
        }
    }
}

/// TLS modes, as PostgreSQL names them. `verify-full` checks the certificate chain and the
/// host name (through rustls); `disable` sends everything in clear (loopback only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, no verification (the driver default).
    #[default]
    Prefer,
    /// TLS required, certificate not verified.
    Require,
    /// TLS required, certificate chain verified.
    VerifyCa,
    /// TLS required, chain and host name verified.
    VerifyFull,
}

impl SslMode {
    /// Parses the PostgreSQL spelling (`verify-full`).
    pub fn parse(s: &str) -> Result<SslMode, GatewayError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(GatewayError::InvalidInput(format!(
                    "unknown sslmode `{other}` (disable, prefer, require, verify-ca, verify-full)"
                )));
            }
        })
    }
}

/// One named connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedConnection {
    /// `postgresql` (or `postgres`), `mysql` (or `mariadb`), `sqlite`.
    #[serde(rename = "type")]
    pub kind: DbKind,
    /// Host name or address (server databases). Default `localhost`.
    pub host: Option<String>,
    /// Port. Default 5432 (PostgreSQL) or 3306 (MySQL).
    pub port: Option<u16>,
    /// Database name (server databases).
    pub database: Option<String>,
    /// File path (SQLite).
    pub path: Option<PathBuf>,
    /// Name of the environment variable holding `username:password`.
    #[serde(alias = "credentialsEnv")]
    pub credentials_env: Option<String>,
    /// TLS mode. Default `prefer`.
    pub sslmode: Option<SslMode>,
    /// A least-privilege role to `SET LOCAL ROLE` to for every query (PostgreSQL).
    #[serde(alias = "readerRole")]
    pub reader_role: Option<String>,
    /// Settings set in each call's transaction from the caller's verified identity, for
    /// row-level security (PostgreSQL): `"app.user_dept" = "{claim:department}"`.
    #[serde(default, alias = "sessionSettings")]
    pub session_settings: BTreeMap<String, String>,
}

/// Limits, each with its default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Rows `execute_query` returns by default. Default 1,000.
    pub max_rows: usize,
    /// The most rows any call may ask for. Default 10,000.
    pub hard_max_rows: usize,
    /// Rows `read_table` returns at most. Default 100.
    pub read_table_max_rows: usize,
    /// Bytes of row data returned at most. Default 1 MiB.
    pub max_bytes: usize,
    /// Server-side statement timeout. Default 30,000 ms.
    pub statement_timeout_ms: u64,
    /// Lock wait timeout. Default 1,000 ms.
    pub lock_timeout_ms: u64,
    /// Idle-in-transaction timeout. Default 60,000 ms.
    pub idle_in_transaction_timeout_ms: u64,
    /// Connections per pool. Default 5.
    pub pool_max_size: u32,
    /// Wait for a pooled connection at most this long. Default 5,000 ms. (SQLite: a
    /// connection being opened for the call is waited for at least 1 s.)
    pub acquire_timeout_ms: u64,
    /// Close pooled connections idle this long. Default 300 s.
    pub idle_timeout_s: u64,
    /// Close an open connection id unused this long. Default 3,600 s.
    pub connection_idle_expiry_s: u64,
    /// Open connection ids at most. Default 16.
    pub max_open_connections: usize,
    /// Open connection ids one principal may hold at most (the operator's start-up
    /// connection does not count). Default 4: an assistant rarely needs more than a couple
    /// of databases at once, and with the default server-wide cap of 16 it leaves room for
    /// at least three other principals, so one token cannot take every id.
    pub max_connections_per_principal: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rows: 1_000,
            hard_max_rows: 10_000,
            read_table_max_rows: 100,
            max_bytes: 1024 * 1024,
            statement_timeout_ms: 30_000,
            lock_timeout_ms: 1_000,
            idle_in_transaction_timeout_ms: 60_000,
            pool_max_size: 5,
            acquire_timeout_ms: 5_000,
            idle_timeout_s: 300,
            connection_idle_expiry_s: 3_600,
            max_open_connections: 16,
            max_connections_per_principal: 4,
        }
    }
}

impl GatewayConfig {
    /// Reads `dbward.toml` (or a `.json` file in the JSON form).
    pub fn load(path: &Path) -> Result<GatewayConfig, GatewayError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GatewayError::Config(format!("cannot read {}: {e}", path.display())))?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// Parses the TOML form.
    pub fn from_toml(text: &str) -> Result<GatewayConfig, GatewayError> {
        let c: GatewayConfig =
            toml::from_str(text).map_err(|e| GatewayError::Config(e.to_string()))?;
        crate::access::validate(&c)?;
        c.validate_web()?;
        Ok(c)
    }

    /// Parses the JSON form.
    pub fn from_json(text: &str) -> Result<GatewayConfig, GatewayError> {
        let c: GatewayConfig =
            serde_json::from_str(text).map_err(|e| GatewayError::Config(e.to_string()))?;
        crate::access::validate(&c)?;
        c.validate_web()?;
        Ok(c)
    }

    /// `[web.oidc]` and `[auth.oauth]` of one issuer name its people alike: the same
    /// person is the same principal (and `sub:NAME:SUB` member) on both paths.
    fn validate_web(&self) -> Result<(), GatewayError> {
        let Some(w) = &self.web.oidc else {
            return Ok(());
        };
        if w.client_id.is_empty() || w.issuer.is_empty() || w.redirect_url.is_empty() {
            return Err(GatewayError::Config(
                "[web.oidc]: issuer, client_id and redirect_url are required".into(),
            ));
        }
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !valid_name(&w.short_name()) {
            return Err(GatewayError::Config(format!(
                "[web.oidc]: name `{}` must be 1 to 64 letters, digits, '-', '_' or '.'",
                w.short_name()
            )));
        }
        if let Some(o) = &self.auth.oauth
            && o.issuer.trim_end_matches('/') == w.issuer.trim_end_matches('/')
            && o.short_name() != w.short_name()
        {
            return Err(GatewayError::Config(format!(
                "[web.oidc] and [auth.oauth] share the issuer {} but name it `{}` and `{}`: give both the same `name`, so a person is one principal on both paths",
                w.issuer,
                w.short_name(),
                o.short_name()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_oidc_and_oauth_of_one_issuer_name_people_alike() {
        let base = r#"
[web.oidc]
issuer = "https://login.example.com"
client_id = "dbward"
redirect_url = "https://db.example.com/auth/callback"
"#;
        let c = GatewayConfig::from_toml(base).expect("parses");
        let w = c.web.oidc.expect("oidc");
        assert_eq!(w.short_name(), "login.example.com");
        assert_eq!(w.display(), "login.example.com");
        assert_eq!(w.scopes, vec!["openid", "profile", "email"]);
        let clash = format!(
            "{base}name = \"corp\"\n[auth.oauth]\nissuer = \"https://login.example.com\"\naudience = \"https://db.example.com/mcp\"\n"
        );
        let e = GatewayConfig::from_toml(&clash).expect_err("two names for one issuer");
        assert!(e.to_string().contains("same `name`"), "{e}");
        assert!(GatewayConfig::from_toml(&format!("{base}client_secret = \"x\"\n")).is_err());
    }

    #[test]
    fn json_form_with_credentials_env() {
        let c = GatewayConfig::from_json(
            r#"{"connections": {"default_postgres": {"type": "postgresql", "host": "localhost",
               "database": "mydatabase", "port": 5432, "credentialsEnv": "POSTGRES_CREDENTIALS"}}}"#,
        )
        .expect("parses");
        let n = &c.connections["default_postgres"];
        assert_eq!(n.kind, DbKind::Postgresql);
        assert_eq!(n.credentials_env.as_deref(), Some("POSTGRES_CREDENTIALS"));
        assert!(!c.allow_client_connections);
    }

    #[test]
    fn audit_settings_parse() {
        let c = GatewayConfig::from_toml("[audit]\nfsync = \"always\"\nstore_query_text = true\n")
            .expect("parses");
        assert_eq!(c.audit.fsync, FsyncSetting::Named(FsyncNamed::Always));
        let c = GatewayConfig::from_toml("[audit]\nfsync = 250\n").expect("parses");
        assert_eq!(c.audit.fsync, FsyncSetting::EveryMs(250));
        assert!(c.audit.enabled);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = GatewayConfig::from_toml("[connections.x]\ntype = \"sqlite\"\npassword = \"p\"\n")
            .expect_err("password is not a config field");
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
