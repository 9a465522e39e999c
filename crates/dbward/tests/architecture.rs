//! The dependency rules of ARCHITECTURE.md, checked against `cargo metadata`.

use std::collections::BTreeMap;
use std::process::Command;

/// Our crates, in layer order: a crate may depend only on crates before it.
const LAYERS: &[&str] = &[
    "dbward-policy",
    "dbward-gateway",
    "dbward-mcp",
    "dbward-assistant",
    "dbward-web",
    "dbward",
];

/// Crates that must never appear in the policy engine's dependency tree: it is pure.
/// (The gateway may use them; the policy may not.)
const POLICY_FORBIDDEN: &[&str] = &[
    "tokio",
    "sqlx",
    "rusqlite",
    "reqwest",
    "hyper",
    "axum",
    "rmcp",
    "async-std",
];

fn metadata() -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed");
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn workspace_crates_depend_only_downwards() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    // The workspace's own crates (the patched drivers under vendor/ have no source either).
    let ids: Vec<&serde_json::Value> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .collect();
    let members: BTreeMap<String, Vec<String>> = packages
        .iter()
        .filter(|p| ids.contains(&&p["id"]))
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null()) // normal dependencies only
                .map(|d| d["name"].as_str().unwrap_or_default().to_string())
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect();
    assert!(
        members.contains_key("dbward-policy"),
        "policy crate present"
    );
    for (name, deps) in &members {
        let my_layer = LAYERS
            .iter()
            .position(|l| l == name)
            .unwrap_or_else(|| panic!("crate {name} is not in ARCHITECTURE.md's layer list"));
        for dep in deps {
            if let Some(dep_layer) = LAYERS.iter().position(|l| l == dep) {
                assert!(
                    dep_layer < my_layer,
                    "forbidden edge: {name} depends on {dep}, which is above it"
                );
            }
            if dep == "rmcp" {
                assert_eq!(name, "dbward-mcp", "only dbward-mcp may depend on rmcp");
            }
        }
    }
}

#[test]
fn policy_engine_pulls_in_no_io_crates() {
    let meta = metadata();
    let resolve = &meta["resolve"]["nodes"];
    let nodes = resolve.as_array().expect("resolve graph");
    let id_of = |name: &str| {
        meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .find(|p| p["name"] == name && p["source"].is_null())
            .map(|p| p["id"].as_str().unwrap_or_default().to_string())
            .expect("package present")
    };
    // Walk the policy crate's normal (non-dev) dependency closure.
    let mut stack = vec![id_of("dbward-policy")];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let node = nodes.iter().find(|n| n["id"] == id.as_str()).expect("node");
        for dep in node["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k["kind"].is_null()));
            if normal {
                stack.push(dep["pkg"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    for id in &seen {
        for bad in POLICY_FORBIDDEN {
            // Package ids look like `registry+...#name@version` or `path+...#name@version`.
            let name = id.rsplit('#').next().unwrap_or(id);
            let name = name.split('@').next().unwrap_or(name);
            assert_ne!(name, *bad, "the policy engine must not depend on {bad}");
        }
    }
    assert!(
        seen.len() > 3,
        "walked the dependency graph ({} crates)",
        seen.len()
    );
}
