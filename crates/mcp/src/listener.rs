//! The HTTP accept loop: bounds on what a connection may cost before it proves anything.
//!
//! - **Header read timeout** (default 10 s): a request's headers must arrive within it, and
//!   a kept-alive connection must start its next request within it (hyper starts the timer
//!   whenever it waits for a request head), so a silent socket, a slow-loris client and an
//!   idle keep-alive connection are all closed after it. Ten seconds: a real client sends
//!   its headers in one packet, and MCP clients open a new request at once or not at all.
//! - **Body read timeout** (default 30 s, in the auth layer): an authenticated request's body
//!   must arrive within it. A 1 MiB body at a slow 50 KB/s still fits.
//! - **Open connections** (default 1,024, and never more than half the descriptor limit):
//!   past it a new connection is closed at once. Half the descriptors: the rest stay for
//!   the database pools, the audit log and the runtime.
//! - **Not yet authenticated connections** (default half the open-connection cap): a
//!   connection counts until a request on it presents a valid token. When they are at the
//!   cap, the oldest is closed to make room, so silent sockets cannot lock out a client that
//!   authenticates on its first request.
//!
//! Invariant: every accepted connection holds one slot of the open-connection cap until it
//! closes, and one of the unauthenticated cap until it authenticates or closes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Default header read (and idle keep-alive) timeout.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default body read timeout.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on open connections (further limited by the descriptor limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The bounds of the accept loop.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// See the module documentation.
    pub header_timeout: Duration,
    /// See the module documentation.
    pub body_timeout: Duration,
    /// See the module documentation.
    pub max_connections: usize,
    /// See the module documentation. `None`: half of `max_connections`.
    pub max_unauthenticated: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_unauthenticated: None,
        }
    }
}

/// Connections that have not yet presented a valid token, oldest first.
#[derive(Default)]
pub(crate) struct Unauthenticated {
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
}

/// A request's handle on its connection: the auth layer marks it authenticated.
#[derive(Clone)]
pub(crate) struct ConnectionSlot {
    id: u64,
    unauthenticated: Arc<Unauthenticated>,
}

impl ConnectionSlot {
    /// The connection presented a valid token: it no longer counts against the cap.
    pub(crate) fn authenticated(&self) {
        self.unauthenticated
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Accepts connections until `stop` is cancelled; each is served by `app` under the
/// limits. Connections keep running after it returns, until `closing` is cancelled.
pub(crate) async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
    closing: CancellationToken,
    running: Arc<AtomicU64>,
) {
    let max = limits.max_connections.max(1);
    let open = Arc::new(Semaphore::new(max));
    let max_unauth = limits.max_unauthenticated.unwrap_or(max / 2).max(1);
    let unauthenticated = Arc::new(Unauthenticated::default());
    let next_id = AtomicU64::new(0);
    let mut last_full_log: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if last_full_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                tracing::warn!(max, "connection cap reached: new connections are closed");
                last_full_log = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let evict = CancellationToken::new();
        {
            let mut waiting = unauthenticated
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            while waiting.len() >= max_unauth {
                match waiting.pop_first() {
                    Some((_, oldest)) => oldest.cancel(),
                    None => break,
                }
            }
            waiting.insert(id, evict.clone());
        }
        let slot = ConnectionSlot {
            id,
            unauthenticated: unauthenticated.clone(),
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(slot.clone());
            app.clone().oneshot(req)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true);
        let closing = closing.clone();
        let running = running.clone();
        let unauthenticated = unauthenticated.clone();
        let stop = stop.clone();
        running.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    () = evict.cancelled() => break,
                    () = closing.cancelled() => break,
                    // At shutdown: finish the request in progress, take no more.
                    () = stop.cancelled(), if !shutting_down => {
                        shutting_down = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            unauthenticated
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            running.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        });
    }
}

/// Raises the soft descriptor limit to the hard one and returns the soft limit now in
/// force (`None` where it cannot be read).
pub fn raise_descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(hard)) = (limit.current, limit.maximum)
        && cur < hard
    {
        limit.current = Some(hard);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "could not raise the descriptor limit");
        }
    }
    getrlimit(Resource::Nofile).current
}
