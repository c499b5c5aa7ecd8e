//! A write transaction's future dropped at each of its await points (a client hanging up, a
//! timeout, a `select!`), and at moments spread over its run, must leave the pool sound: the
//! next user of the pool's session is not inside a leftover transaction, the next write
//! commits for real, and the dropped one either committed whole or left nothing. On SQLite,
//! PostgreSQL and MariaDB (`scripts/engines/up`; a fresh database per test), each pool with
//! one connection, so the next user gets the very session a drop left behind. Also: readiness
//! of a SQLite database whose write lock another process holds, and how an exhausted pool is
//! logged.

use std::{sync::Arc, time::Duration};

use sqlx::{
    Connection as _, MySqlConnection, PgConnection, SqliteConnection, migrate::Migrator,
    mysql::MySqlPoolOptions, postgres::PgPoolOptions,
};
use studycafe_messaging::{
    mysql, postgres,
    sqlite::{self, SqliteDatabase, Tables},
    write::{READY_WITHIN, Writer},
};
use studycafe_testkit::{
    cancel::{DropPoint, at_every_await_point, at_spread_moments},
    engines,
};
use tokio::sync::Mutex;
use uuid::Uuid;

/// Generous: the pool gets its connection back through a spawned task.
const USABLE_WITHIN: Duration = Duration::from_secs(10);
/// Drops at moments spread over this long (a write transaction on loopback takes a few ms).
const SPREAD_RUNS: u32 = 60;
const SPREAD_OVER: Duration = Duration::from_millis(6);
/// SQLite's worker thread races the test's polls, so which await point a poll count reaches
/// varies: the sweep is repeated to reach the narrow ones every time.
const SQLITE_SWEEPS: usize = 10;

async fn sqlite_database() -> (SqliteDatabase, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = SqliteDatabase::open(&url, &Migrator::DEFAULT, Tables::WithMessaging)
        .await
        .unwrap();
    (db, url, dir)
}

/// Another process's view of the file (waiting up to 2 s for the write lock).
async fn other_process(url: &str) -> Arc<Mutex<SqliteConnection>> {
    let mut other = SqliteConnection::connect(&format!("{url}?mode=rw"))
        .await
        .unwrap();
    sqlx::query("PRAGMA busy_timeout = 2000")
        .execute(&mut other)
        .await
        .unwrap();
    Arc::new(Mutex::new(other))
}

async fn inbox_rows(db: &SqliteDatabase, consumer: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM messaging_inbox WHERE consumer = ?")
        .bind(consumer)
        .fetch_one(&db.reader)
        .await
        .unwrap()
}

/// The transaction under test: two rows, all or nothing.
async fn two_claims(db: SqliteDatabase) -> sqlx::Result<()> {
    let mut tx = db.write().await?;
    sqlite::claim(&mut tx, "dropped", Uuid::now_v7()).await?;
    sqlite::claim(&mut tx, "dropped", Uuid::now_v7()).await?;
    tx.commit().await
}

/// What must hold after any drop on SQLite: nothing half-written, the next write is a real
/// top-level transaction whose commit is visible, and another process can take the write lock.
async fn sqlite_sound(db: &SqliteDatabase, other: &Mutex<SqliteConnection>, point: DropPoint) {
    let dropped = inbox_rows(db, "dropped").await;
    assert!(
        dropped % 2 == 0,
        "{point}: half a transaction ({dropped} rows)"
    );
    let before = inbox_rows(db, "next").await;
    tokio::time::timeout(USABLE_WITHIN, async {
        let mut tx = db.write().await?;
        sqlite::claim(&mut tx, "next", Uuid::now_v7()).await?;
        tx.commit().await
    })
    .await
    .unwrap_or_else(|_| panic!("{point}: the pool hangs"))
    .unwrap_or_else(|e| panic!("{point}: {e}"));
    assert_eq!(
        inbox_rows(db, "next").await,
        before + 1,
        "{point}: the next write's commit is visible"
    );
    let mut other = other.lock().await;
    #[allow(clippy::disallowed_methods)] // another process's connection, never dropped early
    let mut tx = other
        .begin_with("BEGIN IMMEDIATE")
        .await
        .unwrap_or_else(|e| panic!("{point}: the write lock is still held: {e}"));
    sqlite::claim(&mut tx, "other", Uuid::now_v7())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_write_dropped_at_any_await_point_leaves_the_pool_sound() {
    let (db, url, _dir) = sqlite_database().await;
    let other = other_process(&url).await;
    let check = |point| {
        let (db, other) = (db.clone(), other.clone());
        async move { sqlite_sound(&db, &other, point).await }
    };
    for _ in 0..SQLITE_SWEEPS {
        let visited = at_every_await_point(200, || two_claims(db.clone()), check).await;
        assert!(
            visited >= 3,
            "begin, statements and commit were drop points"
        );
    }
    at_spread_moments(SPREAD_RUNS, SPREAD_OVER, || two_claims(db.clone()), check).await;
    let dropped = inbox_rows(&db, "dropped").await;
    assert!(
        dropped >= 2,
        "runs that were not dropped committed ({dropped} rows)"
    );
}

/// The safety net under the write helper: even sqlx's own `begin_with` on the writer pool,
/// dropped at its unsafe await point, cannot leave the pool a connection inside a transaction
/// (the pool checks each one it gets back and closes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_sqlite_begin_dropped_anywhere_is_caught_when_its_connection_comes_back() {
    let (db, url, _dir) = sqlite_database().await;
    let other = other_process(&url).await;
    let raw_begin = || {
        let writer = db.writer.clone();
        #[allow(clippy::disallowed_methods)] // the hazard under test
        let begin = async move { writer.begin_with("BEGIN IMMEDIATE").await.map(drop) };
        begin
    };
    let check = |point| {
        let (db, other) = (db.clone(), other.clone());
        async move { sqlite_sound(&db, &other, point).await }
    };
    for _ in 0..SQLITE_SWEEPS {
        at_every_await_point(200, raw_begin, check).await;
    }
    at_spread_moments(SPREAD_RUNS, SPREAD_OVER, raw_begin, check).await;
}

/// Readiness: while another process holds the write lock, the database is not ready (within
/// the probe's deadline, not the 10 s busy timeout); once it lets go, it is again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_that_cannot_begin_a_write_is_not_ready() {
    let (db, url, _dir) = sqlite_database().await;
    db.ping().await.expect("ready");
    let mut other = SqliteConnection::connect(&format!("{url}?mode=rw"))
        .await
        .unwrap();
    #[allow(clippy::disallowed_methods)] // another process holding the lock on purpose
    let held = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let refused = tokio::time::timeout(READY_WITHIN * 3, db.ping())
        .await
        .expect("the probe has a deadline of its own");
    let reason = refused.expect_err("not ready while the write lock is held");
    assert!(
        reason.contains("cannot begin a write transaction"),
        "{reason}"
    );
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
    assert_eq!(
        log.matches("database pool serves again").count(),
        1,
        "{log}"
    );
}

/// PostgreSQL and MySQL: after any drop, an autocommit statement on the pool's one session
/// commits at once (it is not inside a transaction the drop left open), and so does the next
/// write transaction. `count` reads from another session.
macro_rules! server_engine_test {
    ($name:ident, $engine:ident, $pool_options:ident, $connection:ty, $database:expr, $count_sql:literal, $extra_check:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let url = $database.await;
            let pool = $pool_options::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            $engine::install(&pool).await.unwrap();
            let writer = Writer::new("test", pool.clone());
            let observer = Arc::new(Mutex::new(<$connection>::connect(&url).await.unwrap()));
            let count = |consumer: &'static str| {
                let observer = observer.clone();
                async move {
                    let n: i64 = sqlx::query_scalar($count_sql)
                        .bind(consumer)
                        .fetch_one(&mut *observer.lock().await)
                        .await
                        .unwrap();
                    n
                }
            };
            let transaction = || {
                let writer = writer.clone();
                async move {
                    let mut tx = writer.begin().await?;
                    $engine::claim(&mut tx, "dropped", Uuid::now_v7()).await?;
                    $engine::claim(&mut tx, "dropped", Uuid::now_v7()).await?;
                    tx.commit().await
                }
            };
            let check = |point: DropPoint| {
                let (pool, writer, observer) = (pool.clone(), writer.clone(), observer.clone());
                async move {
                    let dropped = count("dropped").await;
                    assert!(dropped % 2 == 0, "{point}: half a transaction ({dropped})");
                    let before = count("autocommit").await;
                    tokio::time::timeout(USABLE_WITHIN, async {
                        let mut conn = pool.acquire().await?;
                        $engine::claim(&mut conn, "autocommit", Uuid::now_v7()).await
                    })
                    .await
                    .unwrap_or_else(|_| panic!("{point}: the pool hangs"))
                    .unwrap_or_else(|e| panic!("{point}: {e}"));
                    assert_eq!(
                        count("autocommit").await,
                        before + 1,
                        "{point}: an autocommit write stayed inside a leftover transaction"
                    );
                    ($extra_check)(observer, point).await;
                    let mut tx = writer.begin().await.unwrap();
                    $engine::claim(&mut tx, "next", Uuid::now_v7())
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                }
            };
            let visited = at_every_await_point(200, transaction, check).await;
            assert!(
                visited >= 3,
                "begin, statements and commit were drop points"
            );
            at_spread_moments(SPREAD_RUNS, SPREAD_OVER, transaction, check).await;
            let dropped = count("dropped").await;
            assert!(
                dropped >= 2,
                "runs that were not dropped committed ({dropped} rows)"
            );
        }
    };
}

server_engine_test!(
    a_postgres_write_dropped_at_any_await_point_leaves_the_pool_sound,
    postgres,
    PgPoolOptions,
    PgConnection,
    engines::postgres_database(),
    "SELECT COUNT(*) FROM messaging_inbox WHERE consumer = $1",
    |observer: Arc<Mutex<PgConnection>>, point: DropPoint| async move {
        // And the server agrees: no session of this database idles inside a transaction.
        let idle: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()
             AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *observer.lock().await)
        .await
        .unwrap();
        assert_eq!(idle, 0, "{point}: a session idles in a transaction");
    }
);

server_engine_test!(
    a_mysql_write_dropped_at_any_await_point_leaves_the_pool_sound,
    mysql,
    MySqlPoolOptions,
    MySqlConnection,
    engines::mysql_database(),
    "SELECT COUNT(*) FROM messaging_inbox WHERE consumer = ?",
    |_observer: Arc<Mutex<MySqlConnection>>, _point: DropPoint| async move {}
);
