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
