//! Chat conversations kept in the data directory, per owner, so that they survive a reload
//! (and a restart) and can be listed and continued: `<data>/web/conversations/<owner>/<id>.json`,
//! where `<owner>` is a hash of the owner's name (a named user, `api`, or a browser session).
//!
//! Each file holds the model's history (to continue the conversation) and the turns as the
//! page shows them (question, steps with their rows, answer).
//!
//! Invariants:
//! - A conversation is only ever read from its owner's folder: an id presented by someone
//!   else is simply not found there (ids are 128-bit random hex, checked before use as a
//!   file name).
//! - Files are written whole (a temporary file renamed over the old one) and are readable
//!   by the owner of the process only (0600; folders 0700): they hold query results.
//! - At most [`MAX_CONVERSATIONS`] per owner; the least recently updated is deleted.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dbward_assistant::llm::ChatMessage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

/// Most conversations kept per owner.
pub(crate) const MAX_CONVERSATIONS: usize = 50;
/// Most rows kept per step's result (what the page shows).
const MAX_STORED_ROWS: usize = 200;

/// One question and what came of it, as the page shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Turn {
    pub question: String,
    /// The assistant's steps (tool, arguments, verdict, rule, rows), as the API sends them.
    #[serde(default)]
    pub steps: Vec<Value>,
    #[serde(default)]
    pub answer: String,
    /// Why there is no answer (an error, or stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Stopped by its asker: `steps` are the ones that finished before the stop.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// A conversation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Conversation {
    pub id: String,
    /// The first question, shortened.
    pub title: String,
    /// Seconds since the Unix epoch of the last turn.
    pub updated: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// What the model sees of it.
    #[serde(default)]
    pub history: Vec<ChatMessage>,
    #[serde(default)]
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// A new conversation under a fresh id, titled by its first question.
    pub(crate) fn new(question: &str, model: &str) -> Conversation {
        let mut title: String = question.split_whitespace().collect::<Vec<_>>().join(" ");
        if title.chars().count() > 80 {
            title = title.chars().take(79).collect::<String>() + "…";
        }
        Conversation {
            id: hex::encode(rand::random::<[u8; 16]>()),
            title,
            updated: now(),
            model: model.to_string(),
            history: Vec::new(),
            turns: Vec::new(),
        }
    }

    /// Adds a turn, keeping at most [`MAX_STORED_ROWS`] rows of each step's result.
    pub(crate) fn push(&mut self, mut turn: Turn) {
        for step in &mut turn.steps {
            if let Some(rows) = step
                .pointer_mut("/result/rows")
                .and_then(Value::as_array_mut)
                && rows.len() > MAX_STORED_ROWS
            {
                rows.truncate(MAX_STORED_ROWS);
                step["result"]["truncated"] = Value::Bool(true);
            }
        }
        self.turns.push(turn);
        self.updated = now();
    }
}

/// A conversation in a list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub id: String,
    pub title: String,
    pub updated: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `id` can be a conversation id (and so, safely, a file name).
pub(crate) fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why a conversation could not be stored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The file system refused (the error kind only: no path in messages).
    #[error("the conversation could not be saved: {0}")]
    Io(std::io::ErrorKind),
    /// A bug: the conversation did not serialize.
    #[error("the conversation could not be encoded")]
    Encode,
}

/// The conversations folder.
pub(crate) struct Store {
    root: PathBuf,
    /// A std mutex: held around short file operations so that a save and its pruning do
    /// not interleave with another save; never across an await.
    lock: Mutex<()>,
}

impl Store {
    /// The store under `data_dir`.
    pub(crate) fn new(data_dir: &Path) -> Store {
        Store {
            root: data_dir.join("web").join("conversations"),
            lock: Mutex::new(()),
        }
    }

    fn owner_dir(&self, owner: &str) -> PathBuf {
        let digest = sha2::Sha256::digest(owner.as_bytes());
        self.root.join(hex::encode(&digest[..16]))
    }

    /// The owner's conversation `id`, if it exists.
    pub(crate) fn load(&self, owner: &str, id: &str) -> Option<Conversation> {
        if !valid_id(id) {
            return None;
        }
        let path = self.owner_dir(owner).join(format!("{id}.json"));
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice::<Conversation>(&bytes)
            .ok()
            .filter(|c| c.id == id)
    }

    /// The owner's conversations, most recent first.
    pub(crate) fn list(&self, owner: &str) -> Vec<Summary> {
        #[derive(Deserialize)]
        struct Head {
            id: String,
            title: String,
            updated: u64,
        }
        let Ok(entries) = std::fs::read_dir(self.owner_dir(owner)) else {
            return Vec::new();
        };
        let mut out: Vec<Summary> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Head>(&b).ok())
            .filter(|h| valid_id(&h.id))
            .map(|h| Summary {
                id: h.id,
                title: h.title,
                updated: h.updated,
            })
            .collect();
        out.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Deletes the owner's conversation `id`: `false` if it does not exist (or is
    /// someone else's: it is only ever looked for in the owner's folder).
    pub(crate) fn delete(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        if !valid_id(id) {
            return Ok(false);
        }
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match std::fs::remove_file(self.owner_dir(owner).join(format!("{id}.json"))) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Io(e.kind())),
        }
    }

    /// Saves a conversation (whole), then deletes the owner's oldest beyond the cap.
    pub(crate) fn save(&self, owner: &str, c: &Conversation) -> Result<(), StoreError> {
        if !valid_id(&c.id) {
            return Err(StoreError::Encode);
        }
        let bytes = serde_json::to_vec(c).map_err(|_| StoreError::Encode)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.owner_dir(owner);
        create_private_dir(&dir).map_err(|e| StoreError::Io(e.kind()))?;
        let tmp = dir.join(format!(".{}.tmp", c.id));
        write_private(&tmp, &bytes).map_err(|e| StoreError::Io(e.kind()))?;
        std::fs::rename(&tmp, dir.join(format!("{}.json", c.id)))
            .map_err(|e| StoreError::Io(e.kind()))?;
        let all = self.list(owner);
        for old in all.iter().skip(MAX_CONVERSATIONS) {
            let _ = std::fs::remove_file(dir.join(format!("{}.json", old.id)));
        }
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_kept_per_owner_and_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path());
        let mut c = Conversation::new("How many servers?", "m");
        c.push(Turn {
            question: "How many servers?".into(),
            answer: "Many.".into(),
            ..Turn::default()
        });
        store.save("user:alice", &c).expect("saved");
        assert_eq!(
            store.load("user:alice", &c.id).map(|c| c.turns.len()),
            Some(1)
        );
        assert!(store.load("user:bob", &c.id).is_none(), "not bob's");
        assert!(store.load("user:alice", "../../etc/passwd").is_none());
        for i in 0..MAX_CONVERSATIONS + 3 {
            let mut c = Conversation::new(&format!("q{i}"), "m");
            c.updated += 1 + i as u64;
            store.save("user:alice", &c).expect("saved");
        }
        let list = store.list("user:alice");
        assert_eq!(list.len(), MAX_CONVERSATIONS);
        assert_eq!(list[0].title, format!("q{}", MAX_CONVERSATIONS + 2));
        assert!(store.list("user:bob").is_empty());
        let newest = list[0].id.clone();
        assert!(
            !store.delete("user:bob", &newest).expect("bob"),
            "not bob's"
        );
        assert!(store.delete("user:alice", &newest).expect("alice"));
        assert!(store.load("user:alice", &newest).is_none());
        assert!(!store.delete("user:alice", &newest).expect("gone"));
        assert!(!store.delete("user:alice", "../x").expect("not an id"));
    }
}
