//! `dbward check`: the policy verdict for one query, as text or JSON.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Args;
use dbward_policy::{Dialect, Policy, Verdict};

/// Arguments of `dbward check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The SQL dialect to read the query in.
    #[arg(long, short, default_value = "postgres", value_parser = ["postgres", "postgresql", "mysql", "mariadb", "sqlite"])]
    dialect: String,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
    /// Config file whose `[policy]` section the query is checked against (default: the
    /// default policy).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// The query, or `-` to read it from standard input.
    sql: String,
}

/// Runs the command: exit 0 allowed, 1 refused, 2 input error.
pub fn run(args: &CheckArgs) -> ExitCode {
    let dialect: Dialect = match args.dialect.parse() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let sql = if args.sql == "-" {
        let mut bytes = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
            eprintln!("error: cannot read standard input: {e}");
            return ExitCode::from(2);
        }
        match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "error: the query is not valid UTF-8 (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                );
                return ExitCode::from(2);
            }
        }
    } else {
        args.sql.clone()
    };
    let policy = match &args.config {
        None => Policy::default(),
        Some(path) => match dbward_gateway::GatewayConfig::load(path) {
            Ok(c) => Policy::new(c.policy),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let verdict = policy.check(dialect, &sql);
    let text = if args.json {
        match serde_json::to_string_pretty(&verdict) {
            Ok(j) => j + "\n",
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        render(&verdict)
    };
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(text.as_bytes()).is_err() {
        return ExitCode::from(2);
    }
    if verdict.is_allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The human-readable form: one line for the decision, one per reason.
fn render(v: &Verdict) -> String {
    let mut s = String::new();
    let kind = v
        .kind
        .as_ref()
        .map(|k| format!(" ({k})"))
        .unwrap_or_default();
    if v.is_allowed() {
        s.push_str(&format!("allowed{kind} [{}]\n", v.dialect));
    } else {
        s.push_str(&format!("refused{kind} [{}]\n", v.dialect));
        for r in &v.reasons {
            let at = r
                .position
                .map(|p| format!(" at position {p}"))
                .unwrap_or_default();
            s.push_str(&format!("  - {}{at}: {}\n", r.rule, r.message));
        }
    }
    if !v.tables.is_empty() {
        let t: Vec<String> = v.tables.iter().map(ToString::to_string).collect();
        s.push_str(&format!("  tables: {}\n", t.join(", ")));
    }
    if !v.functions.is_empty() {
        let f: Vec<String> = v.functions.iter().map(ToString::to_string).collect();
        s.push_str(&format!("  functions: {}\n", f.join(", ")));
    }
    if !v.unknown_functions.is_empty() {
        let f: Vec<String> = v
            .unknown_functions
            .iter()
            .map(ToString::to_string)
            .collect();
        s.push_str(&format!(
            "  functions with no rule here (the database says what each name resolves to before anything runs): {}\n",
            f.join(", ")
        ));
    }
    s
}
