//! The production engines for tests: PostgreSQL, MariaDB, Redis and Apache Kafka, started on
//! loopback by `scripts/engines/up` (which `scripts/test` runs first) and found through
//! `TEST_POSTGRES_URL`, `TEST_MYSQL_URL`, `TEST_REDIS_URL` and `TEST_KAFKA_BROKERS`.
//!
//! Each test gets a database (or key prefix, or topic prefix) of its own on the shared server,
//! so tests run in parallel without seeing each other. A missing variable fails the test with
//! the command that fixes it: an adapter test that quietly skipped would prove nothing.

use uuid::Uuid;

fn required(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: start the engines with `eval \"$(scripts/engines/up)\"` \
             (scripts/test does it)"
        )
    })
}

/// A unique, valid database / prefix name for one test.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

/// A fresh, empty PostgreSQL database; returns its URL.
pub async fn postgres_database() -> String {
    use sqlx::Connection as _;
    let server = required("TEST_POSTGRES_URL");
    let server = server.trim_end_matches('/');
    let name = unique_name("t");
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("connecting to {server}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    format!("{server}/{name}")
}

/// A fresh, empty MySQL/MariaDB database; returns its URL.
pub async fn mysql_database() -> String {
    use sqlx::Connection as _;
    let server = required("TEST_MYSQL_URL");
    let server = server.trim_end_matches('/');
    let name = unique_name("t");
    let mut admin = sqlx::MySqlConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("connecting to {server}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    format!("{server}/{name}")
}

/// The Redis server's URL (tests isolate themselves with a key prefix of their own).
pub fn redis_url() -> String {
    required("TEST_REDIS_URL")
}

/// Apache Kafka's bootstrap servers (tests isolate themselves with a topic prefix).
pub fn kafka_brokers() -> String {
    required("TEST_KAFKA_BROKERS")
}

/// Whether the engines are configured (the end-to-end suite runs the production stack only
/// when asked to, with `STUDYCAFE_E2E_STACK=production`).
pub fn production_stack_requested() -> bool {
    std::env::var("STUDYCAFE_E2E_STACK").is_ok_and(|v| v == "production")
}
