//! The one table of function rules: which functions are refused and why, and which are
//! known to be harmless. Anything in neither list is *unknown*: the engine reports it and
//! the gateway asks the database (PostgreSQL `pg_proc.provolatile`) before running.
//!
//! Invariants:
//! - Deny rules match by name in any schema (an extension such as `dblink` may live in any
//!   schema), except `schema.*` rules, which match a whole schema (`cron.*`).
//! - PostgreSQL names are compared exactly as the parser returns them (unquoted names are
//!   folded to lower case by the parser; `"PG_SLEEP"` is a different function, unknown
//!   here, and the database will say it does not exist). MySQL and SQLite names are folded.
//! - A harmless entry applies only to an unqualified name or one in the dialect's catalog
//!   schema (`pg_catalog`), so a user function named `lower` in another schema is unknown.

use std::collections::{HashMap, HashSet};

use crate::verdict::{Dialect, FunctionRef, Rule};

/// Which dialects a rule applies to.
#[derive(Clone, Copy)]
struct On(u8);
const PG: On = On(1);
const MY: On = On(2);
const LITE: On = On(4);
const ALL: On = On(7);

impl On {
    fn has(self, d: Dialect) -> bool {
        let bit = match d {
            Dialect::Postgres => 1,
            Dialect::Mysql => 2,
            Dialect::Sqlite => 4,
        };
        self.0 & bit != 0
    }
}

/// One deny rule: a name (`name`, `prefix*` or `schema.*`), where it applies, the rule that
/// fires and a short reason.
struct DenyRule {
    pattern: &'static str,
    on: On,
    rule: Rule,
    reason: &'static str,
}

const fn deny(pattern: &'static str, on: On, rule: Rule, reason: &'static str) -> DenyRule {
    DenyRule {
        pattern,
        on,
        rule,
        reason,
    }
}

use Rule::*;

/// The deny table. Keep one line per function family, with the reason a model will read.
static DENY: &[DenyRule] = &[
    // Sleeping and busy loops: hold a connection and a snapshot for as long as asked.
    deny(
        "pg_sleep*",
        PG,
        FunctionSleep,
        "sleeps, holding a connection",
    ),
    deny("sleep", MY, FunctionSleep, "sleeps, holding a connection"),
    deny(
        "benchmark",
        MY,
        FunctionSleep,
        "busy-loops an expression, burning CPU",
    ),
    // Files and programs on the database server.
    deny(
        "pg_read_file",
        PG,
        FunctionFileAccess,
        "reads files on the database server",
    ),
    deny(
        "pg_read_binary_file",
        PG,
        FunctionFileAccess,
        "reads files on the database server",
    ),
    deny(
        "pg_ls_*",
        PG,
        FunctionFileAccess,
        "lists directories on the database server",
    ),
    deny(
        "pg_stat_file",
        PG,
        FunctionFileAccess,
        "inspects files on the database server",
    ),
    deny(
        "pg_file_*",
        PG,
        FunctionFileAccess,
        "reads or writes files on the database server (adminpack)",
    ),
    deny(
        "pg_logdir_ls",
        PG,
        FunctionFileAccess,
        "lists the server's log directory",
    ),
    deny(
        "pg_current_logfile",
        PG,
        FunctionFileAccess,
        "reveals server file paths",
    ),
    deny(
        "lo_*",
        PG,
        FunctionFileAccess,
        "large objects: imports, exports and writes server files and objects",
    ),
    deny("loread", PG, FunctionFileAccess, "reads large objects"),
    deny("lowrite", PG, FunctionFileAccess, "writes large objects"),
    deny(
        "load_file",
        MY,
        FunctionFileAccess,
        "reads files on the database server",
    ),
    deny(
        "readfile",
        LITE,
        FunctionFileAccess,
        "reads files on the host",
    ),
    deny(
        "writefile",
        LITE,
        FunctionFileAccess,
        "writes files on the host",
    ),
    deny(
        "fsdir",
        LITE,
        FunctionFileAccess,
        "lists directories on the host",
    ),
    deny("edit", LITE, FunctionFileAccess, "starts an editor process"),
    deny(
        "load_extension",
        LITE,
        FunctionExtension,
        "loads native code into the database process",
    ),
    // Configuration.
    deny(
        "set_config",
        PG,
        FunctionConfig,
        "changes configuration (could turn read-only off)",
    ),
    deny(
        "pg_reload_conf",
        PG,
        FunctionConfig,
        "reloads the server configuration",
    ),
    // Sequences: writes that survive a rollback.
    deny(
        "nextval",
        ALL,
        FunctionSequence,
        "advances a sequence, a write no rollback undoes",
    ),
    deny(
        "setval",
        ALL,
        FunctionSequence,
        "sets a sequence, a write no rollback undoes",
    ),
    // Locks that can outlive the transaction or block others.
    deny(
        "pg_advisory_*",
        PG,
        FunctionAdvisoryLock,
        "takes or releases advisory locks",
    ),
    deny(
        "pg_try_advisory_*",
        PG,
        FunctionAdvisoryLock,
        "takes advisory locks",
    ),
    deny(
        "get_lock",
        MY,
        FunctionAdvisoryLock,
        "takes a named lock held past the query",
    ),
    deny(
        "release_lock",
        MY,
        FunctionAdvisoryLock,
        "releases named locks",
    ),
    deny(
        "release_all_locks",
        MY,
        FunctionAdvisoryLock,
        "releases named locks",
    ),
    // Other backends and the server itself.
    deny(
        "pg_terminate_backend",
        PG,
        FunctionBackendControl,
        "kills other sessions",
    ),
    deny(
        "pg_cancel_backend",
        PG,
        FunctionBackendControl,
        "cancels other sessions' queries",
    ),
    deny(
        "pg_signal_backend",
        PG,
        FunctionBackendControl,
        "signals other sessions",
    ),
    deny(
        "pg_switch_wal",
        PG,
        FunctionBackendControl,
        "forces a WAL switch",
    ),
    deny(
        "pg_switch_xlog",
        PG,
        FunctionBackendControl,
        "forces a WAL switch",
    ),
    deny(
        "pg_rotate_logfile*",
        PG,
        FunctionBackendControl,
        "rotates the server log",
    ),
    deny(
        "pg_promote",
        PG,
        FunctionBackendControl,
        "promotes a standby",
    ),
    deny(
        "pg_create_restore_point",
        PG,
        FunctionBackendControl,
        "writes a WAL restore point",
    ),
    deny(
        "pg_backup_*",
        PG,
        FunctionBackendControl,
        "starts or stops a backup",
    ),
    deny(
        "pg_start_backup",
        PG,
        FunctionBackendControl,
        "starts a backup",
    ),
    deny(
        "pg_stop_backup",
        PG,
        FunctionBackendControl,
        "stops a backup",
    ),
    deny(
        "pg_wal_replay_*",
        PG,
        FunctionBackendControl,
        "pauses or resumes recovery",
    ),
    deny(
        "pg_log_backend_memory_contexts",
        PG,
        FunctionBackendControl,
        "makes another backend write to the log",
    ),
    deny(
        "pg_log_standby_snapshot",
        PG,
        FunctionBackendControl,
        "writes WAL",
    ),
    deny(
        "pg_prewarm",
        PG,
        FunctionBackendControl,
        "loads relations into the buffer cache",
    ),
    deny(
        "master_pos_wait",
        MY,
        FunctionBackendControl,
        "waits on replication",
    ),
    deny(
        "source_pos_wait",
        MY,
        FunctionBackendControl,
        "waits on replication",
    ),
    deny(
        "master_gtid_wait",
        MY,
        FunctionBackendControl,
        "waits on replication",
    ),
    deny(
        "wait_for_executed_gtid_set",
        MY,
        FunctionBackendControl,
        "waits on replication",
    ),
    deny(
        "wait_until_sql_thread_after_gtids",
        MY,
        FunctionBackendControl,
        "waits on replication",
    ),
    deny(
        "sys_exec",
        MY,
        FunctionBackendControl,
        "runs a shell command (UDF)",
    ),
    deny(
        "sys_eval",
        MY,
        FunctionBackendControl,
        "runs a shell command (UDF)",
    ),
    // Notifications.
    deny(
        "pg_notify",
        PG,
        FunctionNotify,
        "sends a notification to other sessions",
    ),
    // Remote access.
    deny(
        "dblink*",
        PG,
        FunctionRemote,
        "connects to another database",
    ),
    // Replication slots and origins.
    deny(
        "pg_create_*_replication_slot",
        PG,
        FunctionReplication,
        "creates a replication slot",
    ),
    deny(
        "pg_copy_*_replication_slot",
        PG,
        FunctionReplication,
        "copies a replication slot",
    ),
    deny(
        "pg_drop_replication_slot",
        PG,
        FunctionReplication,
        "drops a replication slot",
    ),
    deny(
        "pg_replication_slot_advance",
        PG,
        FunctionReplication,
        "advances a replication slot",
    ),
    deny(
        "pg_logical_slot_*",
        PG,
        FunctionReplication,
        "consumes or peeks a logical slot",
    ),
    deny(
        "pg_logical_emit_message",
        PG,
        FunctionReplication,
        "writes a WAL message",
    ),
    deny(
        "pg_replication_origin_*",
        PG,
        FunctionReplication,
        "changes replication origins",
    ),
    // Statistics resets.
    deny(
        "pg_stat_reset*",
        PG,
        FunctionStatsReset,
        "resets statistics",
    ),
    deny(
        "pg_stat_statements_reset",
        PG,
        FunctionStatsReset,
        "resets statistics",
    ),
    // Writes that a read-only transaction does not stop.
    deny(
        "gin_clean_pending_list",
        PG,
        FunctionWrites,
        "writes index pages despite a read-only transaction",
    ),
    deny(
        "brin_summarize_*",
        PG,
        FunctionWrites,
        "writes index pages despite a read-only transaction",
    ),
    deny(
        "brin_desummarize_range",
        PG,
        FunctionWrites,
        "writes index pages despite a read-only transaction",
    ),
    deny(
        "pg_import_system_collations",
        PG,
        FunctionWrites,
        "writes the catalog",
    ),
    deny(
        "pg_truncate_visibility_map",
        PG,
        FunctionWrites,
        "writes the visibility map",
    ),
    deny(
        "txid_current",
        PG,
        FunctionWrites,
        "assigns a transaction id",
    ),
    deny(
        "pg_current_xact_id",
        PG,
        FunctionWrites,
        "assigns a transaction id",
    ),
    // Job schedulers.
    deny(
        "cron.*",
        PG,
        FunctionScheduler,
        "schedules jobs that run outside this transaction",
    ),
    deny(
        "schedule",
        PG,
        FunctionScheduler,
        "schedules jobs (pg_cron)",
    ),
    deny(
        "schedule_in_database",
        PG,
        FunctionScheduler,
        "schedules jobs (pg_cron)",
    ),
    // SQL passed as text: a query the policy never sees.
    deny(
        "query_to_xml*",
        PG,
        FunctionSqlText,
        "runs SQL passed as a string",
    ),
    deny(
        "query_to_xmlschema",
        PG,
        FunctionSqlText,
        "runs SQL passed as a string",
    ),
    deny(
        "table_to_xml*",
        PG,
        FunctionSqlText,
        "reads a table named in a string, out of the policy's sight",
    ),
    deny(
        "table_to_xmlschema",
        PG,
        FunctionSqlText,
        "reads a table named in a string",
    ),
    deny(
        "cursor_to_xml*",
        PG,
        FunctionSqlText,
        "reads a cursor the policy never saw",
    ),
    deny(
        "schema_to_xml*",
        PG,
        FunctionSqlText,
        "reads a whole schema out of the policy's sight",
    ),
    deny(
        "database_to_xml*",
        PG,
        FunctionSqlText,
        "reads a whole database out of the policy's sight",
    ),
    deny(
        "ts_stat",
        PG,
        FunctionSqlText,
        "runs SQL passed as a string",
    ),
    deny(
        "ts_rewrite",
        PG,
        FunctionSqlText,
        "may run SQL passed as a string",
    ),
    deny(
        "xpath_table",
        PG,
        FunctionSqlText,
        "runs SQL passed as a string (xml2)",
    ),
    deny(
        "crosstab*",
        PG,
        FunctionSqlText,
        "runs SQL passed as a string (tablefunc)",
    ),
    deny(
        "connectby",
        PG,
        FunctionSqlText,
        "reads a table named in a string (tablefunc)",
    ),
    deny(
        "pg_config",
        PG,
        FunctionFileAccess,
        "reveals server installation paths",
    ),
    // Other sessions' SQL text and the server's settings, paths and secrets.
    deny(
        "pg_stat_get_activity",
        PG,
        FunctionOtherSessions,
        "returns other sessions' SQL text",
    ),
    deny(
        "pg_stat_get_backend_activity",
        PG,
        FunctionOtherSessions,
        "returns another session's SQL text",
    ),
    deny(
        "pg_stat_statements",
        PG,
        FunctionOtherSessions,
        "returns other sessions' SQL text",
    ),
    deny(
        "pg_show_all_settings",
        PG,
        ShowSensitive,
        "lists every server setting, paths and key files included",
    ),
    deny(
        "pg_show_all_file_settings",
        PG,
        ShowSensitive,
        "reads the server's configuration files",
    ),
    deny(
        "pg_hba_file_rules",
        PG,
        ShowSensitive,
        "reads the server's authentication configuration",
    ),
    deny(
        "pg_ident_file_mappings",
        PG,
        ShowSensitive,
        "reads the server's authentication configuration",
    ),
    deny(
        "fts3_tokenizer",
        LITE,
        FunctionExtension,
        "can register native code pointers",
    ),
];

/// Functions known to be harmless (no writes, no side effects beyond the result), per
/// dialect. Volatile-but-harmless builtins (`random`, `clock_timestamp`) belong here so the
/// database check does not refuse them.
static SAFE_COMMON: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "bit_and",
    "bit_or",
    "bit_xor",
    "group_concat",
    // window
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // conditional
    "coalesce",
    "nullif",
    "ifnull",
    "greatest",
    "least",
    "if",
    "iif",
    // strings
    "lower",
    "upper",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "substr",
    "substring",
    "trim",
    "ltrim",
    "rtrim",
    "btrim",
    "replace",
    "concat",
    "concat_ws",
    "left",
    "right",
    "reverse",
    "position",
    "strpos",
    "instr",
    "locate",
    "initcap",
    "ascii",
    "chr",
    "char",
    "format",
    "printf",
    "quote",
    "hex",
    "unhex",
    "md5",
    "sha1",
    "sha2",
    "soundex",
    "split_part",
    "translate",
    "regexp_replace",
    "regexp_matches",
    "regexp_match",
    "regexp_like",
    "regexp_substr",
    "regexp_instr",
    "regexp_count",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "to_hex",
    "unicode",
    "glob",
    "like",
    "lcase",
    "ucase",
    "mid",
    "field",
    "find_in_set",
    "elt",
    "insert",
    "starts_with",
    "string_agg",
    "array_agg",
    "repeat",
    "lpad",
    "rpad",
    "space",
    // numbers
    "abs",
    "ceil",
    "ceiling",
    "floor",
    "round",
    "trunc",
    "truncate",
    "mod",
    "power",
    "pow",
    "sqrt",
    "exp",
    "ln",
    "log",
    "log10",
    "log2",
    "sign",
    "pi",
    "degrees",
    "radians",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "cot",
    "random",
    "rand",
    "div",
    "cbrt",
    "width_bucket",
    "gcd",
    "lcm",
    "factorial",
    "conv",
    "bin",
    "oct",
    "crc32",
    // dates and times
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "date",
    "time",
    "datetime",
    "julianday",
    "strftime",
    "unixepoch",
    "date_trunc",
    "date_part",
    "extract",
    "age",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "make_interval",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "date_bin",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "isfinite",
    "date_format",
    "date_add",
    "date_sub",
    "datediff",
    "timestampdiff",
    "timestampadd",
    "year",
    "month",
    "day",
    "dayofweek",
    "dayofmonth",
    "dayofyear",
    "hour",
    "minute",
    "second",
    "week",
    "weekday",
    "quarter",
    "monthname",
    "dayname",
    "last_day",
    "from_unixtime",
    "unix_timestamp",
    "str_to_date",
    "curdate",
    "curtime",
    "sysdate",
    "utc_timestamp",
    "utc_date",
    "adddate",
    "subdate",
    "addtime",
    "subtime",
    "timediff",
    "yearweek",
    "from_days",
    "to_days",
    "makedate",
    "period_add",
    "period_diff",
    "convert_tz",
    "time_format",
    "sec_to_time",
    "time_to_sec",
    // JSON
    "json_extract",
    "json_object",
    "json_array",
    "json_arrayagg",
    "json_objectagg",
    "json_group_array",
    "json_group_object",
    "json_valid",
    "json_type",
    "json_length",
    "json_keys",
    "json_contains",
    "json_unquote",
    "json_quote",
    "json_each",
    "json_tree",
    "json_array_length",
    "json",
    "jsonb",
    "json_agg",
    "jsonb_agg",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "json_object_keys",
    "jsonb_object_keys",
    "jsonb_each",
    "jsonb_each_text",
    "json_each_text",
    "jsonb_array_elements",
    "json_array_elements",
    "jsonb_array_elements_text",
    "json_array_elements_text",
    "jsonb_typeof",
    "json_typeof",
    "jsonb_pretty",
    "jsonb_path_query",
    "jsonb_path_exists",
    "jsonb_path_match",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "to_json",
    "to_jsonb",
    "row_to_json",
    "array_to_json",
    "jsonb_set",
    "jsonb_insert",
    "jsonb_strip_nulls",
    "json_strip_nulls",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "json_extract_path",
    "json_extract_path_text",
    "jsonb_object_agg",
    "json_object_agg",
    "jsonb_array_length",
    "json_set",
    "json_insert",
    "json_replace",
    "json_remove",
    "json_patch",
    "json_search",
    "json_depth",
    "json_pretty",
    "json_merge_patch",
    "json_merge_preserve",
    "json_value",
    "json_contains_path",
    "json_overlaps",
    "json_table",
    "jsonb_to_record",
    "jsonb_to_recordset",
    "json_to_record",
    "json_to_recordset",
    "json_populate_record",
    "jsonb_populate_record",
    // type conversion and misc
    "cast",
    "convert",
    "typeof",
    "pg_typeof",
    "version",
    "current_user",
    "session_user",
    "current_schema",
    "current_schemas",
    "current_database",
    "database",
    "schema",
    "user",
    "uuid",
    "gen_random_uuid",
    "uuid_generate_v4",
    "inet_client_addr",
    "current_setting",
    "sqlite_version",
    "changes",
    "total_changes",
    "last_insert_rowid",
    "total",
    "likelihood",
    "likely",
    "unlikely",
    "zeroblob",
    "randomblob",
    "generate_series",
    "unnest",
    "array_length",
    "array_upper",
    "array_lower",
    "array_position",
    "array_positions",
    "array_remove",
    "array_replace",
    "array_append",
    "array_prepend",
    "array_cat",
    "array_to_string",
    "string_to_array",
    "array_dims",
    "array_ndims",
    "cardinality",
    "bool_and",
    "bool_or",
    "every",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_slope",
    "regr_intercept",
    "regr_count",
    "regr_r2",
    "regr_avgx",
    "regr_avgy",
    "encode",
    "decode",
    "digest",
    "to_base64",
    "from_base64",
    "inet_aton",
    "inet_ntoa",
    "inet6_aton",
    "inet6_ntoa",
    "host",
    "masklink",
    "netmask",
    "network",
    "broadcast",
    "family",
    "abbrev",
    "text",
    "num_nonnulls",
    "num_nulls",
    "nullif",
    "any_value",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "to_tsvector",
    "to_tsquery",
    "plainto_tsquery",
    "phraseto_tsquery",
    "websearch_to_tsquery",
    "ts_rank",
    "ts_rank_cd",
    "ts_headline",
    "similarity",
    "levenshtein",
    "xmlelement",
    "xmlforest",
    "xmlagg",
    "xmlconcat",
    "xmlparse",
    "xmlserialize",
    "xpath",
    "xpath_exists",
    "xmlexists",
    "format_type",
    "obj_description",
    "col_description",
    "shobj_description",
    "pg_get_viewdef",
    "pg_get_indexdef",
    "pg_get_constraintdef",
    "pg_get_expr",
    "pg_get_functiondef",
    "pg_get_triggerdef",
    "pg_get_userbyid",
    "pg_get_serial_sequence",
    "pg_get_keywords",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_database_size",
    "pg_size_pretty",
    "pg_size_bytes",
    "pg_column_size",
    "pg_backend_pid",
    "pg_postmaster_start_time",
    "pg_is_in_recovery",
    "has_table_privilege",
    "has_column_privilege",
    "has_schema_privilege",
    "has_database_privilege",
    "has_function_privilege",
    "has_any_column_privilege",
    "pg_has_role",
    "to_regclass",
    "to_regproc",
    "to_regtype",
    "to_regnamespace",
    "pg_table_is_visible",
    "pg_encoding_to_char",
    "pg_get_partkeydef",
    "row",
    "currval",
    "lastval",
    "connection_id",
    "found_rows",
    "row_count",
    "charset",
    "collation",
    "last_insert_id",
    "uuid_short",
    "is_free_lock",
    "is_used_lock",
    "isnull",
    "st_astext",
    "inet_server_addr",
    "inet_server_port",
    "pg_client_encoding",
    "char_length",
    "overlay",
    "array_fill",
    "string_to_table",
    "left",
    "bool",
    "int",
    "int4",
    "int8",
    "float8",
    "numeric",
    "varchar",
    "array_sort",
    "array_reverse",
    "lower_inc",
    "upper_inc",
    "lower_inf",
    "upper_inf",
    "isempty",
    "range_merge",
    "daterange",
    "tsrange",
    "tstzrange",
    "int4range",
    "int8range",
    "numrange",
    "sign",
];

/// PostgreSQL diagnostics a DBA expects that the catalog marks volatile (they read the
/// server's state and change nothing), vouched for here so the volatility check does not
/// refuse them. Each still runs only if the database resolves the name to its builtin.
static SAFE_PG: &[&str] = &[
    "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids",
    "pg_current_wal_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_flush_lsn",
    "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_wal_lsn_diff",
    "pg_walfile_name",
    "pg_conf_load_time",
    "pg_current_snapshot",
    "pg_snapshot_xmin",
    "pg_snapshot_xmax",
    "txid_current_snapshot",
    "pg_xact_status",
    "pg_stat_get_numscans",
    "pg_relation_filenode",
    "pg_relation_is_publishable",
    "pg_get_wal_replay_pause_state",
    "pg_is_wal_replay_paused",
    "pg_jit_available",
    "pg_database_collation_actual_version",
    "pg_collation_actual_version",
    "pg_tablespace_size",
    "pg_get_backend_memory_contexts",
    "pg_stat_get_xact_numscans",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "clock_timestamp",
    "pg_notification_queue_usage",
    "pg_trigger_depth",
    "pg_listening_channels",
];

/// Whether the dialect compares function names case-insensitively.
pub(crate) fn folds_case(dialect: Dialect) -> bool {
    !matches!(dialect, Dialect::Postgres)
}

/// What the table says about one function.
pub(crate) enum Classification {
    /// A deny rule fired.
    Denied(Rule, &'static str),
    /// Known to be harmless.
    Harmless,
    /// Not in the table: the gateway must ask the database.
    Unknown,
}

fn matches_pattern(pattern: &str, f: &FunctionRef, fold: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if fold {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    if let Some(schema) = pattern.strip_suffix(".*") {
        return f.schema.as_deref().is_some_and(|s| eq(s, schema));
    }
    // `pg_create_*_replication_slot`: one `*` anywhere in the name.
    match pattern.split_once('*') {
        None => eq(&f.name, pattern),
        Some((head, tail)) => {
            let n = f.name.as_str();
            n.len() >= head.len() + tail.len()
                && n.is_char_boundary(head.len())
                && n.is_char_boundary(n.len() - tail.len())
                && eq(&n[..head.len()], head)
                && eq(&n[n.len() - tail.len()..], tail)
        }
    }
}

/// The rules table indexed for lookup: exact names in hash maps, wildcard patterns in a
/// short list. Built once per [`crate::Policy`].
#[derive(Debug, Clone)]
pub(crate) struct FunctionTable {
    exact: HashMap<&'static str, Vec<&'static DenyRule>>,
    wildcard: Vec<&'static DenyRule>,
    safe: HashSet<&'static str>,
}

impl std::fmt::Debug for DenyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.pattern)
    }
}

impl FunctionTable {
    pub(crate) fn build() -> FunctionTable {
        let mut exact: HashMap<&'static str, Vec<&'static DenyRule>> = HashMap::new();
        let mut wildcard = Vec::new();
        for rule in DENY {
            if rule.pattern.contains('*') {
                wildcard.push(rule);
            } else {
                exact.entry(rule.pattern).or_default().push(rule);
            }
        }
        FunctionTable {
            exact,
            wildcard,
            safe: SAFE_COMMON.iter().chain(SAFE_PG).copied().collect(),
        }
    }

    /// Classifies one function call. Folding dialects pass names already lower-cased.
    pub(crate) fn classify(&self, dialect: Dialect, f: &FunctionRef) -> Classification {
        let fold = folds_case(dialect);
        let lowered;
        let name = if fold && f.name.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = f.name.to_ascii_lowercase();
            lowered.as_str()
        } else {
            f.name.as_str()
        };
        if let Some(rules) = self.exact.get(name)
            && let Some(rule) = rules.iter().find(|r| r.on.has(dialect))
        {
            return Classification::Denied(rule.rule, rule.reason);
        }
        for rule in self.wildcard.iter().filter(|r| r.on.has(dialect)) {
            if matches_pattern(rule.pattern, f, fold) {
                return Classification::Denied(rule.rule, rule.reason);
            }
        }
        let catalog_or_none = match (&f.schema, dialect) {
            (None, _) => true,
            (Some(s), Dialect::Postgres) => s == "pg_catalog",
            (Some(_), _) => false,
        };
        // MySQL has its own list: a name harmless elsewhere may be a stored function there.
        let safe = match dialect {
            Dialect::Mysql => crate::mysql_builtins::is_native(name),
            _ => self.safe.contains(name),
        };
        if catalog_or_none && safe {
            return Classification::Harmless;
        }
        Classification::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(schema: Option<&str>, name: &str) -> FunctionRef {
        FunctionRef {
            schema: schema.map(String::from),
            name: name.to_string(),
        }
    }

    #[test]
    fn patterns_match_prefixes_infixes_and_schemas() {
        assert!(matches_pattern(
            "pg_sleep*",
            &f(None, "pg_sleep_for"),
            false
        ));
        assert!(matches_pattern(
            "pg_create_*_replication_slot",
            &f(None, "pg_create_logical_replication_slot"),
            false
        ));
        assert!(!matches_pattern(
            "pg_create_*_replication_slot",
            &f(None, "pg_create_restore_point"),
            false
        ));
        assert!(matches_pattern(
            "cron.*",
            &f(Some("cron"), "schedule"),
            false
        ));
        assert!(!matches_pattern("cron.*", &f(None, "schedule_x"), false));
        assert!(!matches_pattern("lo_*", &f(None, "lower"), false));
        assert!(matches_pattern("sleep", &f(None, "SLEEP"), true));
        assert!(!matches_pattern("pg_sleep*", &f(None, "PG_SLEEP"), false));
    }

    #[test]
    fn harmless_only_in_catalog_schema_for_postgres() {
        let t = FunctionTable::build();
        let classify = |d, f: &FunctionRef| t.classify(d, f);
        assert!(matches!(
            classify(Dialect::Postgres, &f(Some("pg_catalog"), "lower")),
            Classification::Harmless
        ));
        assert!(matches!(
            classify(Dialect::Postgres, &f(Some("public"), "lower")),
            Classification::Unknown
        ));
        assert!(matches!(
            classify(Dialect::Postgres, &f(Some("evil"), "pg_sleep")),
            Classification::Denied(Rule::FunctionSleep, _)
        ));
    }
}
