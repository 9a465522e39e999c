//! The MariaDB fixture: the real server on 127.0.0.1:3306 (root, empty password). Each test
//! creates its own database and a user with [`PASSWORD`] granted ALL on it, so the tests
//! connect as the database's owner: only dbward stands between a query and a write. A
//! missing server is a test failure, never a skip.

use sqlx::{Connection, Executor, MySqlConnection, Row};

use super::{PASSWORD, unique};

pub const MY_ADMIN: &str = "mysql://root@127.0.0.1:3306/";

pub async fn my_admin() -> MySqlConnection {
    MySqlConnection::connect(MY_ADMIN)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "MariaDB must be running on 127.0.0.1:3306 with root and an empty password \
             (run scripts/start-services.sh): {e}"
            )
        })
}

/// The fixture CMDB plus a secrets table, as MariaDB SQL (one multi-statement message).
pub const MY_FIXTURE: &str = r#"
CREATE TABLE departments (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL UNIQUE,
  budget DECIMAL(12,2)
) ENGINE=InnoDB COMMENT 'Organisational units';
CREATE TABLE servers (
  id INT AUTO_INCREMENT PRIMARY KEY,
  hostname VARCHAR(100) NOT NULL,
  department_id INT,
  status VARCHAR(20) NOT NULL DEFAULT 'active' COMMENT 'lifecycle state',
  cpu_cores INT UNSIGNED,
  meta JSON,
  KEY servers_department_idx (department_id),
  CONSTRAINT servers_department_fk FOREIGN KEY (department_id) REFERENCES departments(id)
) ENGINE=InnoDB;
CREATE TABLE applications (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  server_id INT,
  FOREIGN KEY (server_id) REFERENCES servers(id)
) ENGINE=InnoDB;
CREATE TABLE incidents (
  id INT AUTO_INCREMENT PRIMARY KEY,
  server_id INT,
  severity TINYINT,
  opened_at DATETIME,
  note TEXT,
  FOREIGN KEY (server_id) REFERENCES servers(id)
) ENGINE=InnoDB;
CREATE TABLE secrets (id INT AUTO_INCREMENT PRIMARY KEY, service VARCHAR(50), api_key VARCHAR(100)) ENGINE=InnoDB;
CREATE TABLE bump_log (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME) ENGINE=InnoDB;
CREATE SEQUENCE ticket_seq NOCACHE;
INSERT INTO departments (name, budget) VALUES ('Engineering', 1200000.50), ('Finance', 300000.00), ('Ops', 450000.25);
INSERT INTO servers (hostname, department_id, status, cpu_cores, meta)
  WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 300)
  SELECT CONCAT('srv-', n), 1 + n % 3, IF(n % 5 = 0, 'retired', 'active'), 2 + n % 16,
         JSON_OBJECT('rack', n % 7, 'os', IF(n % 2 = 0, 'linux', 'bsd'))
  FROM g;
INSERT INTO applications (name, server_id)
  WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 200)
  SELECT CONCAT('app-', n), 1 + n % 300 FROM g;
INSERT INTO incidents (server_id, severity, opened_at, note)
  WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000)
  SELECT 1 + n % 300, 1 + n % 4, TIMESTAMP '2025-01-01 00:00:00' + INTERVAL n HOUR, CONCAT('incident ', n)
  FROM g;
INSERT INTO secrets (service, api_key) VALUES ('billing', 'sk_live_do_not_leak');
CREATE FUNCTION bump() RETURNS INT MODIFIES SQL DATA
BEGIN
  INSERT INTO bump_log (at) VALUES (NOW());
  RETURN (SELECT COUNT(*) FROM bump_log);
END;
"#;

/// A fresh MariaDB database and a user granted ALL on it, with [`PASSWORD`].
pub struct MyFixture {
    pub db: String,
    pub user: String,
}

impl MyFixture {
    pub async fn new() -> MyFixture {
        let db = unique("dbward_t");
        let user = unique("dbward_owner");
        let mut admin = my_admin().await;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{db}`")))
            .await
            .expect("create database");
        for host in ["%", "localhost"] {
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{PASSWORD}'"
                )))
                .await
                .expect("create user");
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "GRANT ALL ON `{db}`.* TO '{user}'@'{host}'"
                )))
                .await
                .expect("grant");
        }
        admin.close().await.ok();
        let mut owner =
            MySqlConnection::connect(&format!("mysql://{user}:{PASSWORD}@127.0.0.1:3306/{db}"))
                .await
                .expect("connect as owner");
        sqlx::raw_sql(MY_FIXTURE)
            .execute(&mut owner)
            .await
            .expect("load fixture");
        owner.close().await.ok();
        MyFixture { db, user }
    }

    /// The owner's connection string (with the password).
    pub fn url(&self) -> String {
        format!(
            "mysql://{}:{PASSWORD}@127.0.0.1:3306/{}",
            self.user, self.db
        )
    }

    /// A fingerprint of every table's content, the sequence, and the database's objects, to
    /// prove nothing changed. Read as root so that it sees everything.
    pub async fn fingerprint(&self) -> String {
        let mut c = my_admin().await;
        let mut parts = Vec::new();
        for t in [
            "departments",
            "servers",
            "applications",
            "incidents",
            "secrets",
            "bump_log",
        ] {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "CHECKSUM TABLE `{}`.`{t}` EXTENDED",
                self.db
            )))
            .fetch_one(&mut c)
            .await
            .expect("checksum");
            // The checksum column's signedness differs between versions: read it unchecked.
            let sum: Option<i64> = row.try_get_unchecked(1).expect("checksum value");
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM `{}`.`{t}`",
                self.db
            )))
            .fetch_one(&mut c)
            .await
            .expect("count");
            parts.push(format!("{t}:{}:{count}", sum.unwrap_or(-1)));
        }
        let seq: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT next_not_cached_value FROM `{}`.ticket_seq",
            self.db
        )))
        .fetch_one(&mut c)
        .await
        .expect("seq");
        let objects: (i64, String) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(MD5(GROUP_CONCAT(TABLE_NAME, ':', TABLE_TYPE, ':', \
                    COALESCE(CREATE_TIME, '') ORDER BY TABLE_NAME)), '') \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
        )
        .bind(&self.db)
        .fetch_one(&mut c)
        .await
        .expect("objects");
        let columns: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?",
        )
        .bind(&self.db)
        .fetch_one(&mut c)
        .await
        .expect("columns");
        let routines: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
        )
        .bind(&self.db)
        .fetch_one(&mut c)
        .await
        .expect("routines");
        c.close().await.ok();
        format!(
            "{} seq:{seq} objects:{}:{} columns:{columns} routines:{routines}",
            parts.join(" "),
            objects.0,
            objects.1
        )
    }

    /// Whether a named lock (`GET_LOCK`) is held by anyone, and how many sessions of this
    /// fixture's user are still inside a transaction.
    pub async fn leftovers(&self, lock: &str) -> (bool, i64) {
        let mut admin = my_admin().await;
        let held: i64 = sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) IS NOT NULL AS SIGNED)")
            .bind(lock)
            .fetch_one(&mut admin)
            .await
            .expect("lock");
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX t \
             JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
             WHERE p.USER = ?",
        )
        .bind(&self.user)
        .fetch_one(&mut admin)
        .await
        .expect("trx");
        admin.close().await.ok();
        (held != 0, open)
    }

    /// Drops the database and the users (closing dbward's pools first is the caller's job).
    pub async fn drop(self) {
        let mut admin = my_admin().await;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE USER = ?",
        )
        .bind(&self.user)
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
        for id in ids {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!("KILL {id}")))
                .await;
        }
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{}`",
                self.db
            )))
            .await;
        for host in ["%", "localhost"] {
            let _ = admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP USER IF EXISTS '{}'@'{host}'",
                    self.user
                )))
                .await;
        }
    }
}

impl MyFixture {
    /// Runs setup SQL as the owner (outside dbward), e.g. a table a single test needs.
    pub async fn owner_exec(&self, sql: &str) {
        let mut owner = MySqlConnection::connect(&self.url())
            .await
            .expect("connect as owner");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut owner)
            .await
            .expect("owner setup");
        owner.close().await.ok();
    }
}
