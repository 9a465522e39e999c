//! Anomaly detection and automatic response, per principal (the authenticated caller; MCP
//! 2026-07-28 has no protocol sessions, so nothing keys on a header the client chooses).
//!
//! Sliding windows count, per principal: calls (query rate), refused calls (probing),
//! refusals by high-severity rules, results cut by the row/byte caps, reads of system
//! catalogs, injection-shaped input, and failed authentications. Crossing a threshold
//! raises a security event with a level; the level decides the response: log (low),
//! rate-limit (medium), block for a cooldown (high), block and close the principal's
//! connections (critical), plus an optional webhook for high and critical.
//!
//! Invariants: the state is per principal, so a misbehaving caller never slows a
//! well-behaved one; a blocked principal is refused before any work is done, with the time
//! the block ends; the lock is held only to update counters, never across I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Logged.
    Low,
    /// Rate-limited.
    Medium,
    /// Blocked for the cooldown.
    High,
    /// Blocked, and the principal's connections closed.
    Critical,
}

impl Level {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// What the gateway does at a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Record the event only.
    Log,
    /// Allow only `rate_limited_per_minute` calls per minute for the cooldown.
    RateLimit,
    /// Refuse every call for the cooldown.
    Block,
    /// Refuse every call for the cooldown and close the principal's connections.
    BlockAndClose,
}

/// Thresholds (events per `window_s`) and responses. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Sliding window, seconds. Default 60.
    pub window_s: u64,
    /// Calls per window before a `medium` rate event. Default 1,200 (20 a second sustained
    /// for a minute: far beyond an assistant's pace).
    pub max_calls: usize,
    /// Refused calls per window before a `medium` probing event; twice as many is `high`.
    /// Calls that timed out or were abandoned (cancelled, client gone) count against the
    /// same thresholds, separately (`abandoned_calls`). Default 5.
    pub probing_refusals: usize,
    /// Refusals by high-severity rules per window before a `high` event. Default 3.
    pub high_severity_refusals: usize,
    /// Results cut by the caps per window before a `low` event. Default 5.
    pub cap_hits: usize,
    /// Reads of system catalogs per window (outside the catalog tools) before a `low`
    /// event. Default 20.
    pub catalog_reads: usize,
    /// Failed authentications per window before a `high` event. Default 5.
    pub auth_failures: usize,
    /// Whether injection-shaped query text raises a `high` event. Default true.
    pub detect_injection: bool,
    /// How long a rate limit or block lasts, seconds. Default 300.
    pub cooldown_s: u64,
    /// Calls per minute while rate-limited. Default 10.
    pub rate_limited_per_minute: usize,
    /// Response per level. Defaults: log, rate_limit, block, block_and_close.
    pub low: Response,
    /// Response at medium.
    pub medium: Response,
    /// Response at high.
    pub high: Response,
    /// Response at critical.
    pub critical: Response,
    /// URL that receives a JSON POST for each high or critical event. Default none.
    pub webhook_url: Option<String>,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            window_s: 60,
            max_calls: 1_200,
            probing_refusals: 5,
            high_severity_refusals: 3,
            cap_hits: 5,
            catalog_reads: 20,
            auth_failures: 5,
            detect_injection: true,
            cooldown_s: 300,
            rate_limited_per_minute: 10,
            low: Response::Log,
            medium: Response::RateLimit,
            high: Response::Block,
            critical: Response::BlockAndClose,
            webhook_url: None,
        }
    }
}

/// A detection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SecurityEvent {
    /// Who.
    pub principal: String,
    /// How serious.
    pub level: Level,
    /// Which detector fired.
    pub detector: String,
    /// What it saw.
    pub message: String,
    /// What the gateway did.
    pub response: Response,
}

/// What one finished call looked like, for the detectors.
#[derive(Debug, Default, Clone)]
pub struct Observation {
    /// The policy or a check refused it.
    pub refused: bool,
    /// A high-severity policy rule fired.
    pub high_severity: bool,
    /// The result was cut by a cap.
    pub capped: bool,
    /// The query read a system catalog.
    pub catalog: bool,
    /// The query text looked like an injection.
    pub injection: Option<String>,
    /// The call ended without its answer: it timed out, or was cancelled, abandoned by a
    /// client gone, or cut by shutdown. A flood of these (slow queries fired and dropped)
    /// ties up the database like a flood of refusals probes the policy, and is answered
    /// the same way, at the same thresholds.
    pub abandoned: bool,
}

#[derive(Default)]
struct PrincipalState {
    calls: VecDeque<Instant>,
    refusals: VecDeque<Instant>,
    abandoned: VecDeque<Instant>,
    high: VecDeque<Instant>,
    caps: VecDeque<Instant>,
    catalog: VecDeque<Instant>,
    auth: VecDeque<Instant>,
    recent_limited: VecDeque<Instant>,
    blocked_until: Option<(Instant, SystemTime)>,
    limited_until: Option<Instant>,
    /// Detectors already reported in the current window (one event per crossing).
    reported: HashMap<&'static str, Instant>,
}

/// Why a call is turned away before it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Over the rate limit.
    RateLimited,
    /// Blocked until this time.
    Blocked(SystemTime),
}

/// A `medium` event once `n` reaches `at`, `high` at twice that.
fn two_levels(
    n: usize,
    at: usize,
    detector: &'static str,
    message: impl FnOnce() -> String,
) -> Option<(Level, &'static str, String)> {
    let level = if n >= 2 * at {
        Level::High
    } else if n >= at {
        Level::Medium
    } else {
        return None;
    };
    Some((level, detector, message()))
}

/// The detector. One per gateway; clones share its state (a call holds one, so that a
/// call dropped before it answered is still observed).
#[derive(Clone)]
pub struct Detector {
    config: DetectorConfig,
    state: Arc<Mutex<HashMap<String, PrincipalState>>>,
    /// Tracked principals above which the next sweep runs (changed under `state`'s lock).
    prune_at: Arc<std::sync::atomic::AtomicUsize>,
}

/// Principals tracked before idle ones are forgotten (a web UI makes one per browser
/// session, failed logins one per address).
const PRUNE_ABOVE: usize = 10_000;

impl PrincipalState {
    /// Whether anything about this principal still matters at `now`: an active block or
    /// rate limit, or any observation inside the window.
    fn live(&self, now: Instant, window: Duration) -> bool {
        let recent =
            |q: &VecDeque<Instant>| q.back().is_some_and(|t| now.duration_since(*t) <= window);
        self.blocked_until.is_some_and(|(until, _)| until > now)
            || self.limited_until.is_some_and(|until| until > now)
            || [
                &self.calls,
                &self.refusals,
                &self.abandoned,
                &self.high,
                &self.caps,
                &self.catalog,
                &self.auth,
                &self.recent_limited,
            ]
            .into_iter()
            .any(recent)
    }
}

fn push(q: &mut VecDeque<Instant>, now: Instant, window: Duration) -> usize {
    q.push_back(now);
    while q.front().is_some_and(|t| now.duration_since(*t) > window) {
        q.pop_front();
    }
    q.len()
}

impl Detector {
    /// A detector with these thresholds.
    pub fn new(config: DetectorConfig) -> Detector {
        Detector {
            config,
            state: Arc::new(Mutex::new(HashMap::new())),
            prune_at: Arc::new(std::sync::atomic::AtomicUsize::new(PRUNE_ABOVE)),
        }
    }

    /// Forgets idle principals once more than [`PRUNE_ABOVE`] are tracked. The next sweep
    /// waits until the map has doubled past what survived, so a crowd of live principals
    /// does not make every call scan them all.
    fn prune(&self, all: &mut HashMap<String, PrincipalState>, now: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        if all.len() <= self.prune_at.load(Relaxed) {
            return;
        }
        let window = Duration::from_secs(self.config.window_s);
        all.retain(|_, st| st.live(now, window));
        self.prune_at
            .store(PRUNE_ABOVE.max(all.len().saturating_mul(2)), Relaxed);
    }

    /// The configuration.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PrincipalState>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many principals the detector tracks.
    pub fn principals(&self) -> usize {
        self.lock().len()
    }

    /// Whether a principal may make a call now.
    pub fn admit(&self, principal: &str) -> Admission {
        let now = Instant::now();
        let mut all = self.lock();
        self.prune(&mut all, now);
        let st = all.entry(principal.to_string()).or_default();
        if let Some((until, wall)) = st.blocked_until {
            if now < until {
                return Admission::Blocked(wall);
            }
            st.blocked_until = None;
        }
        if let Some(until) = st.limited_until {
            if now < until {
                let n = push(&mut st.recent_limited, now, Duration::from_secs(60));
                if n > self.config.rate_limited_per_minute {
                    st.recent_limited.pop_back();
                    return Admission::RateLimited;
                }
            } else {
                st.limited_until = None;
            }
        }
        Admission::Allowed
    }

    /// Records a finished call and returns the events it raised (with their responses
    /// already applied to the principal's state).
    pub fn observe(&self, principal: &str, o: &Observation) -> Vec<SecurityEvent> {
        let c = &self.config;
        let now = Instant::now();
        let window = Duration::from_secs(c.window_s);
        let mut found: Vec<(Level, &'static str, String)> = Vec::new();
        {
            let mut all = self.lock();
            let st = all.entry(principal.to_string()).or_default();
            let n = push(&mut st.calls, now, window);
            if n > c.max_calls {
                found.push((
                    Level::Medium,
                    "query_rate",
                    format!("{n} calls in {}s", c.window_s),
                ));
            }
            if o.refused {
                let n = push(&mut st.refusals, now, window);
                found.extend(two_levels(n, c.probing_refusals, "probing", || {
                    format!("{n} refused calls in {}s", c.window_s)
                }));
            }
            if o.abandoned {
                let n = push(&mut st.abandoned, now, window);
                found.extend(two_levels(n, c.probing_refusals, "abandoned_calls", || {
                    format!("{n} calls timed out or abandoned in {}s", c.window_s)
                }));
            }
            if o.high_severity {
                let n = push(&mut st.high, now, window);
                if n >= c.high_severity_refusals {
                    found.push((
                        Level::High,
                        "high_severity_violations",
                        format!("{n} high-severity refusals in {}s", c.window_s),
                    ));
                }
            }
            if o.capped {
                let n = push(&mut st.caps, now, window);
                if n >= c.cap_hits {
                    found.push((
                        Level::Low,
                        "result_caps",
                        format!("{n} results cut by the caps in {}s", c.window_s),
                    ));
                }
            }
            if o.catalog {
                let n = push(&mut st.catalog, now, window);
                if n >= c.catalog_reads {
                    found.push((
                        Level::Low,
                        "catalog_probing",
                        format!("{n} system-catalog reads in {}s", c.window_s),
                    ));
                }
            }
            if let Some(why) = o.injection.as_ref().filter(|_| c.detect_injection) {
                found.push((
                    Level::High,
                    "injection",
                    format!("injection-shaped input: {why}"),
                ));
            }
            // One event per detector and level per window: a burst is one incident.
            found.retain(|(level, det, _)| {
                let key: &'static str = match (level, *det) {
                    (Level::High, "probing") => "probing_high",
                    (Level::High, "abandoned_calls") => "abandoned_calls_high",
                    (_, d) => d,
                };
                match st.reported.get(key) {
                    Some(t) if now.duration_since(*t) < window => false,
                    _ => {
                        st.reported.insert(key, now);
                        true
                    }
                }
            });
        }
        found
            .into_iter()
            .map(|(level, detector, message)| self.respond(principal, level, detector, message))
            .collect()
    }

    /// Records a failed authentication for a principal (or a peer address when no
    /// principal could be established).
    pub fn auth_failure(&self, who: &str) -> Option<SecurityEvent> {
        let now = Instant::now();
        let n = {
            let mut all = self.lock();
            self.prune(&mut all, now);
            let st = all.entry(who.to_string()).or_default();
            push(&mut st.auth, now, Duration::from_secs(self.config.window_s))
        };
        (n >= self.config.auth_failures).then(|| {
            self.respond(
                who,
                Level::High,
                "auth_failure",
                format!("{n} failed authentications in {}s", self.config.window_s),
            )
        })
    }

    /// A detection made elsewhere (by a host) for `principal`, answered like the
    /// detector's own.
    pub fn report(
        &self,
        principal: &str,
        level: Level,
        detector: &str,
        message: String,
    ) -> SecurityEvent {
        self.respond(principal, level, detector, message)
    }

    fn respond(
        &self,
        principal: &str,
        level: Level,
        detector: &str,
        message: String,
    ) -> SecurityEvent {
        let c = &self.config;
        let response = match level {
            Level::Low => c.low,
            Level::Medium => c.medium,
            Level::High => c.high,
            Level::Critical => c.critical,
        };
        let cooldown = Duration::from_secs(c.cooldown_s);
        let mut all = self.lock();
        let st = all.entry(principal.to_string()).or_default();
        match response {
            Response::Log => {}
            Response::RateLimit => st.limited_until = Some(Instant::now() + cooldown),
            Response::Block | Response::BlockAndClose => {
                st.blocked_until = Some((Instant::now() + cooldown, SystemTime::now() + cooldown));
            }
        }
        SecurityEvent {
            principal: principal.to_string(),
            level,
            detector: detector.to_string(),
            message,
            response,
        }
    }
}

/// A cheap look for injection-shaped input in query text: tautologies, comment
/// terminators after a quote, stacked statements. Detection only: the policy, not this,
/// decides what runs.
pub fn injection_shape(sql: &str) -> Option<String> {
    let s = sql.to_ascii_lowercase();
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    for t in [
        "or'1'='1",
        "or1=1",
        "or'a'='a",
        "or\"1\"=\"1",
        "or''='",
        "or1=1--",
        "'or'",
    ] {
        if compact.contains(t) {
            return Some(format!("tautology `{t}`"));
        }
    }
    if compact.contains("';--")
        || compact.contains("'--")
        || compact.contains("'/*")
        || compact.contains("'#")
    {
        return Some("a quote closed then commented out".into());
    }
    if compact.contains(";drop")
        || compact.contains(";delete")
        || compact.contains(";update")
        || compact.contains(";insert")
        || compact.contains(";shutdown")
        || compact.contains(";exec")
    {
        return Some("stacked statement".into());
    }
    if compact.contains("unionselectnull") || compact.contains("unionallselectnull") {
        return Some("UNION SELECT NULL column probing".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_principals_are_forgotten_but_blocked_ones_are_not() {
        let d = Detector::new(DetectorConfig::default());
        let blocked = d.report("blocked-one", Level::High, "test", "x".into());
        assert_eq!(blocked.response, Response::Block);
        let seen = Observation::default();
        d.observe("active-one", &seen);
        for i in 0..PRUNE_ABOVE + 10 {
            let _ = d.admit(&format!("idle-{i}"));
        }
        assert!(d.principals() < 100, "{} tracked", d.principals());
        assert!(matches!(d.admit("blocked-one"), Admission::Blocked(_)));
        assert_eq!(d.admit("active-one"), Admission::Allowed);
    }

    #[test]
    fn live_principals_are_kept_and_the_next_sweep_waits() {
        use std::sync::atomic::Ordering::Relaxed;
        let d = Detector::new(DetectorConfig::default());
        let seen = Observation::default();
        for i in 0..PRUNE_ABOVE + 10 {
            let who = format!("live-{i}");
            let _ = d.admit(&who);
            d.observe(&who, &seen);
        }
        let _ = d.admit("one-more");
        assert!(d.principals() > PRUNE_ABOVE, "{} tracked", d.principals());
        // The sweep found them all live: the next waits until the map has doubled.
        assert!(d.prune_at.load(Relaxed) >= 2 * PRUNE_ABOVE);
    }

    #[test]
    fn probing_is_rate_limited_then_blocked_per_principal() {
        let d = Detector::new(DetectorConfig::default());
        let refused = Observation {
            refused: true,
            ..Default::default()
        };
        let mut events = Vec::new();
        for _ in 0..4 {
            events.extend(d.observe("mallory", &refused));
        }
        assert!(events.is_empty());
        events.extend(d.observe("mallory", &refused));
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].level, events[0].response),
            (Level::Medium, Response::RateLimit)
        );
        // Rate-limited: 10 calls a minute, then refused.
        let allowed = (0..20)
            .filter(|_| d.admit("mallory") == Admission::Allowed)
            .count();
        assert_eq!(allowed, 10);
        for _ in 0..5 {
            events.extend(d.observe("mallory", &refused));
        }
        assert_eq!(events.last().map(|e| e.level), Some(Level::High));
        assert!(matches!(d.admit("mallory"), Admission::Blocked(_)));
        assert_eq!(
            d.admit("alice"),
            Admission::Allowed,
            "another principal is unaffected"
        );
    }

    #[test]
    fn injection_shapes() {
        assert!(injection_shape("SELECT * FROM u WHERE name = '' OR '1'='1'").is_some());
        assert!(injection_shape("SELECT 1; DROP TABLE users").is_some());
        assert!(injection_shape("SELECT name FROM users WHERE id = 1").is_none());
        assert!(injection_shape("SELECT 'it''s' AS quote").is_none());
    }
}
