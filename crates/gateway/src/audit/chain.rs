//! The chained entry format and its verification.
//!
//! A line is the entry's JSON with its `hash` field last:
//! `{"seq":..,"ts":..,"prev":"<hex>",...,"hash":"<hex>"}`. The hash is taken over
//! `prev + "\n" + body`, where `body` is the line without `,"hash":"<hex>"` — so a verifier
//! recomputes it from the bytes on disk, with no re-serialisation that could differ.
//!
//! Invariant: `seq` rises by one per entry and each `prev` is the hash of the entry before,
//! from a genesis entry whose `prev` is 64 zeros; a rotated file starts with a `rotate`
//! entry whose `prev` is the last hash of the file before.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the genesis entry.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A security event carried by an entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventInfo {
    /// `low`, `medium`, `high` or `critical`.
    pub level: String,
    /// The detector or source (`probing`, `auth_failure`, ...).
    pub detector: String,
    /// What happened.
    pub message: String,
    /// The response taken (`log`, `rate_limit`, `block`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// One audit entry (fields in their on-disk order; `hash` is appended by the writer).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Sequence number, from 0 (genesis), rising by one.
    pub seq: u64,
    /// RFC 3339 timestamp, UTC.
    pub ts: String,
    /// Hash of the entry before.
    pub prev: String,
    /// `genesis`, `rotate`, `recovered`, `call` or `event`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The session (principal and connection) the entry belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Who called: the authenticated principal, MCP client name, HTTP peer or web user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The tool called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The connection's config *name* (or its masked type for unnamed ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// SHA-256 of the query text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_sha256: Option<String>,
    /// The query with its literals replaced by placeholders (`$1`, `?`): what ran, without
    /// the values; kept by default (absent when the query did not parse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_normalized: Option<String>,
    /// The statement kind, when the query parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement_kind: Option<String>,
    /// `allowed` or `refused` (the policy's verdict).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Rule ids that fired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Rows returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes of row data returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Wall time of the call, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `ok` or the stable error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The query text, only with `store_query_text = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// A security event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventInfo>,
    /// Free-form detail for genesis/rotate/recovered entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// SHA-256 of a text, as hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The chain hash of an entry body after `prev`.
pub fn chain_hash(key: Option<&[u8]>, prev: &str, body: &str) -> String {
    match key {
        Some(k) => {
            // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
            let mut mac = match Hmac::<Sha256>::new_from_slice(k) {
                Ok(m) => m,
                Err(_) => return String::new(),
            };
            mac.update(prev.as_bytes());
            mac.update(b"\n");
            mac.update(body.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        None => {
            let mut h = Sha256::new();
            h.update(prev.as_bytes());
            h.update(b"\n");
            h.update(body.as_bytes());
            hex::encode(h.finalize())
        }
    }
}

/// Serialises an entry and appends its hash: the line to write (without the newline).
pub fn seal(entry: &Entry, key: Option<&[u8]>) -> Result<(String, String), serde_json::Error> {
    let body = serde_json::to_string(entry)?;
    let hash = chain_hash(key, &entry.prev, &body);
    // `body` ends with `}`: insert the hash as the last field.
    let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    Ok((line, hash))
}

/// Splits a line into its body (as hashed) and its stated hash.
fn unseal(line: &str) -> Option<(String, &str)> {
    let cut = line.rfind(",\"hash\":\"")?;
    let rest = &line[cut + 9..];
    let hash = rest.strip_suffix("\"}")?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((format!("{}}}", &line[..cut]), hash))
}

/// Where and why a chain breaks.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A line is not a sealed entry (edited by hand, or cut mid-write).
    #[error("{file} line {line}: not a complete audit entry (edited or truncated)")]
    Malformed {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
    },
    /// The entry's content does not match its hash: it was edited.
    #[error("{file} line {line} (seq {seq}): content does not match its hash (edited)")]
    Edited {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The entry's stated sequence number.
        seq: u64,
    },
    /// The entry does not follow the one before: entries were deleted, reordered or
    /// inserted, or files are out of order.
    #[error(
        "{file} line {line} (seq {seq}): does not follow the entry before (expected seq {expected}): entries deleted, reordered or inserted"
    )]
    Broken {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The entry's sequence number.
        seq: u64,
        /// The sequence number that should have come.
        expected: u64,
    },
    /// The log ends before the last entry its head file records: entries were truncated.
    #[error(
        "{file}: ends at seq {last} but the writer had acknowledged up to seq {head}: entries truncated"
    )]
    Truncated {
        /// The file.
        file: String,
        /// The last sequence number present.
        last: u64,
        /// The last sequence number the writer recorded.
        head: u64,
    },
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// The last sequence number.
    pub last_seq: u64,
    /// The last hash.
    pub last_hash: String,
}

/// Verifies one or more files of one chain, in order. With `head` (the writer's `.head`
/// file content: `seq hash`), also checks that nothing was cut from the end.
pub fn verify_files(
    files: &[&Path],
    key: Option<&[u8]>,
    head: Option<(u64, String)>,
) -> Result<VerifyReport, VerifyError> {
    let mut prev: Option<(u64, String)> = None;
    let mut entries = 0u64;
    let mut last_file = String::new();
    for path in files {
        let file = path.display().to_string();
        last_file = file.clone();
        let text = std::fs::read_to_string(path).map_err(|e| VerifyError::Unreadable {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let n = i + 1;
            let Some(line) = line.strip_suffix('\n') else {
                // A last line without its newline was cut mid-write.
                return Err(VerifyError::Malformed { file, line: n });
            };
            let (body, stated) = unseal(line).ok_or(VerifyError::Malformed {
                file: file.clone(),
                line: n,
            })?;
            let entry: Entry = serde_json::from_str(&body).map_err(|_| VerifyError::Malformed {
                file: file.clone(),
                line: n,
            })?;
            if chain_hash(key, &entry.prev, &body) != stated {
                return Err(VerifyError::Edited {
                    file,
                    line: n,
                    seq: entry.seq,
                });
            }
            let follows = match &prev {
                None => {
                    (entry.kind == "genesis" && entry.seq == 0 && entry.prev == GENESIS_PREV)
                        || entry.kind == "rotate"
                }
                Some((seq, hash)) => entry.seq == seq + 1 && &entry.prev == hash,
            };
            if !follows {
                return Err(VerifyError::Broken {
                    file,
                    line: n,
                    seq: entry.seq,
                    expected: prev.as_ref().map(|(s, _)| s + 1).unwrap_or(0),
                });
            }
            prev = Some((entry.seq, stated.to_string()));
            entries += 1;
        }
    }
    let (last_seq, last_hash) = prev.unwrap_or((0, GENESIS_PREV.to_string()));
    if let Some((head_seq, head_hash)) = head
        && (head_seq > last_seq || (head_seq == last_seq && head_hash != last_hash))
    {
        return Err(VerifyError::Truncated {
            file: last_file,
            last: last_seq,
            head: head_seq,
        });
    }
    Ok(VerifyReport {
        entries,
        last_seq,
        last_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_unseal_round_trip() {
        let e = Entry {
            seq: 0,
            ts: "t".into(),
            prev: GENESIS_PREV.into(),
            kind: "genesis".into(),
            ..Entry::default()
        };
        let (line, hash) = seal(&e, None).expect("seals");
        let (body, stated) = unseal(&line).expect("unseals");
        assert_eq!(stated, hash);
        assert_eq!(chain_hash(None, GENESIS_PREV, &body), hash);
        assert_ne!(chain_hash(Some(b"k"), GENESIS_PREV, &body), hash);
    }
}
