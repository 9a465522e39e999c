//! The audit view's reading of the child's audit log: the tail of the file, parsed, filtered
//! by session and event level, newest first.
//!
//! Invariant: read-only. The view opens the file for reading and never writes, so it cannot
//! disturb the chain (`dbward audit verify` is the integrity check; this is a viewer).

use std::io::SeekFrom;
use std::path::Path;

use dbward_gateway::audit::chain::Entry;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How much of the end of the file is read.
const TAIL_BYTES: u64 = 4 * 1024 * 1024;
/// Most entries shown.
const MAX_ROWS: usize = 200;

/// What to show.
pub(crate) struct Filter {
    /// Entries whose session or client contains this text (empty: all).
    pub session: String,
    /// Security events at this level or above only (0: everything).
    pub level: u8,
    /// Security events only.
    pub events_only: bool,
}

/// A level's rank: low 1, medium 2, high 3, critical 4, anything else 0.
pub(crate) fn level_rank(level: &str) -> u8 {
    match level {
        "low" => 1,
        "medium" => 2,
        "high" => 3,
        "critical" => 4,
        _ => 0,
    }
}

/// One entry as the page shows it.
pub(crate) struct Row {
    pub seq: u64,
    /// The whole timestamp (in the cell's title).
    pub ts: String,
    /// Date and time to the second, for the cell.
    pub time: String,
    pub kind: String,
    /// The whole session (`principal/connection`), for the cell's title and the filter.
    pub session: String,
    /// Who asked (the principal), as the cell shows it.
    pub who: String,
    /// The session's connection id, shortened (the whole one is in `session`).
    pub session_short: String,
    pub client: String,
    pub tool: String,
    pub connection: String,
    pub statement_kind: String,
    pub verdict: String,
    pub rules: String,
    pub outcome: String,
    pub rows: String,
    pub duration: String,
    pub level: String,
    pub message: String,
    /// The query with placeholders for its literals (the default), or its whole text when
    /// the server stores it (`store_query_text`).
    pub query: String,
    /// Whether `query` is the whole text (values included).
    pub query_is_full: bool,
}

/// `2026-12-03T12:06:53.233837Z` -> `2026-12-03 12:06:53`.
fn short_time(ts: &str) -> String {
    let t = ts.replacen('T', " ", 1);
    t.get(..19).map(String::from).unwrap_or(t)
}

fn row(e: Entry) -> Row {
    let opt = |o: Option<String>| o.unwrap_or_default();
    let (level, message) = match e.event {
        Some(ev) => (
            ev.level,
            match ev.response {
                Some(r) => format!("{}: {} (response: {r})", ev.detector, ev.message),
                None => format!("{}: {}", ev.detector, ev.message),
            },
        ),
        None => (String::new(), opt(e.note)),
    };
    let session = opt(e.session);
    // `principal/connection-id`: the principal may itself hold a slash (`stdio/label`).
    let (who, conn) = match session.rsplit_once('/') {
        Some((p, c)) if c.len() >= 16 && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (p.to_string(), c.to_string())
        }
        _ => (session.clone(), String::new()),
    };
    let client = opt(e.client);
    let who = if who.is_empty() { client.clone() } else { who };
    let (query, query_is_full) = match (e.query, e.query_normalized) {
        (Some(q), _) => (q, true),
        (None, Some(n)) => (n, false),
        (None, None) => (String::new(), false),
    };
    Row {
        seq: e.seq,
        time: short_time(&e.ts),
        ts: e.ts,
        kind: e.kind,
        session_short: conn.chars().take(8).collect(),
        session,
        who,
        client,
        tool: opt(e.tool),
        connection: opt(e.connection),
        statement_kind: opt(e.statement_kind),
        verdict: opt(e.verdict),
        rules: e.rules.join(", "),
        outcome: opt(e.outcome),
        rows: e.rows.map(|r| r.to_string()).unwrap_or_default(),
        duration: e.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
        level,
        message,
        query,
        query_is_full,
    }
}

/// The newest entries matching `filter` (at most 200) and how many entries were read.
pub(crate) async fn recent(path: &Path, filter: &Filter) -> Result<(Vec<Row>, usize), String> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(format!("cannot read the audit log: {}", e.kind())),
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| format!("cannot read the audit log: {}", e.kind()))?
        .len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(|e| format!("cannot read the audit log: {}", e.kind()))?;
    let mut bytes = Vec::new();
    file.take(TAIL_BYTES)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read the audit log: {}", e.kind()))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        // The first line was cut by where the read started.
        lines.remove(0);
    }
    let scanned = lines.len();
    let mut rows = Vec::new();
    for line in lines.into_iter().rev() {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            continue;
        };
        let is_event = e.event.is_some();
        if (filter.events_only || filter.level > 0) && !is_event {
            continue;
        }
        if filter.level > 0
            && e.event
                .as_ref()
                .is_none_or(|ev| level_rank(&ev.level) < filter.level)
        {
            continue;
        }
        if !filter.session.is_empty() {
            let hit =
                |o: &Option<String>| o.as_deref().is_some_and(|s| s.contains(&filter.session));
            if !hit(&e.session) && !hit(&e.client) {
                continue;
            }
        }
        rows.push(row(e));
        if rows.len() >= MAX_ROWS {
            break;
        }
    }
    Ok((rows, scanned))
}
