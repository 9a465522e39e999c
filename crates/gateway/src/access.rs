//! Who may use what: the roles of `[access]`, the identity of a caller, and the session
//! settings a caller's identity carries into the database.
//!
//! Without an `[access]` section every caller may use every connection and tool (a local
//! setup: stdio, a loopback HTTP server with one token). With it, a caller gets the roles
//! whose `members` match its identity, and anything no role grants is refused (`forbidden`).
//!
//! Invariants:
//! - Grants add up across a caller's roles (connections, tools); restrictions add up too
//!   (denied tables, columns, schemas; the smallest row cap; allowlists intersect). So a
//!   role's policy can only be stricter than the global one, and a second role never
//!   loosens a first one's restriction.
//! - Session settings come from the verified identity only, are bound as parameters (never
//!   spliced into SQL) and set inside the call's read-only transaction. A caller whose
//!   identity lacks a value a setting needs is refused; a setting is never run empty.
//! - A setting's name is a custom (`prefix.name`) setting: a template can never set
//!   `role`, `search_path` or a timeout.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use dbward_policy::{Policy, PolicyConfig};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{DbKind, GatewayConfig, Limits};
use crate::error::GatewayError;

/// Every tool a role can grant (the gateway's names for them).
pub const TOOLS: &[&str] = &[
    "list_connections",
    "connect",
    "close_connection",
    "list_tables",
    "describe_table",
    "read_table",
    "execute_query",
    "get_table_stats",
    "search_tables",
    "explain_query",
    "security_posture",
];

/// Longest value a session setting may take from an identity, in bytes.
pub const MAX_SETTING_VALUE_BYTES: usize = 1024;

/// `[access]`: the roles.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Roles by name.
    pub roles: BTreeMap<String, RoleConfig>,
}

/// `[access.roles.NAME]`: who holds the role, and what it grants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleConfig {
    /// Who holds it: `token:NAME` (a bearer token's name), `sub:ISSUER:SUBJECT` (an OAuth
    /// principal, as the audit log names it), `claim:NAME=VALUE` (a verified token claim
    /// equal to VALUE, or a list claim containing it), `stdio` (the stdio transport's
    /// caller), `local` (the CLI), or `*` (every authenticated caller).
    pub members: Vec<String>,
    /// Named connections it may use; `*` for every one, `default` for the server's start-up
    /// connection.
    pub connections: Vec<String>,
    /// Tools it may call; `*` for every one.
    pub tools: Vec<String>,
    /// Whether it may `connect` with its own parameters or URL (also needs
    /// `allow_client_connections`).
    pub client_connections: bool,
    /// A lower row cap for its queries.
    pub max_rows: Option<usize>,
    /// Tables it may not read, on top of the policy's.
    pub denied_tables: Vec<String>,
    /// Columns it may not read (`table.column`), on top of the policy's.
    pub denied_columns: Vec<String>,
    /// Schemas it may not read, on top of the policy's.
    pub denied_schemas: Vec<String>,
    /// Functions it may not call, on top of the policy's.
    pub denied_functions: Vec<String>,
    /// The only schemas it may read (intersected with the policy's allowlist).
    pub allowed_schemas: Vec<String>,
    /// The only tables it may read (intersected with the policy's allowlist).
    pub allowed_tables: Vec<String>,
    /// Settings set in each call's transaction from the caller's identity
    /// (`"app.user_dept" = "{claim:department}"`); see [`Template`].
    pub session_settings: BTreeMap<String, String>,
}

/// The verified identity of a caller, as its adapter established it.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The member keys it matches: `token:ci`, `sub:idp:alice`, `stdio`, `local`.
    pub keys: Vec<String>,
    /// The OAuth subject, if any.
    pub sub: Option<String>,
    /// The verified claims of its access token (empty without one).
    pub claims: serde_json::Map<String, Value>,
}

impl Identity {
    /// An identity matching just `key`.
    pub fn keyed(key: impl Into<String>) -> Identity {
        Identity {
            keys: vec![key.into()],
            ..Default::default()
        }
    }

    fn claim_matches(&self, name: &str, value: &str) -> bool {
        match self.claims.get(name) {
            Some(Value::Array(items)) => items.iter().any(|v| scalar(v).as_deref() == Some(value)),
            Some(v) => scalar(v).as_deref() == Some(value),
            None => false,
        }
    }

    fn is_member(&self, member: &str) -> bool {
        if member == "*" {
            return true;
        }
        if let Some(rest) = member.strip_prefix("claim:") {
            return rest
                .split_once('=')
                .is_some_and(|(n, v)| self.claim_matches(n, v));
        }
        self.keys.iter().any(|k| k == member)
    }
}

/// A claim's value as text, if it is a string, number or boolean.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One piece of a session setting's template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Sub,
    Principal,
    Claim(String),
}

/// A session setting's value: text with `{sub}`, `{principal}` and `{claim:NAME}` in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses a template; unknown placeholders and stray braces are refused.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!("stray `}}` in `{text}`"));
            }
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{text}`"))?
                + open;
            let name = &rest[open + 1..close];
            pieces.push(match name {
                "sub" => Piece::Sub,
                "principal" => Piece::Principal,
                _ => match name.strip_prefix("claim:") {
                    Some(c) if !c.is_empty() && !c.contains(['{', '}']) => {
                        Piece::Claim(c.to_string())
                    }
                    _ => {
                        return Err(format!(
                            "unknown placeholder `{{{name}}}` in `{text}` (use {{sub}}, {{principal}} or {{claim:NAME}})"
                        ));
                    }
                },
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        if !pieces.iter().any(|p| !matches!(p, Piece::Text(_))) {
            return Err(format!(
                "`{text}` takes nothing from the caller's identity; a constant belongs in the database, not here"
            ));
        }
        Ok(Template(pieces))
    }

    /// The value for `principal` with `identity`; names the missing part otherwise.
    pub fn render(&self, principal: &str, identity: &Identity) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Principal => out.push_str(principal),
                Piece::Sub => out.push_str(
                    identity
                        .sub
                        .as_deref()
                        .ok_or("the caller has no OAuth subject (`{sub}`)")?,
                ),
                Piece::Claim(c) => {
                    let v = identity
                        .claims
                        .get(c)
                        .ok_or_else(|| format!("the caller's token carries no `{c}` claim"))?;
                    let v = scalar(v).ok_or_else(|| {
                        format!("the caller's `{c}` claim is not a string, number or boolean")
                    })?;
                    if v.is_empty() {
                        return Err(format!("the caller's `{c}` claim is empty"));
                    }
                    out.push_str(&v);
                }
            }
        }
        if out.len() > MAX_SETTING_VALUE_BYTES || out.contains('\0') {
            return Err(format!(
                "the value is over {MAX_SETTING_VALUE_BYTES} bytes or holds a NUL byte"
            ));
        }
        Ok(out)
    }
}

/// Whether `name` is a custom setting (`prefix.name`, letters, digits and `_`): never a
/// server setting such as `role` or `statement_timeout`.
pub fn valid_setting_name(name: &str) -> bool {
    let ident = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !s.as_bytes()[0].is_ascii_digit()
    };
    match name.split_once('.') {
        Some((prefix, rest)) => ident(prefix) && ident(rest),
        None => false,
    }
}

/// Parses and checks a table of session settings (`what` names where it is, for errors).
pub fn parse_settings(
    what: &str,
    settings: &BTreeMap<String, String>,
) -> Result<Vec<(String, Template)>, GatewayError> {
    settings
        .iter()
        .map(|(name, value)| {
            if !valid_setting_name(name) {
                return Err(GatewayError::Config(format!(
                    "{what}: session setting `{name}` must be a custom setting `prefix.name` (letters, digits, `_`), such as `app.user_dept`"
                )));
            }
            let t = Template::parse(value)
                .map_err(|e| GatewayError::Config(format!("{what}: session setting `{name}`: {e}")))?;
            Ok((name.to_ascii_lowercase(), t))
        })
        .collect()
}

/// Checks `[access]` (and the connections' session settings) when the configuration is
/// loaded: unknown tools or connections, bad members, bad settings, settings on a database
/// that cannot carry them.
pub fn validate(config: &GatewayConfig) -> Result<(), GatewayError> {
    for (name, c) in &config.connections {
        let settings = parse_settings(&format!("connections.{name}"), &c.session_settings)?;
        if !settings.is_empty() && c.kind != DbKind::Postgresql {
            return Err(GatewayError::Config(format!(
                "connections.{name}: session_settings need PostgreSQL (row-level security reads them with current_setting); {} has no equivalent a view or policy can read",
                c.kind.as_str()
            )));
        }
    }
    let Some(access) = &config.access else {
        return Ok(());
    };
    if access.roles.is_empty() {
        return Err(GatewayError::Config(
            "[access] has no roles: every call would be refused. Add [access.roles.NAME] with members, connections and tools".into(),
        ));
    }
    let mut set_by: HashMap<String, String> = HashMap::new();
    for (name, c) in &config.connections {
        for key in c.session_settings.keys() {
            set_by.insert(key.to_ascii_lowercase(), format!("connections.{name}"));
        }
    }
    for (role, r) in &access.roles {
        let at = format!("access.roles.{role}");
        if r.members.is_empty() {
            return Err(GatewayError::Config(format!("{at}: no members")));
        }
        for m in &r.members {
            let ok = match m.as_str() {
                "*" | "stdio" | "local" => true,
                m => {
                    if let Some(rest) = m.strip_prefix("claim:") {
                        rest.split_once('=')
                            .is_some_and(|(n, v)| !n.is_empty() && !v.is_empty())
                    } else {
                        m.strip_prefix("token:")
                            .or_else(|| m.strip_prefix("sub:"))
                            .or_else(|| m.strip_prefix("web:"))
                            .is_some_and(|rest| !rest.is_empty())
                    }
                }
            };
            if !ok {
                return Err(GatewayError::Config(format!(
                    "{at}: member `{m}` is not one of token:NAME, sub:ISSUER:SUBJECT, claim:NAME=VALUE, web:USER, stdio, local, *"
                )));
            }
        }
        for t in &r.tools {
            if t != "*" && !TOOLS.contains(&t.as_str()) {
                return Err(GatewayError::Config(format!(
                    "{at}: unknown tool `{t}` (tools: {})",
                    TOOLS.join(", ")
                )));
            }
        }
        for c in &r.connections {
            if c != "*" && c != "default" && !config.connections.contains_key(c) {
                return Err(GatewayError::Config(format!(
                    "{at}: unknown connection `{c}` (named connections, `default` or `*`)"
                )));
            }
        }
        if r.max_rows == Some(0) {
            return Err(GatewayError::Config(format!(
                "{at}: max_rows must be at least 1"
            )));
        }
        parse_settings(&at, &r.session_settings)?;
        for key in r.session_settings.keys() {
            let key = key.to_ascii_lowercase();
            if let Some(other) = set_by.get(&key) {
                return Err(GatewayError::Config(format!(
                    "{at}: session setting `{key}` is also set by {other}; a caller holding both would get one of two values"
                )));
            }
            set_by.insert(key, at.clone());
        }
    }
    Ok(())
}

/// What a caller may do: the sum of its roles.
#[derive(Debug)]
pub struct Grants {
    /// The role names (sorted), for errors and the audit log.
    pub roles: Vec<String>,
    /// Every named connection (`None`) or these.
    connections: Option<BTreeSet<String>>,
    /// The server's start-up connection.
    default_connection: bool,
    /// Every tool (`None`) or these.
    tools: Option<BTreeSet<String>>,
    /// May connect with its own parameters.
    pub client_connections: bool,
    /// The policy its queries are judged by.
    pub policy: Arc<Policy>,
    /// Its policy is stricter than the global one (backends whose own layer was built
    /// from the global policy need this one per call).
    pub restricted: bool,
    /// Its row caps.
    pub limits: Limits,
    /// Session settings from its roles.
    pub settings: Vec<(String, Template)>,
    /// A role's settings that did not parse (a configuration built without [`validate`]):
    /// its calls are refused rather than run without them.
    pub settings_error: Option<String>,
}

impl Grants {
    /// Everything: no `[access]` section.
    fn everything(config: &GatewayConfig, policy: Arc<Policy>) -> Grants {
        Grants {
            roles: Vec::new(),
            connections: None,
            default_connection: true,
            tools: None,
            client_connections: true,
            policy,
            restricted: false,
            limits: config.limits.clone(),
            settings: Vec::new(),
            settings_error: None,
        }
    }

    /// Whether it may call `tool`.
    pub fn tool(&self, tool: &str) -> bool {
        self.tools.as_ref().is_none_or(|t| t.contains(tool))
    }

    /// Whether it may use a connection named `name` (`None`: unnamed), `pinned` when it is
    /// the server's start-up connection.
    pub fn connection(&self, name: Option<&str>, pinned: bool) -> bool {
        if pinned && self.default_connection {
            return true;
        }
        match (&self.connections, name) {
            (None, _) => true,
            (Some(set), Some(n)) => set.contains(n),
            (Some(_), None) => false,
        }
    }

    /// Whether any role was granted (with `[access]`, a caller with none gets nothing).
    pub fn any(&self) -> bool {
        !self.roles.is_empty() || self.tools.is_none()
    }
}

/// Resolves callers to their grants; caches the policy of each combination of roles.
pub struct Access {
    config: Option<AccessConfig>,
    base: Arc<Policy>,
    base_config: PolicyConfig,
    limits: Limits,
    everything: Arc<Grants>,
    cache: Mutex<HashMap<Vec<String>, Arc<Grants>>>,
    /// Each named connection's session settings, parsed once (an error: calls on it are
    /// refused rather than run without them).
    connection_settings: HashMap<String, Result<Vec<(String, Template)>, String>>,
}

impl Access {
    /// The access rules of `config` (assumed [`validate`]d), over the global `policy`.
    pub fn new(config: &GatewayConfig, policy: Arc<Policy>) -> Access {
        Access {
            everything: Arc::new(Grants::everything(config, policy.clone())),
            config: config.access.clone(),
            base: policy,
            base_config: config.policy.clone(),
            limits: config.limits.clone(),
            cache: Mutex::new(HashMap::new()),
            connection_settings: config
                .connections
                .iter()
                .filter(|(_, c)| !c.session_settings.is_empty())
                .map(|(n, c)| {
                    let parsed = parse_settings(&format!("connections.{n}"), &c.session_settings)
                        .map_err(|e| e.to_string());
                    (n.clone(), parsed)
                })
                .collect(),
        }
    }

    /// The session settings of the named connection `name` (none for unnamed ones).
    pub fn connection_settings(
        &self,
        name: Option<&str>,
    ) -> Result<&[(String, Template)], GatewayError> {
        match name.and_then(|n| self.connection_settings.get(n)) {
            None => Ok(&[]),
            Some(Ok(s)) => Ok(s),
            Some(Err(e)) => Err(GatewayError::Config(e.clone())),
        }
    }

    /// Whether `[access]` is in force.
    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// The grants of a caller with `identity`.
    pub fn grants(&self, identity: &Identity) -> Arc<Grants> {
        let Some(access) = &self.config else {
            return self.everything.clone();
        };
        let roles: Vec<String> = access
            .roles
            .iter()
            .filter(|(_, r)| r.members.iter().any(|m| identity.is_member(m)))
            .map(|(n, _)| n.clone())
            .collect();
        if let Some(g) = crate::lock(&self.cache).get(&roles) {
            return g.clone();
        }
        let g = Arc::new(self.build(access, &roles));
        crate::lock(&self.cache).insert(roles, g.clone());
        g
    }

    fn build(&self, access: &AccessConfig, roles: &[String]) -> Grants {
        let mut connections = BTreeSet::new();
        let mut all_connections = false;
        let mut default_connection = false;
        let mut tools = BTreeSet::new();
        let mut all_tools = false;
        let mut client_connections = false;
        let mut limits = self.limits.clone();
        let mut policy = self.base_config.clone();
        let mut settings = Vec::new();
        let mut settings_error = None;
        let mut stricter = false;
        for name in roles {
            let Some(r) = access.roles.get(name) else {
                continue;
            };
            for c in &r.connections {
                match c.as_str() {
                    "*" => {
                        all_connections = true;
                        default_connection = true;
                    }
                    "default" => default_connection = true,
                    c => {
                        connections.insert(c.to_string());
                    }
                }
            }
            for t in &r.tools {
                if t == "*" {
                    all_tools = true;
                } else {
                    tools.insert(t.clone());
                }
            }
            client_connections |= r.client_connections;
            if let Some(m) = r.max_rows {
                limits.max_rows = limits.max_rows.min(m);
                limits.hard_max_rows = limits.hard_max_rows.min(m);
                limits.read_table_max_rows = limits.read_table_max_rows.min(m);
            }
            for (list, add) in [
                (&mut policy.denied_tables, &r.denied_tables),
                (&mut policy.denied_columns, &r.denied_columns),
                (&mut policy.denied_schemas, &r.denied_schemas),
                (&mut policy.denied_functions, &r.denied_functions),
            ] {
                for x in add {
                    if !list.contains(x) {
                        list.push(x.clone());
                        stricter = true;
                    }
                }
            }
            if !r.allowed_schemas.is_empty() || !r.allowed_tables.is_empty() {
                let (s, t) = intersect_allowlists(
                    (&policy.allowed_schemas, &policy.allowed_tables),
                    (&r.allowed_schemas, &r.allowed_tables),
                );
                policy.allowed_schemas = s;
                policy.allowed_tables = t;
                stricter = true;
            }
            match parse_settings(&format!("access.roles.{name}"), &r.session_settings) {
                Ok(s) => settings.extend(s),
                Err(e) => settings_error = Some(e.to_string()),
            }
        }
        let restricted = stricter;
        let policy = if stricter {
            Arc::new(Policy::new(policy))
        } else {
            self.base.clone()
        };
        Grants {
            roles: roles.to_vec(),
            connections: (!all_connections).then_some(connections),
            default_connection,
            tools: (!all_tools).then_some(tools),
            client_connections,
            policy,
            restricted,
            limits,
            settings,
            settings_error,
        }
    }
}

/// The schema part of a qualified table name, lower-cased.
fn schema_of(table: &str) -> Option<String> {
    table
        .rsplit_once('.')
        .map(|(s, _)| s.trim_matches('"').to_ascii_lowercase())
}

/// The intersection of two allowlists, each "a table in one of these schemas, or one of
/// these tables"; an empty pair allows everything. The result never allows more than
/// either; when nothing is left, it names a schema no database can have (a NUL byte).
fn intersect_allowlists(
    a: (&Vec<String>, &Vec<String>),
    b: (&Vec<String>, &Vec<String>),
) -> (Vec<String>, Vec<String>) {
    let (sa, ta) = a;
    let (sb, tb) = b;
    if sa.is_empty() && ta.is_empty() {
        return (sb.clone(), tb.clone());
    }
    let lower = |v: &Vec<String>| -> BTreeSet<String> {
        v.iter().map(|s| s.to_ascii_lowercase()).collect()
    };
    let (lsa, lta, lsb, ltb) = (lower(sa), lower(ta), lower(sb), lower(tb));
    let schemas: Vec<String> = lsa.intersection(&lsb).cloned().collect();
    let mut tables = BTreeSet::new();
    for t in &lta {
        if ltb.contains(t) || schema_of(t).is_some_and(|s| lsb.contains(&s)) {
            tables.insert(t.clone());
        }
    }
    for t in &ltb {
        if lta.contains(t) || schema_of(t).is_some_and(|s| lsa.contains(&s)) {
            tables.insert(t.clone());
        }
    }
    let tables: Vec<String> = tables.into_iter().collect();
    if schemas.is_empty() && tables.is_empty() {
        return (vec!["\0".to_string()], Vec::new());
    }
    (schemas, tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(claims: Value) -> Identity {
        Identity {
            keys: vec!["sub:idp:alice".into()],
            sub: Some("alice".into()),
            claims: claims.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn templates_take_values_from_the_identity_only() {
        let t = Template::parse("{claim:department}").expect("parses");
        let alice = ident(serde_json::json!({"department": "eng", "n": 7}));
        assert_eq!(t.render("idp:alice", &alice).as_deref(), Ok("eng"));
        let e = t
            .render("idp:bob", &ident(serde_json::json!({})))
            .expect_err("missing claim");
        assert!(e.contains("department"), "{e}");
        let t = Template::parse("u-{sub}/{claim:n}").expect("parses");
        assert_eq!(t.render("p", &alice).as_deref(), Ok("u-alice/7"));
        assert!(Template::parse("constant").is_err());
        assert!(Template::parse("{claim:}").is_err());
        assert!(Template::parse("{password}").is_err());
        assert!(Template::parse("{sub").is_err());
        assert!(Template::parse("x}").is_err());
        let list = ident(serde_json::json!({"department": ["a", "b"]}));
        assert!(t.render("p", &list).is_err());
        let empty = ident(serde_json::json!({"department": ""}));
        assert!(
            Template::parse("{claim:department}")
                .expect("parses")
                .render("p", &empty)
                .is_err()
        );
    }

    #[test]
    fn setting_names_are_custom_settings_only() {
        assert!(valid_setting_name("app.user_dept"));
        for bad in [
            "role",
            "search_path",
            "statement_timeout",
            "app.",
            ".x",
            "a.b.c",
            "app.x-y",
            "app.x;drop",
        ] {
            assert!(!valid_setting_name(bad), "{bad}");
        }
    }

    #[test]
    fn claim_members_match_values_and_lists() {
        let i = ident(serde_json::json!({"groups": ["analysts", "ops"], "tier": 2}));
        assert!(i.is_member("claim:groups=ops"));
        assert!(i.is_member("claim:tier=2"));
        assert!(!i.is_member("claim:groups=admins"));
        assert!(i.is_member("sub:idp:alice"));
        assert!(!i.is_member("token:alice"));
        assert!(i.is_member("*"));
    }

    #[test]
    fn allowlists_only_shrink() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Global: everything; role: sales schema.
        assert_eq!(
            intersect_allowlists((&v(&[]), &v(&[])), (&v(&["sales"]), &v(&[]))),
            (v(&["sales"]), v(&[]))
        );
        // Global: public + hr.people; role: hr only -> hr.people only.
        assert_eq!(
            intersect_allowlists(
                (&v(&["public"]), &v(&["hr.people"])),
                (&v(&["hr"]), &v(&[]))
            ),
            (v(&[]), v(&["hr.people"]))
        );
        // Disjoint: nothing, never everything.
        let (s, t) = intersect_allowlists((&v(&["public"]), &v(&[])), (&v(&["hr"]), &v(&[])));
        assert_eq!((s, t), (v(&["\0"]), v(&[])));
    }
}
