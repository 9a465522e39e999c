//! The embedded demo database: a small CMDB (departments, servers, applications,
//! incidents) in an SQLite file, created on first use so `dbward serve` and `dbward demo`
//! work on a fresh machine with nothing else set up.
//!
//! Invariants:
//! - The content is deterministic: every value is derived from row numbers, never from a
//!   random source or the clock, so two machines build byte-for-byte the same rows and
//!   tests can assert on them.
//! - The file appears whole or not at all: it is written under a temporary name in the
//!   same directory and renamed into place, so a crash (or two processes starting at once)
//!   never leaves a half-built database behind.
//! - This is the only place the gateway opens SQLite writable, and only on a file it is
//!   creating. Clients reach the demo through the normal read-only backend.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use crate::error::GatewayError;

/// Bumped whenever the schema or the generator changes; stored in `PRAGMA user_version`.
pub const DEMO_VERSION: i32 = 2;
/// Rows per table, for tests and documentation.
pub const DEPARTMENTS: usize = 12;
/// Servers in the demo.
pub const SERVERS: usize = 1_200;
/// Applications in the demo.
pub const APPLICATIONS: usize = 600;
/// Incidents in the demo.
pub const INCIDENTS: usize = 3_000;

const SCHEMA: &str = r#"
CREATE TABLE departments (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  cost_center TEXT NOT NULL,
  head TEXT NOT NULL,
  budget REAL NOT NULL
);
CREATE TABLE servers (
  id INTEGER PRIMARY KEY,
  hostname TEXT NOT NULL UNIQUE,
  department_id INTEGER NOT NULL REFERENCES departments(id),
  environment TEXT NOT NULL CHECK (environment IN ('production', 'staging', 'development')),
  os TEXT NOT NULL,
  cpu_cores INTEGER NOT NULL,
  memory_gb INTEGER NOT NULL,
  ip_address TEXT NOT NULL,
  datacenter TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'maintenance', 'retired')),
  commissioned_on TEXT NOT NULL
);
CREATE INDEX servers_department_idx ON servers(department_id);
CREATE TABLE applications (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  department_id INTEGER NOT NULL REFERENCES departments(id),
  server_id INTEGER NOT NULL REFERENCES servers(id),
  tier TEXT NOT NULL CHECK (tier IN ('critical', 'high', 'medium', 'low')),
  language TEXT NOT NULL,
  version TEXT NOT NULL,
  owner_email TEXT NOT NULL
);
CREATE INDEX applications_server_idx ON applications(server_id);
CREATE TABLE incidents (
  id INTEGER PRIMARY KEY,
  server_id INTEGER NOT NULL REFERENCES servers(id),
  application_id INTEGER REFERENCES applications(id),
  severity TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  status TEXT NOT NULL CHECK (status IN ('open', 'investigating', 'resolved')),
  title TEXT NOT NULL,
  opened_at TEXT NOT NULL,
  resolved_at TEXT
);
CREATE INDEX incidents_server_idx ON incidents(server_id);
CREATE INDEX incidents_opened_idx ON incidents(opened_at);
"#;

const DEPARTMENT_NAMES: [&str; DEPARTMENTS] = [
    "Engineering",
    "Finance",
    "Operations",
    "Sales",
    "Marketing",
    "Human Resources",
    "Legal",
    "Security",
    "Data Platform",
    "Customer Support",
    "Research",
    "Facilities",
];
const PEOPLE: [&str; 12] = [
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Ken Thompson",
    "Margaret Hamilton",
    "John Backus",
    "Radia Perlman",
    "Leslie Lamport",
];
const OS: [&str; 5] = [
    "Debian 12",
    "Ubuntu 24.04",
    "RHEL 9",
    "Windows Server 2022",
    "FreeBSD 14",
];
const DATACENTERS: [&str; 4] = ["fra1", "ams2", "lon1", "nyc3"];
const ENVIRONMENTS: [&str; 3] = ["production", "staging", "development"];
const APP_WORDS: [&str; 10] = [
    "billing",
    "catalog",
    "search",
    "payments",
    "inventory",
    "auth",
    "reports",
    "mail",
    "crm",
    "ledger",
];
const LANGUAGES: [&str; 6] = ["Rust", "Go", "Java", "Python", "TypeScript", "C#"];
const TIERS: [&str; 4] = ["critical", "high", "medium", "low"];
const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
const INCIDENT_TITLES: [&str; 8] = [
    "Disk usage above 90%",
    "High CPU load",
    "Service not responding",
    "Certificate expires soon",
    "Memory leak suspected",
    "Backup job failed",
    "Elevated error rate",
    "Network packet loss",
];

/// The default data directory (demo database, audit log): `$DBWARD_DATA_DIR`, else
/// `$XDG_DATA_HOME/dbward`, else `~/.local/share/dbward`, else the current directory.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("DBWARD_DATA_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_DATA_HOME")
                .filter(|v| !v.is_empty())
                .map(|d| PathBuf::from(d).join("dbward"))
        })
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share/dbward"))
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The default location of the demo database: `demo.db` in [`default_data_dir`].
pub fn default_demo_path() -> PathBuf {
    default_data_dir().join("demo.db")
}

/// Makes sure the demo database exists at `path`, creating its directory and the file if
/// missing. An existing file is used as it is (a user may have explored or replaced it).
/// Returns the path.
pub fn ensure_demo_db(path: &Path) -> Result<PathBuf, GatewayError> {
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| {
        GatewayError::Config(format!(
            "cannot create the data directory {}: {e}",
            dir.display()
        ))
    })?;
    // Unique per process, so two processes building at once do not share a temp file.
    let tmp = dir.join(format!(".demo.db.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let built = build(&tmp);
    if let Err(e) = built {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        GatewayError::Config(format!(
            "cannot move the demo database into {}: {e}",
            path.display()
        ))
    })?;
    tracing::info!(path = %path.display(), "created the demo database");
    Ok(path.to_path_buf())
}

fn db_err(e: rusqlite::Error) -> GatewayError {
    GatewayError::Internal(format!("building the demo database: {e}"))
}

/// Writes the whole demo database into a new file, in one transaction.
fn build(path: &Path) -> Result<(), GatewayError> {
    let mut conn = Connection::open(path)
        .map_err(|e| GatewayError::Config(format!("cannot create {}: {e}", path.display())))?;
    let tx = conn.transaction().map_err(db_err)?;
    tx.execute_batch(SCHEMA).map_err(db_err)?;
    {
        let mut st = tx
            .prepare("INSERT INTO departments VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(db_err)?;
        for (i, name) in DEPARTMENT_NAMES.iter().enumerate() {
            let id = i + 1;
            st.execute(params![
                id as i64,
                name,
                format!("CC-{:04}", 1000 + id * 7),
                PEOPLE[(i * 5) % PEOPLE.len()],
                // Budgets from 250,000.00 upwards in uneven steps.
                250_000.0 + ((id * id * 37_919) % 1_750_000) as f64 + 0.25 * (id % 4) as f64,
            ])
            .map_err(db_err)?;
        }
        let mut st = tx
            .prepare("INSERT INTO servers VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
            .map_err(db_err)?;
        for n in 1..=SERVERS {
            let dc = DATACENTERS[n % DATACENTERS.len()];
            let env = ENVIRONMENTS[(n / 3) % ENVIRONMENTS.len()];
            let status = match n % 20 {
                0 => "retired",
                7 => "maintenance",
                _ => "active",
            };
            st.execute(params![
                n as i64,
                format!("{dc}-{}-{n:04}", &env[..4]),
                department_of(n),
                env,
                OS[(n * 3) % OS.len()],
                [2i64, 4, 8, 16, 32, 64][n % 6],
                [4i64, 8, 16, 32, 64, 128, 256][(n * 5) % 7],
                format!("10.{}.{}.{}", n % DATACENTERS.len(), n / 250, n % 250 + 1),
                dc,
                status,
                date_from_day(n * 3 % 2_000),
            ])
            .map_err(db_err)?;
        }
        let mut st = tx
            .prepare("INSERT INTO applications VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .map_err(db_err)?;
        for n in 1..=APPLICATIONS {
            let word = APP_WORDS[n % APP_WORDS.len()];
            let dept = 1 + (n * 5) % DEPARTMENTS;
            st.execute(params![
                n as i64,
                format!("{word}-{n:03}"),
                dept as i64,
                (1 + (n * 13) % SERVERS) as i64,
                TIERS[(n * 7) % TIERS.len()],
                LANGUAGES[(n * 11) % LANGUAGES.len()],
                format!("{}.{}.{}", 1 + n % 4, (n * 3) % 10, n % 17),
                format!(
                    "{}@example.com",
                    PEOPLE[n % PEOPLE.len()]
                        .to_ascii_lowercase()
                        .replace(' ', ".")
                ),
            ])
            .map_err(db_err)?;
        }
        let mut st = tx
            .prepare("INSERT INTO incidents VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .map_err(db_err)?;
        for n in 1..=INCIDENTS {
            // Spread over 2024 and 2025: one incident every ~5.8 hours.
            let opened_minutes = n * 349;
            let status = match n % 10 {
                0 => "open",
                1 => "investigating",
                _ => "resolved",
            };
            let resolved = (status == "resolved")
                .then(|| timestamp_from_minutes(opened_minutes + 15 + (n * 97) % 2_880));
            st.execute(params![
                n as i64,
                (1 + (n * 17) % SERVERS) as i64,
                // Every fifth incident is about the machine, not an application.
                (n % 5 != 0).then(|| (1 + (n * 19) % APPLICATIONS) as i64),
                // Mostly low and medium, a tenth critical.
                SEVERITIES[[0, 0, 0, 0, 1, 1, 1, 2, 2, 3][(n * 7 + n / 10) % 10]],
                status,
                INCIDENT_TITLES[(n * 3) % INCIDENT_TITLES.len()],
                timestamp_from_minutes(opened_minutes),
                resolved,
            ])
            .map_err(db_err)?;
        }
    }
    tx.pragma_update(None, "user_version", DEMO_VERSION)
        .map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    conn.close().map_err(|(_, e)| db_err(e))?;
    Ok(())
}

/// `YYYY-MM-DD` of day `n` after 2020-01-01.
/// Servers per department out of every 100: uneven, like a real company, so that the
/// first chart anyone draws ("servers per department") is not flat.
const DEPARTMENT_WEIGHTS: [usize; DEPARTMENTS] = [22, 17, 14, 11, 9, 8, 6, 5, 3, 2, 2, 1];

/// The department of server `n`: 37 is coprime to 100, so every 100 consecutive servers
/// fall into the departments exactly in proportion to their weights.
fn department_of(n: usize) -> i64 {
    let slot = (n * 37) % 100;
    let mut upto = 0;
    for (i, w) in DEPARTMENT_WEIGHTS.iter().enumerate() {
        upto += w;
        if slot < upto {
            return 1 + i as i64;
        }
    }
    DEPARTMENTS as i64
}

fn date_from_day(n: usize) -> String {
    let (y, m, d) = civil_from_days(days_to_2020() + n as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of minute `n` after 2024-01-01 00:00.
fn timestamp_from_minutes(n: usize) -> String {
    let day = (n / 1_440) as i64;
    let (y, m, d) = civil_from_days(days_to_2024() + day);
    let minute = n % 1_440;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:00",
        minute / 60,
        minute % 60
    )
}

fn days_to_2020() -> i64 {
    18_262 // 2020-01-01 is day 18262 of the Unix epoch
}

fn days_to_2024() -> i64 {
    19_723 // 2024-01-01
}

/// Howard Hinnant's `civil_from_days`: Unix day number to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departments_are_uneven_but_all_used() {
        assert_eq!(DEPARTMENT_WEIGHTS.iter().sum::<usize>(), 100);
        let mut count = [0usize; DEPARTMENTS];
        for n in 1..=SERVERS {
            count[(department_of(n) - 1) as usize] += 1;
        }
        assert_eq!(count[0], 264);
        assert_eq!(count[DEPARTMENTS - 1], 12);
        assert!(count.windows(2).all(|w| w[0] >= w[1]), "{count:?}");
    }

    #[test]
    fn dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(date_from_day(0), "2020-01-01");
        assert_eq!(date_from_day(60), "2020-03-01"); // 2020 is a leap year
        assert_eq!(timestamp_from_minutes(0), "2024-01-01 00:00:00");
        assert_eq!(timestamp_from_minutes(1_441), "2024-01-02 00:01:00");
    }

    #[test]
    fn builds_once_deterministically_and_reuses_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ensure_demo_db(&dir.path().join("a/demo.db")).expect("built");
        let b = ensure_demo_db(&dir.path().join("b/demo.db")).expect("built");
        let dump = |p: &Path| {
            let c = Connection::open(p).expect("open");
            let mut out = Vec::new();
            for t in ["departments", "servers", "applications", "incidents"] {
                let n: i64 = c
                    .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                    .expect("count");
                let mut st = c
                    .prepare(&format!("SELECT * FROM {t} ORDER BY id DESC LIMIT 1"))
                    .expect("prepare");
                let width = st.column_count();
                let last: String = st
                    .query_row([], |r| {
                        Ok((0..width)
                            .map(|i| format!("{:?}", r.get_ref(i)))
                            .collect::<Vec<_>>()
                            .join("|"))
                    })
                    .expect("last row");
                out.push(format!("{t}:{n}:{last}"));
            }
            let v: i32 = c
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .expect("version");
            out.push(format!("v{v}"));
            out
        };
        let da = dump(&a);
        assert_eq!(da, dump(&b));
        assert!(da[0].starts_with(&format!("departments:{DEPARTMENTS}:")));
        assert!(da[3].starts_with(&format!("incidents:{INCIDENTS}:")));
        assert_eq!(da[4], format!("v{DEMO_VERSION}"));
        // A second call keeps the existing file.
        let modified = std::fs::metadata(&a)
            .and_then(|m| m.modified())
            .expect("mtime");
        ensure_demo_db(&a).expect("exists");
        assert_eq!(
            std::fs::metadata(&a)
                .and_then(|m| m.modified())
                .expect("mtime"),
            modified
        );
        // No temp file is left behind.
        let leftovers = std::fs::read_dir(dir.path().join("a"))
            .expect("dir")
            .count();
        assert_eq!(leftovers, 1);
    }
}
