//! `[access]` roles at the gateway, on the SQLite demo database: grants of tools and
//! connections, a role's stricter policy (and the SQLite authorizer enforcing it alone),
//! the row cap, what `list_connections` shows, and audited `forbidden` refusals.

mod common;

use std::sync::Arc;

use dbward_gateway::access::Identity;
use dbward_gateway::backends::Caps;
use dbward_gateway::backends::sqlite::SqliteBackend;
use dbward_gateway::calls::{CallContext, with_context};
use dbward_gateway::{ConnectRequest, ConnectSpec, DbKind, Gateway, GatewayConfig};
use dbward_policy::{Policy, PolicyConfig};

fn who(key: &str) -> CallContext {
    CallContext::new(key, None).with_identity(Identity::keyed(key))
}

async fn demo_gateway(extra: &str) -> (Arc<Gateway>, String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(common::unique("dbward_access"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dbward_gateway::demo::ensure_demo_db(&dir.join("demo.db")).expect("demo db");
    let config = GatewayConfig::from_toml(&format!(
        r#"
[connections.demo]
type = "sqlite"
path = "{}"

[connections.copy]
type = "sqlite"
path = "{}"
{extra}
"#,
        path.display(),
        path.display()
    ))
    .expect("config");
    let named = config.connections["demo"].clone();
    let g = Arc::new(Gateway::new(config));
    let spec = ConnectSpec::from_named("demo", &named).expect("spec");
    let id = g.connect_trusted(spec).await.expect("opens").id.to_string();
    (g, id, dir)
}

const ROLES: &str = r#"
[access.roles.analyst]
members = ["token:analyst"]
connections = ["default"]
tools = ["list_connections", "execute_query", "list_tables"]
denied_tables = ["applications"]
denied_columns = ["servers.ip_address"]
max_rows = 5

[access.roles.admin]
members = ["token:admin"]
connections = ["*"]
tools = ["*"]
"#;

#[tokio::test]
async fn roles_grant_tools_connections_and_a_stricter_policy() {
    let (g, id, dir) = demo_gateway(ROLES).await;
    let q = |sql: &'static str, who: CallContext, limit: Option<usize>| {
        let (g, id) = (g.clone(), id.clone());
        async move {
            with_context(who, async { g.execute_query(&id, sql, &[], limit).await })
                .await
                .map_err(|e| (e.code(), e.to_string()))
        }
    };
    // The analyst's own deny-lists apply to it, not to the admin.
    let e = q("SELECT name FROM applications", who("token:analyst"), None)
        .await
        .expect_err("denied for the analyst");
    assert_eq!(e.0, "policy_refused", "{e:?}");
    assert!(
        q("SELECT name FROM applications", who("token:admin"), None)
            .await
            .is_ok()
    );
    let e = q("SELECT ip_address FROM servers", who("token:analyst"), None)
        .await
        .expect_err("denied column");
    assert!(e.1.contains("column.denied"), "{e:?}");
    assert!(
        q(
            "SELECT hostname FROM servers",
            who("token:analyst"),
            Some(5)
        )
        .await
        .is_ok()
    );
    // The row cap: at most 5, and 5 by default.
    let e = q("SELECT id FROM servers", who("token:analyst"), Some(6))
        .await
        .expect_err("over the role's cap");
    assert_eq!(e.0, "invalid_input");
    let r = with_context(
        who("token:analyst"),
        g.execute_query(&id, "SELECT id FROM servers", &[], None),
    )
    .await
    .expect("capped");
    assert_eq!(r.rows.len(), 5);
    assert!(r.truncated);
    // A tool no role grants, and a caller with no role: forbidden, and audited as such.
    let e = with_context(who("token:analyst"), g.describe_table(&id, None, "servers"))
        .await
        .expect_err("describe_table not granted");
    assert_eq!(e.code(), "forbidden");
    assert!(e.to_string().contains("describe_table"), "{e}");
    let e = q("SELECT 1", who("token:nobody"), None)
        .await
        .expect_err("no role");
    assert_eq!(e.0, "forbidden");
    let e = q("SELECT 1", who("stdio"), None)
        .await
        .expect_err("stdio holds no role here");
    assert_eq!(e.0, "forbidden");
    // Connections: the admin opens `copy`; the analyst neither sees nor uses it, nor may
    // it open a named connection its roles do not grant.
    let copy = with_context(
        who("token:admin"),
        g.connect(ConnectRequest::Named("copy".into())),
    )
    .await
    .expect("admin opens copy")
    .id
    .to_string();
    let seen: Vec<String> = with_context(who("token:analyst"), async { g.list_connections() })
        .await
        .into_iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(seen, vec![id.clone()]);
    let all = with_context(who("token:admin"), async { g.list_connections() }).await;
    assert_eq!(all.len(), 2);
    let e = with_context(who("token:analyst"), g.list_tables(&copy, None))
        .await
        .expect_err("not granted");
    assert_eq!(e.code(), "forbidden");
    assert!(e.to_string().contains("copy"), "{e}");
    let e = with_context(
        who("token:analyst"),
        g.connect(ConnectRequest::Named("copy".into())),
    )
    .await
    .expect_err("connect not granted");
    assert_eq!(e.code(), "forbidden");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_sqlite_authorizer_enforces_a_roles_denials_without_the_parser() {
    let dir = std::env::temp_dir().join(common::unique("dbward_access_auth"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dbward_gateway::demo::ensure_demo_db(&dir.join("demo.db")).expect("demo db");
    let limits = dbward_gateway::Limits::default();
    let global = Policy::new(PolicyConfig::default());
    let backend = SqliteBackend::connect(&path, &limits, &global)
        .await
        .expect("opens");
    let caps = Caps::new(&limits, 10);
    // The backend alone (no policy verdict): the connection's rules allow the table...
    assert!(
        backend
            .execute("SELECT count(*) FROM applications", &[], caps)
            .await
            .is_ok()
    );
    // ...a role's stricter policy, handed to this call, makes the authorizer refuse it,
    // through a view or a subquery alike.
    let role = Arc::new(Policy::new(PolicyConfig {
        denied_tables: vec!["applications".into()],
        denied_columns: vec!["servers.ip_address".into()],
        ..PolicyConfig::default()
    }));
    for sql in [
        "SELECT count(*) FROM applications",
        "SELECT (SELECT max(owner_email) FROM applications)",
        "SELECT ip_address FROM servers",
        "SELECT count(*) FROM servers WHERE ip_address LIKE '10.%'",
    ] {
        let e = backend
            .execute_as(sql, &[], caps, Some(role.clone()))
            .await
            .expect_err(sql);
        assert!(
            matches!(e.code(), "permission_denied" | "policy_refused"),
            "{sql}: {e}"
        );
    }
    assert!(
        backend
            .execute_as("SELECT hostname FROM servers", &[], caps, Some(role))
            .await
            .is_ok()
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn access_configuration_is_checked_when_loaded() {
    let bad = [
        ("[access]\n", "no roles"),
        (
            "[access.roles.r]\nmembers = [\"alice\"]\ntools = [\"*\"]\n",
            "member `alice`",
        ),
        (
            "[access.roles.r]\nmembers = [\"*\"]\ntools = [\"drop_database\"]\n",
            "unknown tool",
        ),
        (
            "[access.roles.r]\nmembers = [\"*\"]\nconnections = [\"nope\"]\n",
            "unknown connection",
        ),
        (
            "[access.roles.r]\nmembers = [\"*\"]\nsession_settings = { \"role\" = \"{sub}\" }\n",
            "custom setting",
        ),
        (
            "[access.roles.r]\nmembers = [\"*\"]\nsession_settings = { \"app.x\" = \"{password}\" }\n",
            "unknown placeholder",
        ),
        (
            "[connections.m]\ntype = \"mysql\"\nsession_settings = { \"app.x\" = \"{sub}\" }\n",
            "need PostgreSQL",
        ),
        (
            "[connections.p]\ntype = \"postgresql\"\nsession_settings = { \"app.x\" = \"{sub}\" }\n[access.roles.r]\nmembers = [\"*\"]\nsession_settings = { \"app.x\" = \"{claim:d}\" }\n",
            "also set by",
        ),
    ];
    for (toml, expected) in bad {
        let e = GatewayConfig::from_toml(toml).expect_err(toml);
        assert!(e.to_string().contains(expected), "{toml}: {e}");
    }
    let ok = GatewayConfig::from_toml(ROLES).expect("valid");
    assert!(ok.access.is_some());
    assert_eq!(DbKind::Sqlite.as_str(), "sqlite");
}
