//! A write transaction's future dropped at each of its await points (a client hanging up, a
//! timeout, a `select!`) must leave the pool sound: the next write begins a fresh transaction,
//! commits for real, and the dropped one either committed whole or left nothing. On SQLite,
//! PostgreSQL and MariaDB (`scripts/engines/up`; a fresh database per test). Also: readiness
//! of a SQLite database whose write lock another process holds, and how an exhausted pool is
//! logged.

use std::{sync::Arc, time::Duration};

use sqlx::{
    Connection as _, MySqlConnection, PgConnection, SqliteConnection, migrate::Migrator,
    mysql::MySqlPoolOptions, postgres::PgPoolOptions,
};
use studycafe_messaging::{
    sqlite::{self, SqliteDatabase, Tables},
    write::{READY_WITHIN, Writer},
};
use studycafe_testkit::{cancel::at_every_await_point, engines};
use tokio::sync::Mutex;
use uuid::Uuid;

/// Generous: the pool gets its connection back through a spawned task.
const USABLE_WITHIN: Duration = Duration::from_secs(10);

async fn inbox_rows(db: &SqliteDatabase, consumer: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM messaging_inbox WHERE consumer = ?")
        .bind(consumer)
        .fetch_one(&db.reader)
        .await
        .unwrap()
}

/// The transaction under test: two rows, all or nothing.
async fn two_claims(db: SqliteDatabase, consumer: &'static str) -> sqlx::Result<()> {
    let mut tx = db.write().await?;
    sqlite::claim(&mut tx, consumer, Uuid::now_v7()).await?;
    sqlite::claim(&mut tx, consumer, Uuid::now_v7()).await?;
    tx.commit().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_write_dropped_at_any_await_point_leaves_the_pool_sound() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = SqliteDatabase::open(&url, &Migrator::DEFAULT, Tables::WithMessaging)
        .await
        .unwrap();
    // Another process's view of the file: it must be able to write after each drop, i.e.
    // nobody kept the write lock.
    let other = Arc::new(Mutex::new(
        SqliteConnection::connect(&format!("{url}?mode=rw"))
            .await
            .unwrap(),
    ));
    let visited = at_every_await_point(
        200,
        || two_claims(db.clone(), "dropped"),
        |polls| {
            let (db, other) = (db.clone(), other.clone());
            async move {
                let dropped = inbox_rows(&db, "dropped").await;
                assert!(
                    dropped % 2 == 0,
                    "after a drop at poll {polls}: half a transaction committed ({dropped} rows)"
                );
                // The next write on the pool is a real, top-level transaction.
                let before = inbox_rows(&db, "next").await;
                tokio::time::timeout(USABLE_WITHIN, async {
                    let mut tx = db.write().await?;
                    sqlite::claim(&mut tx, "next", Uuid::now_v7()).await?;
                    tx.commit().await
                })
                .await
                .unwrap_or_else(|_| panic!("after a drop at poll {polls}: the pool hangs"))
                .unwrap_or_else(|e| panic!("after a drop at poll {polls}: {e}"));
                assert_eq!(
                    inbox_rows(&db, "next").await,
                    before + 1,
                    "after a drop at poll {polls}: the next write's commit is visible"
                );
                let mut other = other.lock().await;
                sqlx::query("PRAGMA busy_timeout = 2000")
                    .execute(&mut *other)
                    .await
                    .unwrap();
                let mut tx = other.begin_with("BEGIN IMMEDIATE").await.unwrap_or_else(|e| {
                    panic!("after a drop at poll {polls}: the write lock is still held: {e}")
                });
                sqlite::claim(&mut tx, "other", Uuid::now_v7()).await.unwrap();
                tx.commit().await.unwrap();
            }
        },
    )
    .await;
    assert!(visited >= 3, "begin, statements and commit were drop points");
    let dropped = inbox_rows(&db, "dropped").await;
    assert!(dropped >= 2, "the last run committed ({dropped} rows)");
}

/// The safety net under the write helper: even sqlx's own `begin_with` on the writer pool,
/// dropped at its unsafe await point, cannot leave the pool a connection inside a transaction
/// (the pool checks each one it gets back and closes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_sqlite_begin_dropped_anywhere_is_caught_when_its_connection_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = SqliteDatabase::open(&url, &Migrator::DEFAULT, Tables::WithMessaging)
        .await
        .unwrap();
    at_every_await_point(
        200,
        || {
            let writer = db.writer.clone();
            #[allow(clippy::disallowed_methods)] // the hazard under test
            let begin = async move { writer.begin_with("BEGIN IMMEDIATE").await.map(drop) };
            begin
        },
        |polls| {
            let db = db.clone();
            async move {
                let before = inbox_rows(&db, "next").await;
                tokio::time::timeout(USABLE_WITHIN, async {
                    let mut tx = db.write().await?;
                    sqlite::claim(&mut tx, "next", Uuid::now_v7()).await?;
                    tx.commit().await
                })
                .await
                .unwrap_or_else(|_| panic!("after a drop at poll {polls}: the pool hangs"))
                .unwrap_or_else(|e| panic!("after a drop at poll {polls}: {e}"));
                assert_eq!(inbox_rows(&db, "next").await, before + 1, "poll {polls}");
            }
        },
    )
    .await;
}

/// Readiness: while another process holds the write lock, the database is not ready (within
/// the probe's deadline, not the 10 s busy timeout); once it lets go, it is again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_that_cannot_begin_a_write_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = SqliteDatabase::open(&url, &Migrator::DEFAULT, Tables::WithMessaging)
        .await
        .unwrap();
    db.ping().await.expect("ready");
    let mut other = SqliteConnection::connect(&format!("{url}?mode=rw"))
        .await
        .unwrap();
    let held = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let refused = tokio::time::timeout(READY_WITHIN * 3, db.ping())
        .await
        .expect("the probe has a deadline of its own");
    assert!(refused.is_err(), "not ready while the write lock is held");
    held.rollback().await.unwrap();
    studycafe_testkit::eventually(USABLE_WITHIN * 3, "ready again", || async {
        db.ping().await.ok()
    })
    .await;
}

/// An exhausted pool is logged once per episode, and the end of the episode once.
#[tokio::test(flavor = "current_thread")]
async fn pool_exhaustion_is_logged_once_per_episode() {
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(100))
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let writer = Writer::new("test", pool.clone());
    let held = pool.acquire().await.unwrap();
    for _ in 0..3 {
        let e = writer.begin().await.expect_err("no connection to be had");
        assert!(matches!(e, sqlx::Error::PoolTimedOut), "{e}");
    }
    drop(held);
    let tx = tokio::time::timeout(USABLE_WITHIN, writer.begin())
        .await
        .unwrap()
        .unwrap();
    tx.rollback().await.unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log.matches("database pool exhausted").count(), 1, "{log}");
    assert!(log.contains("every connection is held"), "{log}");
    assert_eq!(log.matches("database pool serves again").count(), 1, "{log}");
}

/// PostgreSQL: `two_claims` dropped at each await point, on a pool of one connection (so the
/// next user gets the very session the drop left behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_write_dropped_at_any_await_point_leaves_the_pool_sound() {
    use studycafe_messaging::postgres;
    let url = engines::postgres_database().await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    postgres::install(&pool).await.unwrap();
    let writer = Writer::new("test", pool.clone());
    let observer = Arc::new(Mutex::new(PgConnection::connect(&url).await.unwrap()));
    let count = |consumer: &'static str| {
        let observer = observer.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM messaging_inbox WHERE consumer = $1")
                    .bind(consumer)
                    .fetch_one(&mut *observer.lock().await)
                    .await
                    .unwrap();
            n
        }
    };
    let visited = at_every_await_point(
        200,
        || {
            let writer = writer.clone();
            async move {
                let mut tx = writer.begin().await?;
                postgres::claim(&mut tx, "dropped", Uuid::now_v7()).await?;
                postgres::claim(&mut tx, "dropped", Uuid::now_v7()).await?;
                tx.commit().await
            }
        },
        |polls| {
            let (pool, writer, observer) = (pool.clone(), writer.clone(), observer.clone());
            async move {
                let dropped = count("dropped").await;
                assert!(dropped % 2 == 0, "poll {polls}: half a transaction ({dropped})");
                // An autocommit statement on the pool's one session commits at once: the
                // session is not inside a transaction someone left open.
                let before = count("autocommit").await;
                tokio::time::timeout(USABLE_WITHIN, async {
                    let mut conn = pool.acquire().await?;
                    postgres::claim(&mut conn, "autocommit", Uuid::now_v7()).await
                })
                .await
                .unwrap_or_else(|_| panic!("poll {polls}: the pool hangs"))
                .unwrap_or_else(|e| panic!("poll {polls}: {e}"));
                assert_eq!(
                    count("autocommit").await,
                    before + 1,
                    "poll {polls}: an autocommit write stayed inside a leftover transaction"
                );
                let idle_in_transaction: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()
                     AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
                )
                .fetch_one(&mut *observer.lock().await)
                .await
                .unwrap();
                assert_eq!(idle_in_transaction, 0, "poll {polls}");
                let mut tx = writer.begin().await.unwrap();
                postgres::claim(&mut tx, "next", Uuid::now_v7()).await.unwrap();
                tx.commit().await.unwrap();
            }
        },
    )
    .await;
    assert!(visited >= 3, "begin, statements and commit were drop points");
    let dropped = count("dropped").await;
    assert!(dropped >= 2, "the last run committed ({dropped} rows)");
}

/// MySQL/MariaDB: as for PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_write_dropped_at_any_await_point_leaves_the_pool_sound() {
    use studycafe_messaging::mysql;
    let url = engines::mysql_database().await;
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    mysql::install(&pool).await.unwrap();
    let writer = Writer::new("test", pool.clone());
    let observer = Arc::new(Mutex::new(MySqlConnection::connect(&url).await.unwrap()));
    let count = |consumer: &'static str| {
        let observer = observer.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM messaging_inbox WHERE consumer = ?")
                    .bind(consumer)
                    .fetch_one(&mut *observer.lock().await)
                    .await
                    .unwrap();
            n
        }
    };
    let visited = at_every_await_point(
        200,
        || {
            let writer = writer.clone();
            async move {
                let mut tx = writer.begin().await?;
                mysql::claim(&mut tx, "dropped", Uuid::now_v7()).await?;
                mysql::claim(&mut tx, "dropped", Uuid::now_v7()).await?;
                tx.commit().await
            }
        },
        |polls| {
            let (pool, writer) = (pool.clone(), writer.clone());
            async move {
                let dropped = count("dropped").await;
                assert!(dropped % 2 == 0, "poll {polls}: half a transaction ({dropped})");
                let before = count("autocommit").await;
                tokio::time::timeout(USABLE_WITHIN, async {
                    let mut conn = pool.acquire().await?;
                    mysql::claim(&mut conn, "autocommit", Uuid::now_v7()).await
                })
                .await
                .unwrap_or_else(|_| panic!("poll {polls}: the pool hangs"))
                .unwrap_or_else(|e| panic!("poll {polls}: {e}"));
                assert_eq!(
                    count("autocommit").await,
                    before + 1,
                    "poll {polls}: an autocommit write stayed inside a leftover transaction"
                );
                let mut tx = writer.begin().await.unwrap();
                mysql::claim(&mut tx, "next", Uuid::now_v7()).await.unwrap();
                tx.commit().await.unwrap();
            }
        },
    )
    .await;
    assert!(visited >= 3, "begin, statements and commit were drop points");
    let dropped = count("dropped").await;
    assert!(dropped >= 2, "the last run committed ({dropped} rows)");
}
