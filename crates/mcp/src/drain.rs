//! Graceful shutdown of tool calls: how many are running, waiting until none is, and
//! abandoning the rest when the drain deadline passes.
//!
//! Invariant: a call abandoned here is answered (a `shutdown` tool error) and audited with
//! the outcome `shutdown`; dropping its future cancels its statement on the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Longest `dbward serve` lets running calls finish after SIGTERM before it cancels them.
/// Ten seconds: longer than almost every interactive query, and well inside the 30 s most
/// supervisors (systemd, Kubernetes) wait before `SIGKILL`, which would lose the answers.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// Shared by a server and its shutdown: cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    running: AtomicUsize,
    idle: Notify,
    abandon: CancellationToken,
}

/// One running call; dropping it counts the call as done.
pub(crate) struct Running(Arc<Inner>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// A fresh drain: nothing running, nothing abandoned.
    pub fn new() -> Drain {
        Drain::default()
    }

    pub(crate) fn enter(&self) -> Running {
        self.inner.running.fetch_add(1, Ordering::SeqCst);
        Running(self.inner.clone())
    }

    /// Calls running now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// Completes when the remaining calls are to be abandoned.
    pub(crate) async fn abandoned(&self) {
        self.inner.abandon.cancelled().await;
    }

    /// Lets running calls finish for up to `deadline`, then abandons the rest and waits
    /// (briefly) for them to answer. Returns how many were abandoned.
    pub async fn drain(&self, deadline: Duration) -> usize {
        if tokio::time::timeout(deadline, self.idle()).await.is_ok() {
            return 0;
        }
        let left = self.running();
        tracing::warn!(
            calls = left,
            "drain deadline passed: cancelling the calls still running"
        );
        self.inner.abandon.cancel();
        // Abandoned calls answer at once; the bound only guards against a stuck task.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.idle()).await;
        left
    }

    async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }
}
