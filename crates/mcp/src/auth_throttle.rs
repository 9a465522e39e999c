//! Throttling of failed HTTP authentication per client address, so that a flood of wrong
//! tokens costs a bounded amount of audit log, log lines and work.
//!
//! Per address and fixed window: the first failure is logged; the `max_failures`-th is
//! audited as one security event with its count, and from then on until the window ends a
//! request from that address without a valid token is answered 429 with `Retry-After`,
//! without a log line or an audit entry; when the address fails again in a later window,
//! the previous window's total is audited (if it went past the limit) in one more event.
//! So a flood writes at most two events and two log lines per address per window.
//!
//! A *valid* token is still accepted from a throttled address: tokens have at least 128
//! bits of entropy, so throttling is about cost, not guessing, and a flood from a shared
//! address (a NAT, an untrusted proxy) must not lock its legitimate users out.
//!
//! Invariant: the table holds at most `MAX_SOURCES` addresses, whatever the flood.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures per address per window before 429. Default 10: a person mistyping or a
/// misconfigured client makes a few; ten a minute is well above that and caps a flood.
pub const DEFAULT_MAX_FAILURES: u64 = 10;
/// The window. Default 60 s, the detector's window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most (about 100 bytes each): past this, expired windows are
/// dropped, then the oldest.
const MAX_SOURCES: usize = 10_000;

/// What to do with one failed authentication.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Answer 401. `log`: write the one log line of this window; `flood`: audit this many
    /// failures as the event that starts the throttle; `previous`: the previous window's
    /// total, to audit, if it passed the limit.
    Unauthorized {
        log: bool,
        flood: Option<u64>,
        previous: Option<u64>,
    },
    /// Answer 429, retry after this many seconds; nothing logged.
    Throttled { retry_after: u64 },
}

struct Window {
    started: Instant,
    failures: u64,
}

/// Failed authentications per client address.
pub(crate) struct AuthThrottle {
    max_failures: u64,
    window: Duration,
    sources: Mutex<HashMap<IpAddr, Window>>,
}

impl AuthThrottle {
    pub(crate) fn new(max_failures: u64, window: Duration) -> AuthThrottle {
        AuthThrottle {
            max_failures: max_failures.max(1),
            window,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one failure from `ip`.
    pub(crate) fn fail(&self, ip: IpAddr) -> Failure {
        let now = Instant::now();
        let mut all = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= MAX_SOURCES && !all.contains_key(&ip) {
            all.retain(|_, w| now.duration_since(w.started) < self.window);
            if all.len() >= MAX_SOURCES
                && let Some(oldest) = all.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| *k)
            {
                all.remove(&oldest);
            }
        }
        let w = all.entry(ip).or_insert(Window {
            started: now,
            failures: 0,
        });
        let mut previous = None;
        if now.duration_since(w.started) >= self.window {
            if w.failures > self.max_failures {
                previous = Some(w.failures);
            }
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures += 1;
        if w.failures > self.max_failures {
            let left = self.window.saturating_sub(now.duration_since(w.started));
            return Failure::Throttled {
                retry_after: left.as_secs().max(1),
            };
        }
        Failure::Unauthorized {
            log: w.failures == 1,
            flood: (w.failures == self.max_failures).then_some(w.failures),
            previous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_logged_once_audited_once_then_throttled() {
        let t = AuthThrottle::new(3, Duration::from_secs(60));
        let a: IpAddr = "203.0.113.7".parse().expect("ip");
        let b: IpAddr = "198.51.100.9".parse().expect("ip");
        let quiet = Failure::Unauthorized {
            log: false,
            flood: None,
            previous: None,
        };
        assert_eq!(
            t.fail(a),
            Failure::Unauthorized {
                log: true,
                flood: None,
                previous: None
            }
        );
        assert_eq!(t.fail(a), quiet);
        assert_eq!(
            t.fail(a),
            Failure::Unauthorized {
                log: false,
                flood: Some(3),
                previous: None
            }
        );
        for _ in 0..1000 {
            assert!(matches!(t.fail(a), Failure::Throttled { retry_after } if retry_after <= 60));
        }
        // Another address is counted on its own.
        assert!(matches!(t.fail(b), Failure::Unauthorized { log: true, .. }));
    }

    #[test]
    fn the_next_window_reports_the_previous_total() {
        let t = AuthThrottle::new(2, Duration::from_millis(50));
        let a: IpAddr = "203.0.113.7".parse().expect("ip");
        for _ in 0..7 {
            t.fail(a);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            t.fail(a),
            Failure::Unauthorized {
                log: true,
                flood: None,
                previous: Some(7)
            }
        );
    }
}
