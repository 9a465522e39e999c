//! The audit writer: one thread owns the file; callers send entries through a bounded queue
//! and wait for the acknowledgement, which comes only after the line is written to the file
//! (so it survives the process being killed) — and fsynced first when the policy says
//! every entry.
//!
//! Invariants: sequence numbers and `prev` hashes are assigned by the writer alone, in
//! queue order; a failed write is reported to the caller (who must withhold the result) and
//! every later append fails too until a retry succeeds, so no gap can open in the chain; a
//! partial last line — left by a crash (never acknowledged) or by a failed write (a full
//! disk) — is cut off, at start-up or before the retry, and the cut is recorded in a
//! `recovered` entry that continues the chain.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretBox};
use tokio::sync::{mpsc, oneshot};

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
    /// Entries waiting to be written at most (callers wait when it is full). Default 1024.
    pub queue: usize,
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
            queue: 1024,
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

enum Job {
    Append(Box<Entry>, Option<oneshot::Sender<Result<u64, AuditError>>>),
    Tick,
    /// Sync to disk, then acknowledge: every job queued before it has been handled.
    Flush(oneshot::Sender<Result<(), AuditError>>),
}

/// A handle to the audit log. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    path: PathBuf,
    store_query_text: bool,
    /// Detached appends not yet in the queue (it was full when they were made).
    detached: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// A place in the audit queue, taken before the entry is built, so that building and
/// queueing the entry happen with no await point between them.
pub struct Slot<'a> {
    permit: mpsc::Permit<'a, Job>,
    store_query_text: bool,
}

impl Slot<'_> {
    /// Queues `entry` (its `seq`, `ts` and `prev` are assigned by the writer); the returned
    /// future resolves when it is written.
    pub fn send(
        self,
        mut entry: Entry,
    ) -> impl std::future::Future<Output = Result<u64, AuditError>> {
        if !self.store_query_text {
            entry.query = None;
        }
        let (ack, done) = oneshot::channel();
        self.permit.send(Job::Append(Box::new(entry), Some(ack)));
        async move { done.await.map_err(|_| AuditError::Closed)? }
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditLog({})", self.path.display())
    }
}

struct State {
    file: File,
    head: File,
    /// Holds the advisory lock on the log while the writer lives.
    _lock: File,
    path: PathBuf,
    key: Option<SecretBox<Vec<u8>>>,
    next_seq: u64,
    last_hash: String,
    size: u64,
    max_file_bytes: u64,
    fsync: FsyncPolicy,
    dirty: bool,
    last_sync: Instant,
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

impl AuditLog {
    /// Opens (or creates) the log, recovers the chain, and starts the writer thread.
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
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let mut recovered = None;
        if !text.is_empty() && !text.ends_with('\n') {
            // A line cut mid-write by a crash: it was never acknowledged.
            let keep = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
            let cut = text.len() - keep;
            file.set_len(keep as u64).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
            text.truncate(keep);
            recovered = Some(format!(
                "cut {cut} bytes of an entry left incomplete by a crash"
            ));
        }
        let head = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(head_path(&cfg.path))
            .map_err(io)?;
        let (next_seq, last_hash) = match text.lines().last() {
            None => (0, GENESIS_PREV.to_string()),
            Some(line) => {
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
            size: text.len() as u64,
            file,
            head,
            path: cfg.path.clone(),
            key: cfg.hmac_key,
            next_seq,
            last_hash,
            max_file_bytes: cfg.max_file_bytes,
            fsync: cfg.fsync,
            dirty: false,
            last_sync: Instant::now(),
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
        let (tx, mut rx) = mpsc::channel::<Job>(cfg.queue.max(1));
        std::thread::Builder::new()
            .name("dbward-audit".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    match job {
                        Job::Append(entry, ack) => {
                            let r = state.append(*entry);
                            match ack {
                                Some(ack) => {
                                    let _ = ack.send(r);
                                }
                                None => {
                                    if let Err(e) = r {
                                        tracing::error!(error = %e, "audit entry of an abandoned call not written");
                                    }
                                }
                            }
                        }
                        Job::Tick => {
                            let _ = state.tick();
                        }
                        Job::Flush(ack) => {
                            let r = match &state.failed {
                                Some(e) => Err(e.clone()),
                                None => state.sync(),
                            };
                            let _ = ack.send(r);
                        }
                    }
                }
                let _ = state.sync();
            })
            .map_err(io)?;
        if let FsyncPolicy::EveryMs(ms) = cfg.fsync {
            // A weak sender: when the last handle goes, the writer drains the queue, syncs,
            // releases the log's lock and ends, and so does this thread.
            let ticker = tx.downgrade();
            std::thread::Builder::new()
                .name("dbward-audit-fsync".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_millis(ms.max(1)));
                        let Some(tx) = ticker.upgrade() else { break };
                        match tx.try_send(Job::Tick) {
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                            _ => continue, // full: the writer is busy and will sync anyway
                        }
                    }
                })
                .map_err(io)?;
        }
        Ok(AuditLog {
            tx,
            path: cfg.path,
            store_query_text: cfg.store_query_text,
            detached: Default::default(),
        })
    }

    /// Appends one entry (its `seq`, `ts` and `prev` are assigned here) and waits until it
    /// is written. Returns the entry's sequence number.
    pub async fn append(&self, entry: Entry) -> Result<u64, AuditError> {
        self.reserve().await?.send(entry).await
    }

    /// Waits for a place in the queue (see [`Slot`]).
    pub async fn reserve(&self) -> Result<Slot<'_>, AuditError> {
        let permit = self.tx.reserve().await.map_err(|_| AuditError::Closed)?;
        Ok(Slot {
            permit,
            store_query_text: self.store_query_text,
        })
    }

    /// Queues an entry without waiting, from code that cannot wait (a `Drop`): at once if
    /// the queue has room, else from a spawned task. [`AuditLog::flush`] waits for both.
    pub fn append_detached(&self, mut entry: Entry) {
        use std::sync::atomic::Ordering;
        if !self.store_query_text {
            entry.query = None;
        }
        let job = Job::Append(Box::new(entry), None);
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!(
                    "audit entry of an abandoned call not written: the writer has stopped"
                );
            }
            Err(mpsc::error::TrySendError::Full(job)) => {
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    tracing::error!("audit entry of an abandoned call not written: queue full");
                    return;
                };
                self.detached.fetch_add(1, Ordering::SeqCst);
                let tx = self.tx.clone();
                let pending = self.detached.clone();
                rt.spawn(async move {
                    let _ = tx.send(job).await;
                    pending.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }
    }

    /// Waits until every entry queued so far (detached ones included) is written and
    /// synced to disk: for shutdown.
    pub async fn flush(&self) -> Result<(), AuditError> {
        use std::sync::atomic::Ordering;
        while self.detached.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Job::Flush(ack))
            .await
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether entries keep the query text.
    pub fn stores_query_text(&self) -> bool {
        self.store_query_text
    }

    /// Entries waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
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
        self.file.seek(SeekFrom::End(0)).map_err(io)?;
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
        self.file.write_all(line.as_bytes()).map_err(io)?;
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
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(io)?;
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
        self.last_sync = Instant::now();
        Ok(())
    }

    fn tick(&mut self) -> Result<(), AuditError> {
        if let FsyncPolicy::EveryMs(ms) = self.fsync
            && self.last_sync.elapsed() >= Duration::from_millis(ms)
        {
            self.sync()?;
        }
        Ok(())
    }
}
