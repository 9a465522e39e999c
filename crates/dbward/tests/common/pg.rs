//! A fresh PostgreSQL database and a NOLOGIN reader role for one test, made and dropped as
//! the superuser `postgres` (trust auth on 127.0.0.1:5432).

use sqlx::{Connection, Executor, PgConnection};

const PG_ADMIN: &str = "postgresql://postgres@127.0.0.1:5432/postgres";

/// Database `dbward_t_{prefix}_{pid}` and role `dbward_t_{prefix}_reader_{pid}`, both new.
pub struct Fresh {
    pub db: String,
    pub reader: String,
    admin: PgConnection,
}

impl Fresh {
    pub async fn new(prefix: &str) -> Fresh {
        let n = std::process::id();
        let db = format!("dbward_t_{prefix}_{n}");
        let reader = format!("dbward_t_{prefix}_reader_{n}");
        let mut admin = PgConnection::connect(PG_ADMIN)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL must be running on 127.0.0.1:5432: {e}"));
        for sql in [
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            format!("CREATE DATABASE {db}"),
            format!("DROP ROLE IF EXISTS {reader}"),
            format!("CREATE ROLE {reader} NOLOGIN"),
        ] {
            admin
                .execute(sqlx::AssertSqlSafe(sql.clone()))
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        Fresh { db, reader, admin }
    }

    /// The superuser's session in the database.
    pub async fn superuser(&self) -> PgConnection {
        PgConnection::connect(&format!("postgresql://postgres@127.0.0.1:5432/{}", self.db))
            .await
            .expect("connect as the superuser")
    }

    /// Drops the database and the role.
    pub async fn drop(mut self) {
        for sql in [
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
            format!("DROP ROLE IF EXISTS {}", self.reader),
        ] {
            let _ = self.admin.execute(sqlx::AssertSqlSafe(sql)).await;
        }
    }
}

/// `dbward setup-role ARGS`'s SQL, exactly as printed (the command must succeed).
pub fn setup_role_sql(args: &[&str]) -> String {
    let out = std::process::Command::new(super::BIN)
        .arg("setup-role")
        .args(args)
        .output()
        .expect("setup-role runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

impl Fresh {
    /// A config whose connection `main` reads the database through the reader role, with
    /// `extra` TOML lines in that connection's table, and its spec logging in as the
    /// superuser `postgres` (trust auth; the reader role is SET per call).
    pub fn gateway_config(
        &self,
        extra: &str,
    ) -> (dbward_gateway::GatewayConfig, dbward_gateway::ConnectSpec) {
        let config = dbward_gateway::GatewayConfig::from_toml(&format!(
            "[connections.main]\ntype = \"postgresql\"\nhost = \"127.0.0.1\"\ndatabase = \"{}\"\n\
             sslmode = \"disable\"\nreader_role = \"{}\"\n{extra}\n",
            self.db, self.reader
        ))
        .expect("config");
        let named = config.connections["main"].clone();
        let mut spec = dbward_gateway::ConnectSpec::from_named("main", &named).expect("spec");
        spec.username = Some("postgres".into());
        (config, spec)
    }
}
