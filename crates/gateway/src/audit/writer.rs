//! The audit writer: the file is written by the calling thread, one entry at a time under a
//! lock, and a call is acknowledged only after its line is written to the file (in the
//! kernel, so it survives the process being killed) — and fsynced first when the policy
//! says every entry.
//!
//! Why inline and not a writer thread behind a queue: the write is one `write(2)` into the
//! page cache plus the head file's `pwrite(2)` (a few microseconds), while a hand-off to a
//! thread and back costs two thread wake-ups per call, more than the write itself. What can
//! take long stays off the callers: the periodic fsync runs on its own thread and does not
//! hold the lock while the disk works; only `every entry` fsyncs (opt-in, slower by nature)
//! run on the blocking pool under the lock, which is what orders them. Rotation (once per
//! `max_file_bytes`) and the repair after a failed write fsync under the lock, inline.
//!
//! Durability is unchanged: with `fsync = every N ms` (the default, N = 100) an entry that
//! was acknowledged survives the process being killed, and at most the last N ms of
//! entries can be lost to a power failure or kernel crash; with `every entry`, none.
//!
//! Invariants: sequence numbers and `prev` hashes are assigned under the lock, in the order
//! entries are written; a failed write is reported to the caller (who must withhold the result) and
//! every later append fails too until a retry succeeds, so no gap can open in the chain; a
//! partial last line — left by a crash (never acknowledged) or by a failed write (a full
//! disk) — is cut off, at start-up or before the retry, and the cut is recorded in a
//! `recovered` entry that continues the chain.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretBox};

use super::chain::{Entry, GENESIS_PREV, seal};

/// When entries are fsynced. Either way an entry is in the kernel (safe from `kill -9`)
/// before its call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before acknowledging each entry (safe from power loss too; slower).
    EveryEntry,
    /// fsync at most every N milliseconds.
    EveryMs(u64),
}

/// Where and how the audit log is written.
pub struct AuditConfig {
    /// The log file; rotated files get a numeric suffix, the head file `.head`.
    pub path: PathBuf,
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Whether entries hold the query text (restricted data: off by default).
    pub store_query_text: bool,
    /// HMAC key for the chain, if configured.
    pub hmac_key: Option<SecretBox<Vec<u8>>>,
    /// Rotate when the file would grow past this many bytes (0: never). Default 64 MiB.
    pub max_file_bytes: u64,
}

impl AuditConfig {
    /// Defaults for a path: fsync every 100 ms, no query text, no HMAC, 64 MiB files.
    pub fn new(path: PathBuf) -> AuditConfig {
        AuditConfig {
            path,
            fsync: FsyncPolicy::EveryMs(100),
            store_query_text: false,
            hmac_key: None,
            max_file_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why an entry could not be written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened or written.
    #[error("the audit log cannot be written ({0}); calls are refused until it can")]
    Io(String),
    /// The existing log ends in a damaged entry.
    #[error(
        "the audit log's last entry is damaged ({0}); run `dbward audit verify` and move the file aside"
    )]
    Damaged(String),
    /// The writer has stopped.
    #[error("the audit writer has stopped; calls are refused")]
    Closed,
    /// Another process writes this log (two writers would fork its chain).
    #[error(
        "the audit log {path} is in use by another dbward process ({holder}); stop it, or give this one its own log (--audit-log or DBWARD_DATA_DIR)"
    )]
    InUse {
        /// The log file.
        path: String,
        /// Who holds it, as its lock file says (`pid N`), or that it could not be read.
        holder: String,
    },
}

/// After a failed write, the soonest the writer tries the disk again. One second: a full
/// disk is not freed faster than an operator can act, and a retry per call during a flood
/// would only hammer it; a call in the meantime is refused at once.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A handle to the audit log. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
    path: PathBuf,
    store_query_text: bool,
}

/// What every handle and the fsync thread share.
struct Shared {
    /// The file, the chain's head, and the failure state: whoever holds it writes.
    state: Mutex<State>,
    fsync: FsyncPolicy,
    /// Entries being written or waiting for the lock (the queue depth metric).
    writing: AtomicUsize,
    /// Appends handed to a task or the blocking pool and not yet written.
    detached: AtomicUsize,
    /// Wakes the fsync thread (`every N ms`).
    nudge: Arc<Nudge>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.nudge.set(Nudged::Closed);
    }
}

/// What the fsync thread waits for: it sleeps until an entry is written, so an idle log
/// costs no wake-ups.
#[derive(Default)]
struct Nudge {
    state: Mutex<Nudged>,
    wake: Condvar,
}

#[derive(Default, Clone, Copy, PartialEq)]
enum Nudged {
    /// Nothing written since the thread last looked.
    #[default]
    Idle,
    /// An entry was written (or a sync failed): a sync is due.
    Written,
    /// The log is closed: the thread ends.
    Closed,
}

impl Nudge {
    fn lock(&self) -> MutexGuard<'_, Nudged> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `to` and wakes the thread when that changes what it waits for (the first
    /// write after it looked, or the end); later writes only take the uncontended lock.
    fn set(&self, to: Nudged) {
        let mut state = self.lock();
        if *state == Nudged::Idle || to == Nudged::Closed {
            *state = to;
            self.wake.notify_one();
        }
    }

    /// Waits for a write; `false` when the log closed instead. Marks the write seen, so
    /// entries written from now on wake the thread again.
    fn wait_for_write(&self) -> bool {
        let mut state = self.lock();
        while *state == Nudged::Idle {
            state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if *state == Nudged::Closed {
            return false;
        }
        *state = Nudged::Idle;
        true
    }
}

impl Shared {
    /// The state, for one write. A writer that panicked mid-write may have left part of a
    /// line: the write counts as failed, so the next append cuts the file back to its last
    /// whole entry (after [`RETRY_AFTER_FAILURE`]) before the chain continues.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut state = poisoned.into_inner();
            if state.failed.is_none() {
                state.failed = Some(AuditError::Io("an audit write was interrupted".into()));
                state.failed_at = Instant::now();
            }
            self.state.clear_poison();
            state
        })
    }

    /// Writes one entry now (and fsyncs it under `every entry`).
    fn append(&self, entry: Entry) -> Result<u64, AuditError> {
        self.writing.fetch_add(1, Ordering::Relaxed);
        let r = self.lock().append(entry);
        self.writing.fetch_sub(1, Ordering::Relaxed);
        if matches!(self.fsync, FsyncPolicy::EveryMs(_)) {
            self.nudge.set(Nudged::Written);
        }
        r
    }

    /// The periodic fsync: the files' data reaches the disk without holding the lock, so
    /// writers never wait for the disk.
    fn sync_in_background(&self) {
        let (file, head) = {
            let mut state = self.lock();
            if !state.dirty {
                return;
            }
            state.dirty = false;
            (state.file.clone(), state.head.clone())
        };
        if let Err(e) = file.sync_data().and_then(|()| head.sync_data()) {
            tracing::error!(error = %e, "the audit log could not be synced to disk");
            self.lock().dirty = true;
            // Tried again a period later.
            self.nudge.set(Nudged::Written);
        }
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({})", self.path.display())
    }
}

struct State {
    /// The log file (shared with the fsync thread, which syncs it outside the lock).
    file: Arc<File>,
    /// The head file: the last written `(seq, hash)`.
    head: Arc<File>,
    /// Holds the advisory lock on the log while the writer lives.
    _lock: File,
    path: PathBuf,
    key: Option<SecretBox<Vec<u8>>>,
    next_seq: u64,
    last_hash: String,
    size: u64,
    max_file_bytes: u64,
    fsync: FsyncPolicy,
    /// Written since the last fsync.
    dirty: bool,
    /// The last write failed (the chain stops here until a retry succeeds), and when.
    failed: Option<AuditError>,
    failed_at: Instant,
}

fn io(e: std::io::Error) -> AuditError {
    AuditError::Io(e.to_string())
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Takes the log's advisory lock (`<path>.lock`, `flock`), held for the life of the
/// writer, and writes this process's id in it for the message a second process shows.
/// The lock goes with the process however it ends (even `kill -9`), so a stale lock file
/// never keeps a restart out.
fn lock_log(path: &Path) -> Result<File, AuditError> {
    let lock_file = lock_path(path);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_file)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut who = String::new();
            let _ = file.read_to_string(&mut who);
            let who = who.trim();
            return Err(AuditError::InUse {
                path: path.display().to_string(),
                holder: if who.is_empty() {
                    "its pid is not recorded".into()
                } else {
                    format!("pid {who}, see {}", lock_file.display())
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)
        .map_err(io)?;
    Ok(file)
}

fn head_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".head");
    PathBuf::from(p)
}

/// Reads the writer's head file: the last acknowledged `(seq, hash)`.
pub fn read_head(path: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(head_path(path)).ok()?;
    let mut parts = text.split_whitespace();
    let seq = parts.next()?.parse().ok()?;
    let hash = parts.next()?.to_string();
    Some((seq, hash))
}

/// The end of an existing log, as `open` needs it.
#[derive(Debug, PartialEq)]
struct Tail {
    /// Where the complete lines end (the file's length once a cut line is removed).
    keep: u64,
    /// Bytes after `keep`: a line a crash left without its newline.
    cut: u64,
    /// The last complete line, without its newline (`None` for an empty log).
    last_line: Option<Vec<u8>>,
}

/// Reads the log backwards, a block at a time, until it holds the last complete line (or
/// the whole file): the cost does not grow with the log.
fn read_tail(file: &mut File) -> std::io::Result<Tail> {
    const BLOCK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // `buf` holds the file from `start` to its end.
        let keep = buf
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|i| start + i as u64 + 1);
        if let Some(keep) = keep {
            let end = (keep - 1 - start) as usize;
            if let Some(i) = buf[..end].iter().rposition(|b| *b == b'\n') {
                return Ok(Tail {
                    keep,
                    cut: len - keep,
                    last_line: Some(buf[i + 1..end].to_vec()),
                });
            }
            if start == 0 {
                return Ok(Tail {
                    keep,
                    cut: len - keep,
                    last_line: Some(buf[..end].to_vec()),
                });
            }
        } else if start == 0 {
            return Ok(Tail {
                keep: 0,
                cut: len,
                last_line: None,
            });
        }
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0u8; (start - from) as usize];
        file.read_exact_at(&mut block, from)?;
        block.extend_from_slice(&buf);
        buf = block;
        start = from;
    }
}

impl AuditLog {
    /// Opens (or creates) the log, recovers the chain, and starts the fsync thread (under
    /// `every N ms`).
    pub fn open(cfg: AuditConfig) -> Result<AuditLog, AuditError> {
        if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let lock = lock_log(&cfg.path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&cfg.path)
            .map_err(io)?;
        // Only the tail is read: the last complete line carries the chain's position, and
        // a log of any size (up to `max_file_bytes` before rotation) starts as fast as an
        // empty one. `dbward audit verify` reads the whole chain.
        let tail = read_tail(&mut file).map_err(io)?;
        let mut recovered = None;
        if tail.cut > 0 {
            // A line cut mid-write by a crash: it was never acknowledged.
            file.set_len(tail.keep).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
            recovered = Some(format!(
                "cut {} bytes of an entry left incomplete by a crash",
                tail.cut
            ));
        }
        let head = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(head_path(&cfg.path))
            .map_err(io)?;
        let (next_seq, last_hash) = match tail.last_line.as_deref() {
            None => (0, GENESIS_PREV.to_string()),
            Some(line) => {
                let line = std::str::from_utf8(line)
                    .map_err(|_| AuditError::Damaged("not UTF-8".into()))?;
                let cut = line
                    .rfind(",\"hash\":\"")
                    .ok_or_else(|| AuditError::Damaged("no hash".into()))?;
                let hash = line[cut + 9..]
                    .strip_suffix("\"}")
                    .ok_or_else(|| AuditError::Damaged("no hash".into()))?
                    .to_string();
                let entry: Entry = serde_json::from_str(&format!("{}}}", &line[..cut]))
                    .map_err(|e| AuditError::Damaged(e.to_string()))?;
                (entry.seq + 1, hash)
            }
        };
        let mut state = State {
            _lock: lock,
            size: tail.keep,
            file: Arc::new(file),
            head: Arc::new(head),
            path: cfg.path.clone(),
            key: cfg.hmac_key,
            next_seq,
            last_hash,
            max_file_bytes: cfg.max_file_bytes,
            fsync: cfg.fsync,
            dirty: false,
            failed: None,
            failed_at: Instant::now(),
        };
        if state.next_seq == 0 {
            state.write(Entry {
                kind: "genesis".into(),
                note: Some("dbward audit log".into()),
                ..Entry::default()
            })?;
        }
        if let Some(note) = recovered {
            state.write(Entry {
                kind: "recovered".into(),
                note: Some(note),
                ..Entry::default()
            })?;
        }
        state.sync()?;
        let nudge = Arc::new(Nudge::default());
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            fsync: cfg.fsync,
            writing: AtomicUsize::new(0),
            detached: AtomicUsize::new(0),
            nudge: nudge.clone(),
        });
        if let FsyncPolicy::EveryMs(ms) = cfg.fsync {
            // Sleeps until an entry is written, then lets the period pass and syncs: an
            // entry reaches the disk within N ms of its write, and an idle log wakes no
            // one. A weak handle: when the last `AuditLog` goes, the state is dropped
            // (synced, its lock released) and the nudge ends this thread.
            let weak: Weak<Shared> = Arc::downgrade(&shared);
            std::thread::Builder::new()
                .name("dbward-audit-fsync".into())
                .spawn(move || {
                    while nudge.wait_for_write() {
                        std::thread::sleep(Duration::from_millis(ms.max(1)));
                        let Some(shared) = weak.upgrade() else { break };
                        shared.sync_in_background();
                    }
                })
                .map_err(io)?;
        }
        Ok(AuditLog {
            shared,
            path: cfg.path,
            store_query_text: cfg.store_query_text,
        })
    }

    /// Appends one entry (its `seq`, `ts` and `prev` are assigned here) and waits until it
    /// is written. Returns the entry's sequence number.
    pub async fn append(&self, entry: Entry) -> Result<u64, AuditError> {
        self.append_now(entry).await
    }

    /// Writes `entry` into the file before it returns (its `seq`, `ts` and `prev` are
    /// assigned here), so a caller that marks its work audited first has no await point in
    /// between; the future resolves with the entry's sequence number once the entry is as
    /// durable as the fsync policy asks. Under `every entry` the write and its fsync run on
    /// the blocking pool, which finishes them even if the future is dropped.
    pub fn append_now(
        &self,
        mut entry: Entry,
    ) -> impl std::future::Future<Output = Result<u64, AuditError>> + Send + 'static {
        if !self.store_query_text {
            entry.query = None;
        }
        let written = match self.shared.fsync {
            FsyncPolicy::EveryMs(_) => Ok(self.shared.append(entry)),
            FsyncPolicy::EveryEntry => {
                let shared = self.shared.clone();
                Err(tokio::task::spawn_blocking(move || shared.append(entry)))
            }
        };
        async move {
            match written {
                Ok(r) => r,
                Err(synced) => synced.await.map_err(|_| AuditError::Closed)?,
            }
        }
    }

    /// Writes an entry from code that cannot wait (a `Drop`): at once, or (under `every
    /// entry`) on the blocking pool. [`AuditLog::flush`] waits for those.
    pub fn append_detached(&self, mut entry: Entry) {
        if !self.store_query_text {
            entry.query = None;
        }
        let report = |r: Result<u64, AuditError>| {
            if let Err(e) = r {
                tracing::error!(error = %e, "audit entry of an abandoned call not written");
            }
        };
        match (self.shared.fsync, tokio::runtime::Handle::try_current()) {
            (FsyncPolicy::EveryEntry, Ok(rt)) => {
                self.shared.detached.fetch_add(1, Ordering::SeqCst);
                let shared = self.shared.clone();
                rt.spawn_blocking(move || {
                    report(shared.append(entry));
                    shared.detached.fetch_sub(1, Ordering::SeqCst);
                });
            }
            _ => report(self.shared.append(entry)),
        }
    }

    /// Waits until every entry written so far (detached ones included) is synced to disk:
    /// for shutdown.
    pub async fn flush(&self) -> Result<(), AuditError> {
        while self.shared.detached.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = shared.lock();
            match &state.failed {
                Some(e) => Err(e.clone()),
                // Whatever the dirty flag says: the fsync thread may be syncing right now.
                None => {
                    state.dirty = true;
                    state.sync()
                }
            }
        })
        .await
        .map_err(|_| AuditError::Closed)?
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether entries keep the query text.
    pub fn stores_query_text(&self) -> bool {
        self.store_query_text
    }

    /// Entries being written or waiting for another's write to finish.
    pub fn queue_depth(&self) -> usize {
        self.shared.writing.load(Ordering::Relaxed)
    }
}

impl State {
    fn append(&mut self, entry: Entry) -> Result<u64, AuditError> {
        if let Some(e) = &self.failed {
            if self.failed_at.elapsed() < RETRY_AFTER_FAILURE {
                return Err(e.clone());
            }
            let what = e.to_string();
            if let Err(e) = self.repair(&what) {
                self.failed = Some(e.clone());
                self.failed_at = Instant::now();
                return Err(e);
            }
            tracing::warn!("the audit log is writable again; the chain continues");
            self.failed = None;
        }
        let r = self.write(entry).and_then(|seq| {
            if self.fsync == FsyncPolicy::EveryEntry {
                self.sync()?;
            }
            Ok(seq)
        });
        if let Err(e) = &r {
            // No gap may open in the chain: refuse everything after a failed write until a
            // retry succeeds.
            self.failed = Some(e.clone());
            self.failed_at = Instant::now();
        }
        r
    }

    /// After a failed write: cuts whatever part of a line reached the file (as start-up
    /// does after a crash), and records the cut and the failure in a `recovered` entry
    /// chained to the last entry that was written whole.
    fn repair(&mut self, failure: &str) -> Result<(), AuditError> {
        let len = self.file.metadata().map_err(io)?.len();
        let cut = len.saturating_sub(self.size);
        if len != self.size {
            self.file.set_len(self.size).map_err(io)?;
        }
        (&*self.file).seek(SeekFrom::End(0)).map_err(io)?;
        self.write_inner(
            Entry {
                kind: "recovered".into(),
                note: Some(format!(
                    "writes resumed after a failure ({failure}); cut {cut} bytes of an entry left incomplete"
                )),
                ..Entry::default()
            },
            false,
        )?;
        self.sync()
    }

    fn write(&mut self, entry: Entry) -> Result<u64, AuditError> {
        self.write_inner(entry, true)
    }

    fn write_inner(&mut self, mut entry: Entry, may_rotate: bool) -> Result<u64, AuditError> {
        entry.seq = self.next_seq;
        entry.prev = self.last_hash.clone();
        entry.ts = now_rfc3339();
        let key = self.key.as_ref().map(|k| k.expose_secret().as_slice());
        let (mut line, hash) = seal(&entry, key).map_err(|e| AuditError::Io(e.to_string()))?;
        line.push('\n');
        if may_rotate
            && self.max_file_bytes > 0
            && self.size > 0
            && self.size + line.len() as u64 > self.max_file_bytes
        {
            self.rotate()?;
            // An entry larger than a whole file still goes in, once, after the rotation.
            return self.write_inner(entry, false);
        }
        (&*self.file).write_all(line.as_bytes()).map_err(io)?;
        self.size += line.len() as u64;
        self.dirty = true;
        self.next_seq += 1;
        self.last_hash = hash;
        // The head records the last acknowledged entry, so `verify` can tell a cut tail.
        let head = format!("{:020} {}\n", entry.seq, self.last_hash);
        self.head.write_all_at(head.as_bytes(), 0).map_err(io)?;
        Ok(entry.seq)
    }

    /// Moves the full file aside (`<path>.<first seq of the new file>`) and starts a new one
    /// whose first entry links to the last hash of the old.
    fn rotate(&mut self) -> Result<(), AuditError> {
        self.sync()?;
        let mut rotated = self.path.as_os_str().to_owned();
        rotated.push(format!(".{:012}", self.next_seq));
        let rotated = PathBuf::from(rotated);
        std::fs::rename(&self.path, &rotated).map_err(io)?;
        self.file = Arc::new(
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&self.path)
                .map_err(io)?,
        );
        self.size = 0;
        self.write_inner(
            Entry {
                kind: "rotate".into(),
                note: Some(format!("continues {}", rotated.display())),
                ..Entry::default()
            },
            false,
        )?;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), AuditError> {
        if self.dirty {
            self.file.sync_data().map_err(io)?;
            self.head.sync_data().map_err(io)?;
            self.dirty = false;
        }
        Ok(())
    }
}

impl Drop for State {
    /// The last handle is gone: what was written reaches the disk before the log's lock is
    /// released.
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail_of(bytes: &[u8]) -> Tail {
        let path = std::env::temp_dir().join(format!(
            "dbward-tail-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&path, bytes).expect("write");
        let mut f = File::open(&path).expect("open");
        let t = read_tail(&mut f).expect("tail");
        std::fs::remove_file(&path).expect("remove");
        t
    }

    fn line(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn the_tail_is_the_last_complete_line_and_what_follows_it() {
        assert_eq!(
            tail_of(b""),
            Tail {
                keep: 0,
                cut: 0,
                last_line: None
            }
        );
        assert_eq!(
            tail_of(b"half"),
            Tail {
                keep: 0,
                cut: 4,
                last_line: None
            }
        );
        assert_eq!(
            tail_of(b"one\n"),
            Tail {
                keep: 4,
                cut: 0,
                last_line: line("one")
            }
        );
        assert_eq!(
            tail_of(b"one\ntwo\n"),
            Tail {
                keep: 8,
                cut: 0,
                last_line: line("two")
            }
        );
        assert_eq!(
            tail_of(b"one\ntwo\nhal"),
            Tail {
                keep: 8,
                cut: 3,
                last_line: line("two")
            }
        );
    }

    #[test]
    fn lines_longer_than_a_block_and_logs_of_many_blocks_are_read_whole() {
        // A last line of 200 KiB (three blocks) after 1 MiB of earlier lines, then a cut
        // line of 100 KiB: the line comes back whole, the cut is measured exactly.
        let mut log = Vec::new();
        for i in 0..10_000 {
            log.extend_from_slice(format!("{i:0>100}\n").as_bytes());
        }
        let long = "x".repeat(200 * 1024);
        log.extend_from_slice(long.as_bytes());
        log.push(b'\n');
        let keep = log.len() as u64;
        log.extend(std::iter::repeat_n(b'y', 100 * 1024));
        let t = tail_of(&log);
        assert_eq!(t.keep, keep);
        assert_eq!(t.cut, 100 * 1024);
        assert_eq!(t.last_line, line(&long));
        // One line only, longer than a block.
        let t = tail_of(format!("{long}\n").as_bytes());
        assert_eq!(t.last_line, line(&long));
    }
}
