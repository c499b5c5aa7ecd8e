//! A store that cannot begin a write transaction makes `/health/ready` fail within seconds
//! (so a load balancer stops sending work), and ready again once it can (issue 17).
//!
//! SQLite: another process holds the file's write lock. PostgreSQL: the database refuses
//! seat's connections (its connection limit set to 0 and seat's sessions ended), as when the
//! server runs out of connection slots.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection as _;
use support::{Db, spawn_app};

/// "Within seconds": the probe's deadline is 2 s; this leaves room for a loaded machine
/// without letting a store that stays ready pass.
const NOTICED_WITHIN: Duration = Duration::from_secs(15);

async fn readiness(app: &support::TestApp) -> (u16, Value) {
    let response = app
        .http
        .get(format!("{}/health/ready", app.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn until(app: &support::TestApp, want: u16, what: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = readiness(app).await;
        if status == want {
            return body;
        }
        assert!(
            started.elapsed() < NOTICED_WITHIN,
            "{what}: still {status} {body} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Holds the SQLite file's write lock from another connection until dropped.
async fn hold_sqlite_write_lock(url: &str) -> sqlx::SqliteConnection {
    let mut other = sqlx::SqliteConnection::connect(&format!("{url}?mode=rw"))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    other
}

/// Makes the PostgreSQL database refuse new connections and ends the ones it has; returns
/// the connection that did it (the owner's), to undo it with [`admit_postgres`].
async fn refuse_postgres(url: &str) -> sqlx::PgConnection {
    let mut owner = sqlx::PgConnection::connect(url).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} CONNECTION LIMIT 0"))
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    owner
}

async fn admit_postgres(owner: &mut sqlx::PgConnection) {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *owner)
        .await
        .unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} CONNECTION LIMIT -1"))
        .execute(&mut *owner)
        .await
        .unwrap();
}

async fn a_store_that_cannot_begin_a_write_is_not_ready(db: Db) {
    let mut app = spawn_app(db).await;
    until(&app, 200, "ready at first").await;
    match db {
        Db::Sqlite => {
            let held = hold_sqlite_write_lock(&app.database_url).await;
            let body = until(&app, 503, "not ready while the write lock is held").await;
            let reason = body["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains("cannot begin a write transaction"),
                "{body}"
            );
            drop(held);
        }
        Db::Postgres => {
            let mut owner = refuse_postgres(&app.database_url).await;
            let body = until(&app, 503, "not ready while the database refuses").await;
            let reason = body["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains("cannot begin a write transaction"),
                "{body}"
            );
            admit_postgres(&mut owner).await;
        }
    }
    until(&app, 200, "ready again once writes can begin").await;
    app.stop().await;
}

on_both_backends!(a_store_that_cannot_begin_a_write_is_not_ready);
