//! Prometheus metrics of the gateway, kept in an explicit registry (no global recorder):
//! calls by tool and outcome, refusals by rule, call latency, security events by level, and
//! at scrape time the open connections, pool use, sessions seen and audit queue depth.
//!
//! Invariant: labels hold tool names, outcome codes, rule ids and levels only — never a
//! query, principal secret or connection target.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub(crate) tool: String,
    pub(crate) outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ToolLabel {
    pub(crate) tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RuleLabel {
    pub(crate) rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AnswerLabel {
    pub(crate) answer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LevelLabel {
    pub(crate) level: String,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    pub(crate) calls: Family<CallLabels, Counter>,
    pub(crate) refusals: Family<RuleLabel, Counter>,
    pub(crate) latency: Family<ToolLabel, Histogram>,
    pub(crate) events: Family<LevelLabel, Counter>,
    pub(crate) open_connections: Gauge,
    pub(crate) pool_in_use: Gauge,
    pub(crate) pool_idle: Gauge,
    pub(crate) principals: Gauge,
    pub(crate) audit_queue: Gauge,
    pub(crate) pg_resolutions: Family<AnswerLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dbward");
        let calls = Family::<CallLabels, Counter>::default();
        let refusals = Family::<RuleLabel, Counter>::default();
        let latency = Family::<ToolLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
        });
        let events = Family::<LevelLabel, Counter>::default();
        let open_connections = Gauge::default();
        let pool_in_use = Gauge::default();
        let pool_idle = Gauge::default();
        let principals = Gauge::default();
        let audit_queue = Gauge::default();
        let pg_resolutions = Family::<AnswerLabel, Gauge>::default();
        registry.register(
            "tool_calls",
            "Tool calls by tool and outcome",
            calls.clone(),
        );
        registry.register(
            "policy_refusals",
            "Policy refusals by rule",
            refusals.clone(),
        );
        registry.register("tool_call_seconds", "Tool call latency", latency.clone());
        registry.register(
            "security_events",
            "Security events by level",
            events.clone(),
        );
        registry.register(
            "open_connections",
            "Open connection ids",
            open_connections.clone(),
        );
        registry.register(
            "pool_connections_in_use",
            "Pooled database connections in use",
            pool_in_use.clone(),
        );
        registry.register(
            "pool_connections_idle",
            "Pooled database connections idle",
            pool_idle.clone(),
        );
        registry.register(
            "principals_seen",
            "Principals (sessions) the detector tracks",
            principals.clone(),
        );
        registry.register(
            "audit_queue_depth",
            "Audit entries being written or waiting for the log's lock",
            audit_queue.clone(),
        );
        registry.register(
            "pg_resolutions",
            "PostgreSQL calls by how their names were resolved, over the open connections: \
             kept (sent behind the guard of a kept answer), stale (of those, the guard failed), asked (resolved afresh) \
             or rechecked (of the stale, sent again behind a recheck that reads the answer afresh and runs the query if it is the same)",
            pg_resolutions.clone(),
        );
        Metrics {
            registry,
            pg_resolutions,
            calls,
            refusals,
            latency,
            events,
            open_connections,
            pool_in_use,
            pool_idle,
            principals,
            audit_queue,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
