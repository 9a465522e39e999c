//! PostgreSQL: dbward decides on what the database resolved, not on names in the query text.
//!
//! Connected as the database owner (so only dbward stands in the way), with owner-defined
//! functions that terminate another session: same-named functions in two schemas, a
//! "harmless" name that is the owner's function, an owner-defined `=` operator, SQL/JSON
//! syntax that PostgreSQL 15 reads as a function call, a view, a domain check and a quoted
//! name with a dot. A victim session must survive every attempt. Then denied data reached
//! through partitions, inheritance children and views.

mod common;

use common::{PgFixture, client_config};
use dbward_gateway::{ConnectRequest, Gateway, GatewayConfig};
use secrecy::SecretString;
use sqlx::{Connection, Executor, PgConnection};

/// Owner code that terminates every session named `dbward_victim`: the side effect a
/// read-only transaction does not stop.
const ATTACK_FIXTURE: &str = r#"
CREATE SCHEMA util;
CREATE FUNCTION kill_victims() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dbward_victim';
  RETURN 1;
END $$;
CREATE FUNCTION public.kick(text) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 1 $$;
CREATE FUNCTION util.kick(text) RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT kill_victims() $$;
CREATE FUNCTION public.iif(bool, text, text) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT CASE WHEN kill_victims() = 1 THEN $2 ELSE $3 END $$;
CREATE FUNCTION public.json_scalar(text) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT kill_victims()::text $$;
CREATE FUNCTION "util.kick"() RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT kill_victims() $$;
CREATE VIEW public.kicking_view AS SELECT util.kick('v') AS k;
CREATE FUNCTION public.check_kill(text) RETURNS bool LANGUAGE sql IMMUTABLE
  AS $$ SELECT kill_victims() = 1 $$;
CREATE DOMAIN public.checked AS text CHECK (public.check_kill(VALUE));
CREATE FUNCTION public.kick(departments) RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT kill_victims() $$;
CREATE TABLE customers (id int PRIMARY KEY, name text, ssn text);
INSERT INTO customers VALUES (1, 'Ada', '111-11-1111'), (2, 'Bob', '222-22-2222');
CREATE VIEW public.customer_directory AS SELECT id, name, ssn FROM customers;
CREATE VIEW public.customer_names AS SELECT id, name FROM customers;
CREATE TABLE vip_customers (tier int) INHERITS (customers);
CREATE TABLE payroll (id int, amount int, year int) PARTITION BY LIST (year);
CREATE TABLE payroll_2024 PARTITION OF payroll FOR VALUES IN (2024);
INSERT INTO payroll VALUES (1, 5000, 2024);
CREATE VIEW public.pay_summary AS SELECT sum(amount) AS total FROM payroll;
CREATE VIEW public.nested_pay AS SELECT total FROM pay_summary;
CREATE FUNCTION public.owner_diff(a int, b int) RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
  BEGIN IF current_setting('application_name') = 'dbward' THEN PERFORM kill_victims(); END IF;
  RETURN a - b; END $$;
CREATE TYPE public.owner_range AS RANGE (subtype = int4, subtype_diff = public.owner_diff);
CREATE TABLE public.ranged (id int, r public.owner_range);
INSERT INTO public.ranged SELECT g, public.owner_range(g, g + 1 + g % 17)
  FROM generate_series(1, 2000) g;
ANALYZE public.ranged;
"#;

struct Setup {
    fx: PgFixture,
    gw: Gateway,
    id: String,
    victim: PgConnection,
}

async fn setup(config: GatewayConfig) -> Setup {
    setup_with(config, false).await
}

/// [`setup`], with dbward's catalog version installed by a superuser first when
/// `versioned` (`dbward setup-role --catalog-version`).
async fn setup_with(config: GatewayConfig, versioned: bool) -> Setup {
    let fx = PgFixture::new().await;
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    sqlx::raw_sql(ATTACK_FIXTURE)
        .execute(&mut owner)
        .await
        .expect("attack fixture");
    owner.close().await.ok();
    if versioned {
        common::pg_install_catalog_version(&fx.db).await;
    }
    let victim = PgConnection::connect(&format!("{}?application_name=dbward_victim", fx.url()))
        .await
        .expect("victim");
    let gw = Gateway::new(config);
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects")
        .id
        .to_string();
    Setup { fx, gw, id, victim }
}

fn denying_config() -> GatewayConfig {
    let mut c = client_config();
    c.policy.denied_tables = vec!["payroll".into()];
    c.policy.denied_columns = vec!["customers.ssn".into(), "accounts.ssn".into()];
    c
}

impl Setup {
    /// Refused with this rule, and the victim session is still alive.
    async fn refused(&mut self, sql: &str, rule: &str) {
        let e = self
            .gw
            .execute_query(&self.id, sql, &[], None)
            .await
            .expect_err(sql);
        assert_eq!(e.rule(), Some(rule), "{sql}: {e}");
        self.victim_alive(sql).await;
    }

    async fn victim_alive(&mut self, after: &str) {
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut self.victim)
            .await
            .unwrap_or_else(|e| panic!("the victim session died after `{after}`: {e}"));
        assert_eq!(one, 1);
    }

    /// The resolution counts (`common::pg_resolution_counts`): kept, stale, asked,
    /// rechecked.
    fn counts(&self) -> [u64; 4] {
        common::pg_resolution_counts(&self.gw)
    }

    /// How much each count grew since `before`.
    fn since(&self, before: [u64; 4]) -> [u64; 4] {
        let now = self.counts();
        [0, 1, 2, 3].map(|i| now[i] - before[i])
    }

    async fn runs(&self, sql: &str) -> dbward_gateway::backends::QueryResult {
        self.gw
            .execute_query(&self.id, sql, &[], None)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn done(self) {
        self.gw.close_connection(&self.id).await.expect("close");
        self.fx.drop().await;
    }
}

#[tokio::test]
async fn owner_code_runs_only_when_it_resolves_to_a_builtin_or_is_allowlisted() {
    let mut s = setup(client_config()).await;
    for (sql, rule) in [
        // Same name in two schemas: each call is judged on what it resolves to.
        (
            "SELECT public.kick('x'), util.kick('y')",
            "function.user_defined",
        ),
        ("SELECT util.kick('y')", "function.user_defined"),
        ("SELECT public.kick('x')", "function.user_defined"),
        // A name on the shared harmless list that is the owner's function here.
        ("SELECT iif(true, 'a', 'b')", "function.user_defined"),
        (
            "SELECT name FROM departments WHERE iif(true, 'a', 'b') = 'a'",
            "function.user_defined",
        ),
        // SQL/JSON syntax to the parser, a plain call to PostgreSQL 15.
        ("SELECT json_scalar('x')", "function.user_defined"),
        // A quoted name with a dot is its own function.
        (r#"SELECT "util.kick"()"#, "function.user_defined"),
        // Code that runs without a call in the text: a view, a domain check.
        ("SELECT * FROM kicking_view", "function.user_defined"),
        ("SELECT k FROM public.kicking_view", "function.user_defined"),
        ("SELECT 'a'::checked", "function.user_defined"),
        // A range's subtype difference, which the planner calls to estimate a condition
        // on the range from the column's statistics.
        (
            "SELECT count(*) FROM ranged WHERE r && '[10,20)'",
            "function.user_defined",
        ),
        (
            "SELECT count(*) FROM ranged WHERE r @> 15",
            "function.user_defined",
        ),
        // Field notation: `d.kick` is the call `kick(d)` when `d` has no column `kick`.
        ("SELECT d.kick FROM departments d", "function.user_defined"),
        (
            "SELECT (d).kick FROM departments d",
            "function.user_defined",
        ),
        (
            "SELECT CAST('a' AS public.checked)",
            "function.user_defined",
        ),
        // EXPLAIN plans (and folds immutable calls): resolved before it runs too.
        ("EXPLAIN SELECT public.kick('x')", "function.user_defined"),
        (
            "EXPLAIN ANALYZE SELECT util.kick('y')",
            "function.user_defined",
        ),
    ] {
        s.refused(sql, rule).await;
    }

    // Builtins still run, the comparison operators included.
    let r = s
        .runs("SELECT lower(name), count(*) FROM departments WHERE id IN (1, 2) GROUP BY 1 ORDER BY 1")
        .await;
    assert_eq!(r.row_count, 2);
    let r = s
        .runs("SELECT pg_catalog.upper('x'), now() IS NOT NULL")
        .await;
    assert_eq!(r.rows[0][0], serde_json::json!("X"));

    // Never stale: a function the owner creates after a call is resolved on the next.
    let e =
        s.gw.execute_query(&s.id, "SELECT lower(42)", &[], None)
            .await
            .expect_err("no lower(int) yet");
    assert_ne!(e.code(), "policy_refused", "{e}");
    let mut owner = PgConnection::connect(&s.fx.url()).await.expect("owner");
    owner
        .execute("CREATE FUNCTION public.lower(int) RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT kill_victims()::text $$")
        .await
        .expect("create lower(int)");
    owner.close().await.ok();
    s.refused("SELECT lower(42)", "function.user_defined").await;
    // The database picks among overloads by argument types, which the policy cannot know:
    // a name with a user-defined overload on the path is refused whatever the arguments.
    s.refused("SELECT lower('X')", "function.user_defined")
        .await;
    s.runs("SELECT upper('x')").await;

    // An owner-defined `=` operator: code with no function call in the text. Once it
    // exists, every comparison that could resolve to it is refused (the policy cannot
    // know the operand types; the database's candidates are judged).
    let mut owner = PgConnection::connect(&s.fx.url()).await.expect("owner");
    sqlx::raw_sql(
        "CREATE FUNCTION public.eq_kill(text, int) RETURNS bool LANGUAGE sql IMMUTABLE \
           AS $$ SELECT kill_victims() = 1 $$; \
         CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = int, FUNCTION = public.eq_kill);",
    )
    .execute(&mut owner)
    .await
    .expect("create operator");
    owner.close().await.ok();
    for sql in [
        "SELECT name = 1 FROM departments",
        "SELECT id FROM departments WHERE name IN (1, 2)",
        "SELECT id FROM departments WHERE name OPERATOR(public.=) 1",
        "SELECT CASE name WHEN 1 THEN 'x' END FROM departments",
        "SELECT id FROM departments WHERE name IS DISTINCT FROM 1",
        "SELECT nullif(name, 1) FROM departments",
        "SELECT d.id FROM departments d JOIN (SELECT 1 AS name) x USING (name)",
    ] {
        s.refused(sql, "function.user_defined").await;
    }
    // Ordering and grouping use operator classes, which only a superuser can create.
    let r = s
        .runs("SELECT name FROM departments GROUP BY name ORDER BY name")
        .await;
    assert_eq!(r.row_count, 3);
    s.done().await;
}

#[tokio::test]
async fn allowlisted_owner_functions_run_by_qualified_name() {
    let mut config = client_config();
    config.policy.allowed_functions = vec!["public.kick".into()];
    let mut s = setup(config).await;
    let r = s.runs("SELECT public.kick('x')").await;
    assert_eq!(r.rows[0][0], serde_json::json!(1));
    // The allowlist names `public.kick`, not `util.kick`.
    s.refused(
        "SELECT public.kick('x'), util.kick('y')",
        "function.user_defined",
    )
    .await;
    s.done().await;
}

/// An error raised inside owner code (here allowlisted functions that read a denied
/// column) reaches the client without its text, whatever the code put in it: a PL/pgSQL
/// `RAISE`, and a builtin error (a failed cast of the value) raised in a SQL function.
/// Builtin errors of the query itself keep theirs.
#[tokio::test]
async fn errors_raised_in_owner_code_keep_their_text_back() {
    let mut config = denying_config();
    config.policy.allowed_functions = vec!["public.blurt".into(), "public.cast_it".into()];
    let mut s = setup(config).await;
    let mut owner = PgConnection::connect(&s.fx.url()).await.expect("owner");
    sqlx::raw_sql(
        "CREATE FUNCTION public.blurt() RETURNS int LANGUAGE plpgsql AS $$
           DECLARE v text; BEGIN SELECT ssn INTO v FROM customers WHERE id = 1;
           RAISE EXCEPTION 'value: %', v; END $$;
         CREATE FUNCTION public.cast_it() RETURNS int LANGUAGE sql AS $$
           SELECT ssn::int FROM customers WHERE id = 1 $$;",
    )
    .execute(&mut owner)
    .await
    .expect("functions");
    owner.close().await.ok();
    for (sql, code) in [
        ("SELECT public.blurt()", "P0001"),
        ("SELECT public.cast_it()", "22P02"),
    ] {
        let e =
            s.gw.execute_query(&s.id, sql, &[], None)
                .await
                .expect_err(sql);
        let text = e.to_string();
        assert!(!text.contains("111-11"), "{sql}: {text}");
        assert!(
            text.contains("withheld") && text.contains(code),
            "{sql}: {text}"
        );
    }
    let e =
        s.gw.execute_query(&s.id, "SELECT 'abc'::int", &[], None)
            .await
            .expect_err("a bad cast");
    assert!(e.to_string().contains("\"abc\""), "{e}");
    s.victim_alive("the errors").await;
    s.done().await;
}

#[tokio::test]
async fn denied_data_stays_unreadable_through_partitions_children_and_views() {
    let mut s = setup(denying_config()).await;
    for (sql, rule) in [
        // A partition of a denied table, by its own name.
        ("SELECT * FROM payroll_2024", "table.denied"),
        ("SELECT amount FROM public.payroll_2024", "table.denied"),
        // A view over the denied table, and a view over that view.
        ("SELECT * FROM pay_summary", "table.denied"),
        ("SELECT total FROM nested_pay", "table.denied"),
        // A view that reads the denied column, whichever of its columns is asked for.
        ("SELECT id, name FROM customer_directory", "column.denied"),
        ("SELECT ssn FROM customer_directory", "column.denied"),
        // An inheritance child carries the parent's columns.
        ("SELECT ssn FROM vip_customers", "column.denied"),
        ("SELECT name FROM vip_customers", "column.denied"),
        // CTE shadowing in one scope, the real table in another.
        (
            "SELECT x.* FROM (WITH customers AS (SELECT 1 AS id) SELECT * FROM customers) x, customers",
            "column.denied",
        ),
        // Renamed by an alias column list.
        ("SELECT x FROM customers AS c(i, n, x)", "column.denied"),
        // Join oracles.
        (
            "SELECT c.name FROM customers c JOIN (SELECT '111-11-1111'::text AS ssn) g USING (ssn)",
            "column.denied",
        ),
        (
            "SELECT c.name FROM customers c NATURAL JOIN (SELECT '111-11-1111'::text AS ssn) g",
            "column.denied",
        ),
        // Statistics that sample the values.
        (
            "SELECT most_common_vals FROM pg_stats WHERE tablename = 'customers'",
            "column.denied",
        ),
        // Other sessions' SQL and the server's settings.
        ("SELECT query FROM pg_stat_activity", "column.denied"),
        (
            "SELECT * FROM pg_stat_get_activity(NULL)",
            "function.other_sessions",
        ),
        (
            "SELECT current_setting(lower('SSL_KEY_FILE'))",
            "show.sensitive",
        ),
        ("SELECT * FROM pg_settings", "table.denied"),
    ] {
        s.refused(sql, rule).await;
    }
    // What stays readable.
    let r = s
        .runs("SELECT id, name FROM customer_names ORDER BY id")
        .await;
    assert_eq!(r.row_count, 2);
    let r = s
        .runs("SELECT o.id, o.name FROM customers o WHERE EXISTS (SELECT * FROM customers c WHERE c.id = o.id)")
        .await;
    assert_eq!(r.row_count, 2);
    let r = s
        .runs("SELECT d.* FROM departments d JOIN customers c ON c.id = d.id")
        .await;
    assert_eq!(r.columns.len(), 3);
    let r = s
        .runs("SELECT pid, state, pg_blocking_pids(pid) FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        .await;
    assert_eq!(r.row_count, 1);
    s.done().await;
}

/// Owner code that runs with no name of it in the query: the planner folds immutable
/// functions in index expressions and predicates, check constraints (of the children it
/// expands to) and extended statistics; a cast to a domain checks the domains it is built
/// on and the domains of a composite's attributes; the JSON functions apply an owner's
/// cast to `json` to values of its type. And denied rows read through a parent: a denied
/// table attached as a partition, a table with a denied column as an inheritance child.
const PLANNED_FIXTURE: &str = r#"
CREATE FUNCTION imm_kill() RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT 1 $$;
CREATE TABLE idx_t (a int);
CREATE INDEX ON idx_t ((a + imm_kill()));
CREATE TABLE pred_t (a int); CREATE INDEX ON pred_t (a) WHERE imm_kill() = 1;
CREATE TABLE ce_p (a int); CREATE TABLE ce_c (CHECK (a > imm_kill())) INHERITS (ce_p);
CREATE TABLE st_t (a int, b int); CREATE STATISTICS st_s ON (imm_kill() + a), b FROM st_t;
-- Harmless while the index predicate is folded at CREATE INDEX; the owner's code from now on.
CREATE OR REPLACE FUNCTION imm_kill() RETURNS int IMMUTABLE LANGUAGE plpgsql
  AS $$ BEGIN PERFORM kill_victims(); RETURN 1; END $$;
CREATE FUNCTION chk(int) RETURNS bool LANGUAGE plpgsql
  AS $$ BEGIN PERFORM kill_victims(); RETURN true; END $$;
CREATE DOMAIN d1 AS int CHECK (chk(VALUE));
CREATE DOMAIN d2 AS d1;
CREATE TYPE comp_d AS (x d1);
CREATE TYPE feel AS ENUM ('x');
CREATE TABLE moods (m feel); INSERT INTO moods VALUES ('x');
CREATE FUNCTION mood_json(feel) RETURNS json LANGUAGE plpgsql
  AS $$ BEGIN PERFORM kill_victims(); RETURN '1'; END $$;
CREATE CAST (feel AS json) WITH FUNCTION mood_json(feel);
CREATE VIEW domain_view AS SELECT 1::d2 AS x;
CREATE TABLE dom_cols (x comp_d, arr d1[]);
CREATE VIEW json_view AS SELECT to_json(m) AS j FROM moods;
CREATE TABLE all_customers (id int, name text, ssn text);
ALTER TABLE customers INHERIT all_customers;
CREATE TABLE pay_all (id int, amount int, year int) PARTITION BY LIST (year);
ALTER TABLE pay_all ATTACH PARTITION payroll FOR VALUES IN (2024);
CREATE TABLE plain_t (a int); INSERT INTO plain_t VALUES (1);
CREATE TABLE accounts (id int, ssn text, ssn_copy text GENERATED ALWAYS AS (upper(ssn)) STORED);
INSERT INTO accounts (id, ssn) VALUES (1, '333-33-3333');
"#;

#[tokio::test]
async fn owner_code_the_planner_or_a_json_function_runs_and_rows_under_a_parent_stay_refused() {
    let mut s = setup(denying_config()).await;
    let mut owner = PgConnection::connect(&s.fx.url()).await.expect("owner");
    sqlx::raw_sql(PLANNED_FIXTURE)
        .execute(&mut owner)
        .await
        .expect("fixture");
    owner.close().await.ok();
    for (sql, rule) in [
        ("SELECT a FROM idx_t", "function.user_defined"),
        ("SELECT a FROM pred_t", "function.user_defined"),
        ("SELECT a FROM ce_p WHERE a > 5", "function.user_defined"),
        (
            "SELECT a FROM st_t WHERE a > 1 AND b > 1",
            "function.user_defined",
        ),
        ("SELECT 1::d2", "function.user_defined"),
        ("SELECT ROW(1)::comp_d", "function.user_defined"),
        (
            "SELECT * FROM json_populate_record(NULL::comp_d, '{\"x\": 1}')",
            "function.user_defined",
        ),
        ("SELECT to_json(m) FROM moods", "function.user_defined"),
        // A literal takes the type of the column it meets; a row is populated as its
        // table's type: no type named, the domain's check runs.
        (
            "SELECT COALESCE(arr, '{5}') FROM dom_cols",
            "function.user_defined",
        ),
        ("SELECT arr @> '{5}' FROM dom_cols", "function.user_defined"),
        (
            "SELECT jsonb_populate_record(t, '{\"arr\": [5]}') FROM dom_cols t",
            "function.user_defined",
        ),
        // The same in a view's body: the view names neither the check nor the cast.
        ("SELECT x FROM domain_view", "function.user_defined"),
        ("SELECT j FROM json_view", "function.user_defined"),
        (
            "SELECT row_to_json(t) FROM moods t",
            "function.user_defined",
        ),
        (
            "SELECT jsonb_build_object('m', m) FROM moods",
            "function.user_defined",
        ),
        // Denied rows under a readable parent.
        ("SELECT id, name FROM all_customers", "column.denied"),
        ("SELECT amount FROM pay_all", "table.denied"),
        ("SELECT count(*) FROM pay_all", "table.denied"),
        // A generated copy of a denied column, by its own name.
        ("SELECT ssn_copy FROM accounts", "column.denied"),
        ("SELECT id FROM accounts", "column.denied"),
    ] {
        s.refused(sql, rule).await;
    }
    // EXPLAIN plans the query: the planner would fold the index expression there too.
    let e =
        s.gw.explain_query(&s.id, "SELECT a FROM idx_t", false)
            .await
            .expect_err("explain of a table with owner code in an index");
    assert_eq!(e.rule(), Some("function.user_defined"), "{e}");
    s.victim_alive("explain_query").await;
    // What stays readable: the same types and tables without the owner code in the way.
    let r = s.runs("SELECT m::text FROM moods").await;
    assert_eq!(r.row_count, 1);
    let r = s.runs("SELECT a FROM plain_t").await;
    assert_eq!(r.row_count, 1);
    let r = s.runs("SELECT 1::int AS one").await;
    assert_eq!(r.row_count, 1);
    s.victim_alive("the readable queries").await;
    // With the copy denied too, the table's other columns are readable again, and the copy
    // is refused by name.
    let mut config = denying_config();
    config.policy.denied_columns = vec![
        "customers.ssn".into(),
        "accounts.ssn".into(),
        "accounts.ssn_copy".into(),
    ];
    let gw = Gateway::new(config);
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(s.fx.url())))
        .await
        .expect("connects")
        .id
        .to_string();
    let r = gw
        .execute_query(&id, "SELECT id FROM accounts", &[], None)
        .await
        .expect("the other columns");
    assert_eq!(r.row_count, 1);
    let e = gw
        .execute_query(&id, "SELECT ssn_copy FROM accounts", &[], None)
        .await
        .expect_err("the copy");
    assert_eq!(e.rule(), Some("column.denied"), "{e}");
    gw.close_connection(&id).await.expect("close");
    s.done().await;
}

/// The database layer under the policy: the posture check says what the serving role can
/// read of the denied data, and the SQL of `dbward setup-role --config` takes it away; the
/// backend alone (no policy) then gets a permission error for a denied column.
#[tokio::test]
async fn setup_role_grants_close_what_the_policy_denies_and_the_posture_says_so() {
    use dbward_gateway::backends::postgres::PgBackend;
    use dbward_gateway::backends::postgres::grants::{lookups, revoke_sql};
    use dbward_gateway::tools::security_posture::setup_role_sql;
    let config = denying_config();
    let s = setup(config.clone()).await;
    // As the owner: everything denied is readable, and the owner's functions executable.
    let p = s.gw.security_posture(&s.id).await.expect("posture");
    assert!(
        p.role
            .denied_readable
            .iter()
            .any(|d| d == "public.customers.ssn")
            && p.role.denied_readable.iter().any(|d| d == "public.payroll"),
        "{:?}",
        p.role.denied_readable
    );
    assert!(p.role.executable_user_functions.unwrap_or(0) > 0);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("only the policy keeps it")),
        "{:?}",
        p.warnings
    );

    // The operator runs what setup-role prints.
    let reader = common::unique("dbward_reader");
    let denied = lookups(&config.policy.denied_tables, &config.policy.denied_columns);
    let sql = format!(
        "{}{}",
        setup_role_sql(dbward_gateway::DbKind::Postgresql, &reader, &s.fx.db),
        revoke_sql(&reader, &denied)
    );
    let admin_url = format!("postgresql://postgres@127.0.0.1:5432/{}", s.fx.db);
    let mut admin = PgConnection::connect(&admin_url).await.expect("admin");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin)
        .await
        .expect("setup-role SQL runs");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT {reader} TO {}",
        s.fx.role
    )))
    .execute(&mut admin)
    .await
    .expect("grant");

    // Served as the reader role: nothing denied is readable any more.
    let spec = || {
        let mut spec =
            dbward_gateway::ConnectSpec::from_url(&SecretString::from(s.fx.url())).expect("spec");
        spec.reader_role = Some(reader.clone());
        spec
    };
    let gw = Gateway::new(config.clone());
    let id = gw
        .connect(ConnectRequest::Params(Box::new(spec())))
        .await
        .expect("connect with reader role")
        .id
        .to_string();
    let p = gw.security_posture(&id).await.expect("posture");
    assert!(
        p.role.denied_readable.is_empty(),
        "{:?}",
        p.role.denied_readable
    );
    gw.close_connection(&id).await.expect("close");

    // The database layer alone (no policy): the column is refused by a GRANT.
    let backend = PgBackend::connect(&spec(), &GatewayConfig::default().limits)
        .await
        .expect("backend");
    let caps = dbward_gateway::backends::Caps::new(&GatewayConfig::default().limits, 10);
    let e = backend
        .execute("SELECT ssn FROM customers", &[], caps)
        .await
        .expect_err("column privilege");
    assert_eq!(e.code(), "permission_denied", "{e}");
    let e = backend
        .execute("SELECT amount FROM payroll_2024", &[], caps)
        .await
        .expect_err("table privilege");
    assert_eq!(e.code(), "permission_denied", "{e}");
    let r = backend
        .execute("SELECT name FROM customers ORDER BY id", &[], caps)
        .await
        .expect("allowed columns");
    assert_eq!(r.row_count, 2);
    backend.close().await;
    s.done().await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {reader}")))
        .execute(&mut common::pg_admin().await)
        .await;
}

/// Scope by allowlist: unqualified names are judged on the schema the database resolves
/// them to.
#[tokio::test]
async fn an_allowlist_is_judged_on_resolved_schemas() {
    let mut config = client_config();
    config.policy.allowed_schemas = vec!["util".into()];
    let mut s = setup(config).await;
    let mut owner = PgConnection::connect(&s.fx.url()).await.expect("owner");
    owner
        .execute("CREATE TABLE util.things (id int); INSERT INTO util.things VALUES (1), (2)")
        .await
        .expect("util.things");
    owner.close().await.ok();
    let r = s.runs("SELECT count(*) FROM util.things").await;
    assert_eq!(r.rows[0][0], serde_json::json!(2));
    // `departments` resolves to public.departments: outside the allowlist.
    s.refused("SELECT * FROM departments", "table.denied").await;
    s.refused("SELECT * FROM public.departments", "table.denied")
        .await;
    s.done().await;
}

/// The owner puts their schema before `pg_catalog` on the database's `search_path` and
/// defines `=`, `<>`, `>=` and `||` for the catalog's types: dbward's own statements (the
/// resolution, the catalog tools) must not run them; the client's queries that would are
/// refused. The victim session survives every call.
#[tokio::test]
async fn an_owner_search_path_cannot_hijack_dbwards_own_statements() {
    let fx = PgFixture::new().await;
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    sqlx::raw_sql(ATTACK_FIXTURE)
        .execute(&mut owner)
        .await
        .expect("attack fixture");
    // (Its own comparison qualified, or it would call itself through the operators below.)
    let mut hijack = String::from(
        "CREATE OR REPLACE FUNCTION kill_victims() RETURNS int LANGUAGE plpgsql VOLATILE AS $$ \
         BEGIN PERFORM pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
         WHERE application_name OPERATOR(pg_catalog.=) 'dbward_victim'::pg_catalog.text; \
         RETURN 1; END $$; ",
    );
    for (i, (op, l, r, real)) in [
        ("=", "oid", "oid", "pg_catalog.oideq($1, $2)"),
        ("=", "name", "name", "pg_catalog.nameeq($1, $2)"),
        ("=", "name", "text", "pg_catalog.nameeqtext($1, $2)"),
        ("=", "text", "text", "pg_catalog.texteq($1, $2)"),
        ("<>", "oid", "oid", "pg_catalog.oidne($1, $2)"),
        (">=", "oid", "oid", "pg_catalog.oidge($1, $2)"),
        ("||", "text", "text", "pg_catalog.textcat($1, $2)"),
        (
            ">=",
            "oid",
            "integer",
            "pg_catalog.oidge($1, $2::pg_catalog.oid)",
        ),
        (
            "=",
            "oid",
            "integer",
            "pg_catalog.oideq($1, $2::pg_catalog.oid)",
        ),
        (">", "smallint", "integer", "pg_catalog.int24gt($1, $2)"),
        (
            "=",
            "\"char\"",
            "text",
            "pg_catalog.texteq($1::pg_catalog.text, $2)",
        ),
    ]
    .iter()
    .enumerate()
    {
        let ret = if *op == "||" { "text" } else { "bool" };
        hijack.push_str(&format!(
            "CREATE FUNCTION public.hijack_{i}({l}, {r}) RETURNS {ret} LANGUAGE sql VOLATILE \
             AS $$ SELECT CASE WHEN kill_victims() OPERATOR(pg_catalog.>=) 0 THEN {real} END $$; \
             CREATE OPERATOR public.{op} (LEFTARG = {l}, RIGHTARG = {r}, FUNCTION = public.hijack_{i}); "
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "{hijack} ALTER DATABASE {} SET search_path = public, pg_catalog",
        fx.db
    )))
    .execute(&mut owner)
    .await
    .expect("hijack fixture");
    owner.close().await.ok();
    let mut victim = PgConnection::connect(&format!("{}?application_name=dbward_victim", fx.url()))
        .await
        .expect("victim");
    let gw = Gateway::new(client_config());
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects")
        .id
        .to_string();
    async fn alive(victim: &mut PgConnection, after: &str) {
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(victim)
            .await
            .unwrap_or_else(|e| panic!("the victim session died after {after}: {e}"));
        assert_eq!(one, 1);
    }
    // A query with nothing for the hijacked operators: runs, through the resolution.
    let r = gw
        .execute_query(&id, "SELECT count(*) FROM departments", &[], None)
        .await
        .expect("runs");
    assert!(r.rows[0][0].as_i64().is_some());
    alive(&mut victim, "a plain query").await;
    // A query whose own `=` on text would be the owner's: refused.
    let e = gw
        .execute_query(
            &id,
            "SELECT name FROM departments WHERE name = 'x'",
            &[],
            None,
        )
        .await
        .expect_err("the owner's = (text, text)");
    assert_eq!(e.rule(), Some("function.user_defined"), "{e}");
    alive(&mut victim, "a query using the hijacked =").await;
    // The catalog tools.
    gw.list_tables(&id, None).await.expect("list_tables");
    alive(&mut victim, "list_tables").await;
    gw.describe_table(&id, None, "departments")
        .await
        .expect("describe_table");
    alive(&mut victim, "describe_table").await;
    let _ = gw.get_table_stats(&id, None, "departments").await;
    alive(&mut victim, "get_table_stats").await;
    let _ = gw.search_tables(&id, "dep").await;
    alive(&mut victim, "search_tables").await;
    let _ = gw.security_posture(&id).await;
    alive(&mut victim, "security_posture").await;
    let _ = gw
        .explain_query(&id, "SELECT count(*) FROM departments", false)
        .await;
    alive(&mut victim, "explain_query").await;
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// A resolution answer is kept between calls (`kept::Cache`), and the query then runs
/// behind a guard instead of a fresh resolution. Every change the owner commits from
/// another session afterwards (a view redefined to call their code, a same-named function
/// put on the path, a new partition under a denied table's name, an RLS policy) must be
/// seen by the very next call: the kept answer would pass the judge, so the guard is the
/// only thing that stands in the way here.
#[tokio::test]
async fn a_kept_answer_is_never_used_after_the_owner_changes_what_a_name_resolves_to() {
    kept_answers_follow_every_change(Db::Idle).await;
}

/// The same changes on a database in use without the catalog version: every write moves
/// the fingerprint, so the call after one finds its guard failing and is sent again behind
/// the recheck, which reads the answer afresh in its own statement and lets the query run
/// only if it is the same. Each of the owner's changes must still be refused on the very
/// next call, caught by the recheck itself.
#[tokio::test]
async fn on_a_database_in_use_a_kept_answer_is_rechecked_and_never_used_after_a_change() {
    kept_answers_follow_every_change(Db::InUse).await;
}

/// The same changes, where a superuser has installed dbward's catalog version: kept
/// answers then survive writes (a row committed between two calls leaves the second on the
/// kept answer, its guard passing), and every one of the owner's changes, a DDL command,
/// still makes the very next call resolve afresh.
#[tokio::test]
async fn with_the_catalog_version_a_kept_answer_survives_writes_but_not_a_change() {
    kept_answers_follow_every_change(Db::Versioned).await;
}

/// The database of [`kept_answers_follow_every_change`].
#[derive(Clone, Copy, PartialEq)]
enum Db {
    /// No write between calls.
    Idle,
    /// dbward's catalog version installed; writes between calls.
    Versioned,
    /// Writes between calls, no catalog version.
    InUse,
}

async fn kept_answers_follow_every_change(db: Db) {
    let versioned = db == Db::Versioned;
    let mut s = setup_with(denying_config(), versioned).await;
    let mut owner = PgConnection::connect(&s.fx.url()).await.expect("owner");
    sqlx::raw_sql(
        "CREATE VIEW public.plain_view AS SELECT id, name FROM customers;
         CREATE TABLE public.staff (id int, name text);
         INSERT INTO staff VALUES (1, 'Cy');",
    )
    .execute(&mut owner)
    .await
    .expect("fixture");
    let changes = [
        // A view redefined to run the owner's code.
        (
            "SELECT id FROM plain_view ORDER BY id",
            "CREATE OR REPLACE VIEW public.plain_view AS \
             SELECT id, name, util.kick('v') AS k FROM customers",
            "function.user_defined",
        ),
        // A same-named function newly on the path (the builtin still resolves first, but
        // every candidate is judged).
        (
            "SELECT lower(name) FROM staff",
            "CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql VOLATILE \
             AS $$ SELECT kill_victims()::text $$",
            "function.user_defined",
        ),
        // A table made a view over a denied table, under the same name.
        (
            "SELECT name FROM staff",
            "ALTER TABLE staff RENAME TO staff_old; \
             CREATE VIEW public.staff AS SELECT amount AS id, 'x'::text AS name FROM payroll",
            "table.denied",
        ),
    ];
    for (sql, change, rule) in changes {
        // Twice: the second call runs on the kept answer. (After a stale answer, answers
        // are asked afresh for a second: wait it out, so the kept one is what is tried.)
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        for _ in 0..2 {
            s.runs(sql).await;
        }
        if db != Db::Idle {
            // A write (the owner's, committed), twice. With the catalog version the kept
            // answer's guard still passes. Without it the guard fails (the snapshot moved)
            // and the recheck passes (the answer is the same): the query runs on the kept
            // answer, with no fresh resolution and judgement, and the answer is kept under
            // the new fingerprint.
            let expected = if versioned {
                [1, 0, 0, 0]
            } else {
                [1, 1, 0, 1]
            };
            for _ in 0..2 {
                sqlx::raw_sql(
                    "INSERT INTO staff VALUES (9, 'Wren'); DELETE FROM staff WHERE id = 9",
                )
                .execute(&mut owner)
                .await
                .expect("a write");
                let before = s.counts();
                s.runs(sql).await;
                assert_eq!(s.since(before), expected, "{sql}: a call after a write");
            }
        }
        if db == Db::InUse {
            // The change is caught by the recheck, then read afresh and refused.
            sqlx::raw_sql(change)
                .execute(&mut owner)
                .await
                .unwrap_or_else(|e| panic!("{change}: {e}"));
            let before = s.counts();
            s.refused(sql, rule).await;
            assert_eq!(
                s.since(before),
                [1, 1, 1, 1],
                "{sql}: the recheck fails on the change"
            );
        } else {
            sqlx::raw_sql(change)
                .execute(&mut owner)
                .await
                .unwrap_or_else(|e| panic!("{change}: {e}"));
            s.refused(sql, rule).await;
        }
        // And on every call after it.
        s.refused(sql, rule).await;
    }
    // A change made by a transaction that was already open (its id already taken) when
    // the answer was kept, committed after: the snapshot's horizon may not move, its list
    // of transactions in progress does.
    let mut open = PgConnection::connect(&s.fx.url()).await.expect("open");
    sqlx::raw_sql(
        "BEGIN; CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE sql VOLATILE \
         AS $$ SELECT kill_victims()::text $$",
    )
    .execute(&mut open)
    .await
    .expect("open transaction");
    let sql = "SELECT upper(name) FROM customer_names";
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    if versioned {
        // With the catalog version, no call runs while a DDL transaction is open: each
        // waits for it (here until its lock timeout), and nothing is read.
        let e =
            s.gw.execute_query(&s.id, sql, &[], None)
                .await
                .expect_err("waits for the open DDL transaction");
        assert!(e.to_string().contains("lock timeout"), "{e}");
    } else {
        for _ in 0..2 {
            s.runs(sql).await;
        }
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut open)
        .await
        .expect("commit");
    s.refused(sql, "function.user_defined").await;
    open.close().await.ok();
    owner.close().await.ok();
    s.done().await;
}
