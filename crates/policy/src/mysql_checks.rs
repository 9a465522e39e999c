//! MySQL/MariaDB-only rules the generic walk calls into: server secrets (path and key
//! system variables, the catalog views that list every variable or other sessions' SQL),
//! session state a SELECT can leave behind, and string searches whose cost is the product
//! of two constant-built sizes.
//!
//! Invariants:
//! - A system variable is judged by its last name part whatever its spelling (`@@x`,
//!   `@@global.x`, `@@GLOBAL.`x``), and a variable is sensitive when it is listed or its name
//!   contains a sensitive word (`dir`, `file`, `path`, `key`, `ssl`, ...): over-refusing a
//!   harmless variable is the accepted cost.
//! - `SHOW VARIABLES` is allowed only with a `LIKE` pattern that cannot match a sensitive
//!   name (LIKE is evaluated with MySQL's `\` escape).
//! - `performance_schema`, `sys` and `mysql` are refused whole (query text, settings,
//!   credentials); in `information_schema` the views that hold settings or other sessions'
//!   SQL are refused.

use sqlparser::ast::{BinaryOperator, Expr, FunctionArguments, Ident};

use crate::Findings;
use crate::sqlparser_consts::arg_expr;
use crate::verdict::Rule;

/// Refuses what `e` reveals or leaves behind; called for every expression of a MySQL query.
pub(crate) fn expr(e: &Expr, position: Option<usize>, max_search_cost: u128, out: &mut Findings) {
    match e {
        Expr::Identifier(i) => system_variable(std::slice::from_ref(i), position, out),
        Expr::CompoundIdentifier(parts) => system_variable(parts, position, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Assignment,
            ..
        } if matches!(&**left, Expr::Identifier(i) if i.value.starts_with('@')) => out.refuse(
            Rule::DataModifying,
            "assigning a user variable (`@v := ...`) leaves state on the session; compute the value in the query instead".into(),
            position,
        ),
        Expr::Function(f) => {
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase())
                .unwrap_or_default();
            let args: Vec<&Expr> = match &f.args {
                FunctionArguments::List(l) => l.args.iter().filter_map(arg_expr).collect(),
                _ => Vec::new(),
            };
            if name == "last_insert_id" && !args.is_empty() {
                out.refuse(
                    Rule::DataModifying,
                    "LAST_INSERT_ID(n) sets a value the session keeps after the query".into(),
                    position,
                );
            }
            if is_search(&name) {
                search_cost(&name, &args, position, max_search_cost, out);
            }
        }
        Expr::Position { expr, r#in } => {
            search_cost("POSITION", &[expr, r#in], position, max_search_cost, out)
        }
        Expr::Like { expr, pattern, .. }
        | Expr::ILike { expr, pattern, .. }
        | Expr::RLike { expr, pattern, .. } => {
            search_cost("LIKE", &[expr, pattern], position, max_search_cost, out)
        }
        _ => {}
    }
}

/// String functions whose running time is about the product of two argument sizes, and
/// which MariaDB runs to the end even once the statement is killed.
fn is_search(name: &str) -> bool {
    matches!(
        name,
        "locate"
            | "instr"
            | "position"
            | "replace"
            | "find_in_set"
            | "substring_index"
            | "strcmp"
            | "regexp_replace"
            | "regexp_instr"
            | "regexp_substr"
            | "regexp_like"
            | "field"
    )
}

/// Which argument a search looks for in the other (`LOCATE(needle, text)`,
/// `INSTR(text, needle)`, `POSITION(needle IN text)` given as `[needle, text]`,
/// `text LIKE pattern` as `[text, pattern]`), for the searches whose work is the product of
/// the two lengths.
fn needle_index(name: &str) -> Option<usize> {
    match name.to_ascii_lowercase().as_str() {
        "locate" | "position" | "find_in_set" => Some(0),
        "instr" | "replace" | "substring_index" | "like" => Some(1),
        _ => None,
    }
}

/// `?`, possibly cased, cast or parenthesized (`LOWER(?)`): a parameter, bound at the call.
fn is_param(e: &Expr) -> bool {
    match e {
        Expr::Value(v) => matches!(v.value, sqlparser::ast::Value::Placeholder(_)),
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => is_param(inner),
        Expr::Function(f) => {
            let cased = f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                ["lower", "upper", "lcase", "ucase"]
                    .iter()
                    .any(|n| i.value.eq_ignore_ascii_case(n))
            });
            match &f.args {
                FunctionArguments::List(l) if cased && l.args.len() == 1 => {
                    l.args.first().and_then(arg_expr).is_some_and(is_param)
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// Refuses a search over constant-built strings whose size product exceeds the budget, and
/// a search of a text whose size the query does not show (a column, an aggregate, a computed
/// value) for anything but a short constant.
fn search_cost(
    name: &str,
    args: &[&Expr],
    position: Option<usize>,
    budget: u128,
    out: &mut Findings,
) {
    if let Some(i) = needle_index(name)
        && let (Some(needle), Some(text)) = (args.get(i), args.get(1 - i))
        && built_size(text).is_none()
    {
        // A parameter's size is known only at the call: the gateway bounds it.
        if is_param(needle) {
            out.params_searched = true;
            return;
        }
        if built_size(needle).is_some_and(|n| n <= crate::bombs::SEARCH_NEEDLE_MAX) {
            return;
        }
        out.refuse(
            Rule::ResourceBomb,
            format!(
                "`{name}` must look for a constant of at most {} bytes when the text it searches is not a constant: the server does not stop `{name}` when the statement is killed, and a long or computed search string over a large text runs for minutes",
                crate::bombs::SEARCH_NEEDLE_MAX
            ),
            position,
        );
        return;
    }
    let sizes: Vec<u128> = args.iter().filter_map(|a| built_size(a)).collect();
    if sizes.len() < 2 {
        return;
    }
    let mut sorted = sizes;
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let cost = sorted[0].saturating_mul(sorted[1]);
    if cost > budget {
        out.refuse(
            Rule::ResourceBomb,
            format!(
                "`{name}` over built strings of {} and {} bytes would run for minutes, and the server does not stop it when killed",
                sorted[0], sorted[1]
            ),
            position,
        );
    }
}

/// The size of a constant-built string: `str_size`'s builders, plus CONCAT of sized parts.
fn built_size(e: &Expr) -> Option<u128> {
    if let Expr::Function(f) = e
        && let Some(name) = f.name.0.last().and_then(|p| p.as_ident())
        && ["concat", "concat_ws"]
            .iter()
            .any(|n| name.value.eq_ignore_ascii_case(n))
        && let FunctionArguments::List(l) = &f.args
    {
        return l
            .args
            .iter()
            .map(|a| arg_expr(a).and_then(built_size))
            .try_fold(0u128, |acc, s| Some(acc.saturating_add(s?)));
    }
    if let Expr::Nested(inner) = e {
        return built_size(inner);
    }
    crate::sqlparser_dialects::str_size(e)
}

/// `@@name`, `@@global.name`, `@@session.name`, `@@local.name`: refused when sensitive.
fn system_variable(parts: &[Ident], position: Option<usize>, out: &mut Findings) {
    let Some(first) = parts.first() else {
        return;
    };
    if !first.value.starts_with("@@") {
        return;
    }
    let var = match parts {
        [only] => only.value.trim_start_matches("@@"),
        [.., last] => last.value.as_str(),
        [] => return,
    }
    .to_ascii_lowercase();
    let var = ["global.", "session.", "local."]
        .iter()
        .find_map(|p| var.strip_prefix(p))
        .unwrap_or(&var)
        .to_string();
    if is_sensitive_variable(&var) {
        out.refuse(
            Rule::ShowSensitive,
            format!("the variable `@@{var}` reveals server paths, keys or credentials"),
            position,
        );
    }
}

/// MySQL and MariaDB system variables that hold paths, key material or credentials.
const SENSITIVE_VARIABLES: &[&str] = &[
    "datadir",
    "basedir",
    "plugin_dir",
    "plugin_maturity",
    "secure_file_priv",
    "tmpdir",
    "slave_load_tmpdir",
    "replica_load_tmpdir",
    "general_log_file",
    "slow_query_log_file",
    "log_error",
    "log_bin",
    "log_bin_basename",
    "log_bin_index",
    "log_basename",
    "pid_file",
    "socket",
    "ssl_key",
    "ssl_cert",
    "ssl_ca",
    "ssl_capath",
    "ssl_crl",
    "ssl_crlpath",
    "ssl_cipher",
    "ssl_passphrase",
    "innodb_data_home_dir",
    "innodb_log_group_home_dir",
    "innodb_undo_directory",
    "innodb_tmpdir",
    "aria_log_dir_path",
    "character_sets_dir",
    "lc_messages_dir",
    "init_file",
    "init_connect",
    "init_slave",
    "relay_log",
    "relay_log_basename",
    "relay_log_index",
    "relay_log_info_file",
    "master_info_file",
    "caching_sha2_password_private_key_path",
    "caching_sha2_password_public_key_path",
    "sha256_password_private_key_path",
    "sha256_password_public_key_path",
    "keyring_file_data",
    "file_key_management_filename",
    "file_key_management_filekey",
    "wsrep_sst_auth",
    "wsrep_provider",
    "wsrep_provider_options",
    "wsrep_node_address",
    "wsrep_cluster_address",
    "server_audit_file_path",
    "hostname",
    "report_host",
    "report_password",
    "report_user",
];

/// Words whose presence in a variable name makes it sensitive (paths, keys, credentials).
const SENSITIVE_WORDS: &[&str] = &[
    "dir",
    "file",
    "path",
    "key",
    "ssl",
    "tls",
    "password",
    "passwd",
    "secret",
    "socket",
    "auth",
    "basename",
    "log_bin",
    "relay_log",
    "wsrep",
    "host",
    "user",
];

fn is_sensitive_variable(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SENSITIVE_VARIABLES.contains(&n.as_str()) || SENSITIVE_WORDS.iter().any(|w| n.contains(w))
}

/// Whether a `SHOW VARIABLES LIKE` pattern could list a sensitive variable: it matches a
/// listed one, or its literal text (wildcards removed) contains a sensitive word, or it is
/// all wildcards.
pub(crate) fn like_matches_sensitive(pattern: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    if SENSITIVE_VARIABLES.iter().any(|v| like(&p, v)) {
        return true;
    }
    // The literal pieces between wildcards; a sensitive word in any piece, or a wildcard
    // that could complete one (`%` anywhere), is enough to refuse when a word is close.
    let mut literal = String::new();
    let mut wild = false;
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => literal.extend(chars.next()),
            '%' | '_' => {
                wild = true;
                literal.push(' ');
            }
            c => literal.push(c),
        }
    }
    if SENSITIVE_WORDS.iter().any(|w| literal.contains(w)) {
        return true;
    }
    // A `%` can supply any sensitive word: refuse it unless a literal piece pins the name
    // to a known-harmless prefix family.
    wild && p.contains('%') && !HARMLESS_PREFIXES.iter().any(|h| p.starts_with(h))
}

/// Prefixes a `%` pattern may start with: variable families that hold no paths or keys.
const HARMLESS_PREFIXES: &[&str] = &[
    "max\\_",
    "max_",
    "innodb\\_buffer",
    "innodb_buffer",
    "character\\_set",
    "character_set",
    "collation",
    "sql\\_mode",
    "sql_mode",
    "version",
    "time\\_zone",
    "time_zone",
    "lower\\_case",
    "lower_case",
    "autocommit",
    "wait\\_timeout",
    "wait_timeout",
    "net\\_",
    "net_",
    "query\\_cache",
    "query_cache",
    "table\\_open",
    "table_open",
    "thread\\_",
    "thread_",
];

/// SQL `LIKE` with `%`, `_` and MySQL's default `\` escape.
pub(crate) fn like(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'%', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((b'_', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((b'\\', rest)) if !rest.is_empty() => {
                t.first() == rest.first() && go(&rest[1..], &t[1..])
            }
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Why a table is refused on MySQL whatever the configuration says, if it is.
pub(crate) fn sensitive_table(schema: Option<&str>, name: &str) -> Option<&'static str> {
    let schema = schema?.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    match schema.as_str() {
        "performance_schema" => {
            Some("performance_schema holds other sessions' SQL text and the server's settings")
        }
        "sys" => Some("the sys schema shows other sessions' SQL text and the server's settings"),
        "mysql" => Some(
            "the mysql schema holds credentials, routine bodies and the general and slow query logs",
        ),
        "information_schema" => match name.as_str() {
            "global_variables" | "session_variables" | "system_variables" => {
                Some("it lists every server setting, including paths and key files")
            }
            "processlist" | "innodb_trx" | "innodb_locks" | "innodb_lock_waits"
            | "metadata_lock_info" | "user_variables" => {
                Some("it shows other sessions and the SQL they run")
            }
            _ => None,
        },
        _ => None,
    }
}

/// `SHOW TABLE STATUS [FROM|IN db]`, which the parser reads as words.
pub(crate) fn is_show_table_status(words: &[Ident]) -> bool {
    let w: Vec<String> = words.iter().map(|i| i.value.to_ascii_lowercase()).collect();
    matches!(
        w.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
        ["table", "status"] | ["table", "status", "from" | "in", _]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_follows_mysql_escapes() {
        assert!(like("plugin\\_dir", "plugin_dir"));
        assert!(!like("plugin\\_dir", "pluginxdir"));
        assert!(like("plugin_dir", "pluginxdir"));
        assert!(like("%dir", "datadir"));
    }

    #[test]
    fn show_variables_patterns() {
        for p in [
            "plugin\\_dir",
            "plugin_dir",
            "%",
            "%dir%",
            "d_tadir",
            "ssl%",
            "%\\_file",
            "general%",
            "wsrep%",
            "innodb_data_home_%",
        ] {
            assert!(like_matches_sensitive(p), "{p}");
        }
        for p in [
            "max_connections",
            "version",
            "sql\\_mode",
            "innodb_buffer_pool_size",
            "max\\_%",
            "collation%",
        ] {
            assert!(!like_matches_sensitive(p), "{p}");
        }
    }
}
