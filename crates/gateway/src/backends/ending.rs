//! The ending of abandoned statements on the server: when a call is dropped mid-query (its
//! client went away, its deadline passed, the server is shutting down), its statement is
//! cancelled, then its session terminated if it stays, from another connection, by a task
//! that outlives the call. Those tasks are tracked here, so that a process about to exit can
//! wait for them ([`crate::Gateway::end_abandoned_statements`]): a task still pending when
//! the runtime stops never sends its cancel, and the statement goes on without a client
//! (the server notices a closed connection only when the statement next reads or writes; a
//! statement waiting on a lock waits on).
//!
//! Invariant: every such task is spawned through [`spawn`].

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use tokio_util::task::TaskTracker;

/// The endings spawned by this process and not yet done (every gateway's: the wait is for
/// a process about to exit).
static ENDING: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);

/// Spawns `ending` on `rt`, tracked.
pub(crate) fn spawn<F>(rt: &tokio::runtime::Handle, ending: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    rt.spawn(ENDING.track_future(ending));
}

/// Waits until no ending is pending, for at most `limit`; `false` if some still were.
pub(crate) async fn wait(limit: Duration) -> bool {
    ENDING.close();
    let done = tokio::time::timeout(limit, ENDING.wait()).await.is_ok();
    // (A tracker closed only for the wait: endings spawned later are waited for too.)
    ENDING.reopen();
    done
}

/// Endings pending now.
pub(crate) fn pending() -> usize {
    ENDING.len()
}
