//! `dbward audit verify` and `dbward audit tail`.

use std::io::{BufRead, Seek};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use dbward_gateway::audit::writer::read_head;
use dbward_gateway::audit::{Entry, verify_files};

/// `dbward audit ...`
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exit 1 and say where it breaks (edited, deleted, reordered or
    /// truncated entries). Give rotated files oldest first, the live file last.
    Verify {
        /// The log file(s), in chain order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Environment variable holding the HMAC key, if the log was written with one.
        #[arg(long)]
        hmac_key_env: Option<String>,
    },
    /// Print entries readably.
    Tail {
        /// The log file.
        #[arg(env = "DBWARD_AUDIT_LOG")]
        file: PathBuf,
        /// Entries to show from the end.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing new entries as they are written.
        #[arg(long)]
        follow: bool,
        /// Only security events.
        #[arg(long)]
        events_only: bool,
    },
}

/// Runs the subcommand.
pub fn run(args: &AuditArgs) -> ExitCode {
    match &args.command {
        AuditCommand::Verify {
            files,
            hmac_key_env,
        } => {
            let key = match hmac_key_env {
                Some(var) => match std::env::var(var) {
                    Ok(k) => Some(k.into_bytes()),
                    Err(_) => {
                        eprintln!("error: environment variable {var} is not set");
                        return ExitCode::from(2);
                    }
                },
                None => None,
            };
            let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
            let head = files.last().and_then(|f| read_head(f));
            match verify_files(&paths, key.as_deref(), head) {
                Ok(r) => {
                    say(&format!(
                        "ok: {} entries, chain intact up to seq {}",
                        r.entries, r.last_seq
                    ));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    say(&format!("BROKEN: {e}"));
                    ExitCode::from(1)
                }
            }
        }
        AuditCommand::Tail {
            file,
            lines,
            follow,
            events_only,
        } => tail(file, *lines, *follow, *events_only),
    }
}

#[allow(clippy::print_stdout)] // command output
fn say(line: &str) {
    println!("{line}");
}

/// One entry as a line a person reads.
fn render(e: &Entry) -> String {
    let mut s = format!("{} #{} {}", e.ts, e.seq, e.kind);
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            s.push_str(&format!(" {k}={v}"));
        }
    };
    add("client", e.client.clone());
    add("tool", e.tool.clone());
    add("conn", e.connection.clone());
    add("kind", e.statement_kind.clone());
    add("verdict", e.verdict.clone());
    add("rules", (!e.rules.is_empty()).then(|| e.rules.join(",")));
    add("rows", e.rows.map(|r| r.to_string()));
    add("ms", e.duration_ms.map(|r| r.to_string()));
    add("outcome", e.outcome.clone());
    add("note", e.note.clone());
    if let Some(ev) = &e.event {
        s.push_str(&format!(
            " [{}] {}: {}{}",
            ev.level.to_uppercase(),
            ev.detector,
            ev.message,
            ev.response
                .as_ref()
                .map(|r| format!(" -> {r}"))
                .unwrap_or_default()
        ));
    }
    s
}

fn parse(line: &str) -> Option<Entry> {
    let cut = line.rfind(",\"hash\":\"")?;
    serde_json::from_str(&format!("{}}}", &line[..cut])).ok()
}

fn tail(file: &PathBuf, n: usize, follow: bool, events_only: bool) -> ExitCode {
    let f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let mut reader = std::io::BufReader::new(f);
    let keep = |e: &Entry| !events_only || e.event.is_some();
    let mut last: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(e) = parse(line.trim_end()).filter(keep) {
            last.push_back(render(&e));
            if last.len() > n {
                last.pop_front();
            }
        }
        line.clear();
    }
    for l in last {
        say(&l);
    }
    if !follow {
        return ExitCode::SUCCESS;
    }
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => {
                std::thread::sleep(std::time::Duration::from_millis(200));
                // Rotation: the live file was replaced; start on the new one.
                if let (Ok(meta), Ok(pos)) = (std::fs::metadata(file), reader.stream_position())
                    && meta.len() < pos
                    && let Ok(f) = std::fs::File::open(file)
                {
                    reader = std::io::BufReader::new(f);
                }
            }
            Ok(_) if line.ends_with('\n') => {
                if let Some(e) = parse(line.trim_end()).filter(keep) {
                    say(&render(&e));
                }
            }
            Ok(_) => {
                // A line still being written: wait for the rest.
                std::thread::sleep(std::time::Duration::from_millis(50));
                let mut rest = String::new();
                let _ = reader.read_line(&mut rest);
                line.push_str(&rest);
                if let Some(e) = parse(line.trim_end()).filter(keep) {
                    say(&render(&e));
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
}
