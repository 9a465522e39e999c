//! Named users of the web UI: `dbward web add-user NAME` stores an argon2id hash of the
//! password in `<data>/web/users.json`; the login checks it. Each user is their own
//! principal in the child (`stdio/user-<name>`): the audit log, the detector's windows,
//! rate limits and blocks follow the person across browser sessions.
//!
//! Invariants:
//! - Only PHC-format argon2id hashes are stored (never a password), in a file readable by
//!   the owner of the process only (0600).
//! - A name is 1 to 24 lowercase letters, digits, `-` or `_`, so `user-<name>` is a valid
//!   session label and the name never needs escaping.
//! - An unknown name costs the same hash computation as a known one (no user enumeration
//!   by timing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// Shortest password `add-user` accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Why the users file could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The name is not 1 to 24 of `a-z 0-9 - _`.
    #[error("a user name is 1 to 24 lowercase letters, digits, '-' or '_'")]
    InvalidName,
    /// The password is too short.
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// The file could not be read or written (the error kind only).
    #[error("the users file {path}: {kind}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        kind: std::io::ErrorKind,
    },
    /// The file is not a users file.
    #[error("the users file {0} is malformed")]
    Malformed(PathBuf),
    /// Hashing failed (a bug or an exhausted system).
    #[error("the password could not be hashed")]
    Hash,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Name -> PHC string.
    users: BTreeMap<String, String>,
}

/// The named users, as loaded at start-up.
#[derive(Debug, Default)]
pub struct Users {
    hashes: BTreeMap<String, String>,
    /// Verified against for unknown names, so they cost the same.
    decoy: String,
}

/// Whether `name` may name a user.
pub fn valid_name(name: &str) -> bool {
    (1..=24).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Where the users file lives in a data directory.
pub fn users_path(data_dir: &Path) -> PathBuf {
    data_dir.join("web").join("users.json")
}

fn hash(password: &str) -> Result<String, UsersError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| UsersError::Hash)
}

fn read(path: &Path) -> Result<File, UsersError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|_| UsersError::Malformed(path.to_path_buf()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(e) => Err(UsersError::Io {
            path: path.to_path_buf(),
            kind: e.kind(),
        }),
    }
}

/// Adds `name` (or replaces its password) in the users file at `path`.
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<(), UsersError> {
    if !valid_name(name) {
        return Err(UsersError::InvalidName);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UsersError::WeakPassword);
    }
    let mut file = read(path)?;
    file.users.insert(name.to_string(), hash(password)?);
    let io = |e: std::io::Error| UsersError::Io {
        path: path.to_path_buf(),
        kind: e.kind(),
    };
    if let Some(dir) = path.parent() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(io)?;
    }
    let bytes = serde_json::to_vec_pretty(&file).map_err(|_| UsersError::Hash)?;
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

impl Users {
    /// The users in the file at `path` (none if it does not exist).
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let file = read(path)?;
        for (name, phc) in &file.users {
            if !valid_name(name) || PasswordHash::new(phc).is_err() {
                return Err(UsersError::Malformed(path.to_path_buf()));
            }
        }
        Ok(Users {
            decoy: if file.users.is_empty() {
                String::new()
            } else {
                hash("decoy password for unknown names")?
            },
            hashes: file.users,
        })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `password` is `name`'s.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let (phc, known) = match self.hashes.get(name) {
            Some(h) => (h.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_stored_as_argon2id_hashes_and_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = users_path(dir.path());
        assert!(Users::load(&path).expect("no file").is_empty());
        add_user(&path, "alice", "correct horse battery").expect("added");
        add_user(&path, "bob", "another long password").expect("added");
        assert!(matches!(
            add_user(&path, "Alice!", "correct horse battery"),
            Err(UsersError::InvalidName)
        ));
        assert!(matches!(
            add_user(&path, "carol", "short"),
            Err(UsersError::WeakPassword)
        ));
        let text = std::fs::read_to_string(&path).expect("file");
        assert!(
            text.contains("$argon2id$") && !text.contains("correct horse"),
            "{text}"
        );
        let users = Users::load(&path).expect("loads");
        assert!(users.verify("alice", "correct horse battery"));
        assert!(!users.verify("alice", "another long password"));
        assert!(!users.verify("mallory", "correct horse battery"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }
}
