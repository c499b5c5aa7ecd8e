//! The SQLite adapter of the outbox and the inbox.
//!
//! Both tables live in the service's own database so that a state change, the events it
//! causes and the ids of the events it consumed commit together.
//!
//! [`SqliteDatabase::open`] is how every service opens its embedded-mode database, so the
//! rules for sharing one file between processes live in one place:
//! - WAL mode: readers never block the writer, the writer never blocks readers;
//! - a busy timeout of 10 s: a writer waits for another process's transaction instead of
//!   failing at once;
//! - `synchronous = FULL`: a committed decision survives a power cut, not only a crash;
//! - writes go through a pool of exactly one connection (SQLite has one writer anyway) and
//!   a write transaction that reads before it writes must start with `BEGIN IMMEDIATE`
//!   ([`SqliteDatabase::write`]): a deferred one can hit `SQLITE_BUSY` on the lock upgrade,
//!   which the busy timeout cannot fix once its snapshot is stale;
//! - that one connection must never come back to the pool inside a transaction, or every
//!   later write fails and the write lock is held for good (issue 17): write transactions
//!   begin through [`Writer`] (cancel-safe), and the pool checks each connection it gets
//!   back, closing one still inside a transaction (which rolls it back);
//! - readiness ([`SqliteDatabase::ping`]) is a write transaction beginning within
//!   [`READY_WITHIN`]: a reader that answers proves nothing when writes are wedged;
//! - schema migrations run under the write lock, so two replicas starting together on one
//!   file do not both try to create the tables; a file still locked while it is being
//!   switched to WAL (which takes an exclusive lock and does not wait) is retried for a while.

use std::{str::FromStr as _, time::Duration};

use chrono::Utc;
use sqlx::{
    Connection as _, Sqlite, SqliteConnection, SqlitePool, Transaction,
    migrate::Migrator,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use uuid::Uuid;

use crate::{
    OutboxMessage, OutboxStore, PendingMessage,
    write::{READY_WITHIN, Writer},
};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for the one writer connection before failing (503) instead of
/// hanging: far longer than any healthy queue of write transactions.
const WRITER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a database locked by another process starting on the same file is retried.
const OPEN_RETRY_FOR: Duration = Duration::from_secs(30);

/// Whether the outbox and inbox tables belong in the database being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    /// The service's own schema only (a service that neither publishes nor consumes).
    Own,
    /// The service's schema plus the outbox, relay lease and inbox tables.
    WithMessaging,
}

/// A service's SQLite database: one writer connection and a read-only pool.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    /// Exactly one connection: every write goes through it.
    pub writer: SqlitePool,
    /// Read-only connections for queries.
    pub reader: SqlitePool,
    /// Begins the write transactions on `writer`.
    writes: Writer<Sqlite>,
}

impl SqliteDatabase {
    /// Opens (creating if missing, with its directory) the database at `url` and brings its
    /// schema up to date with `migrator`, under the write lock.
    pub async fn open(url: &str, migrator: &Migrator, tables: Tables) -> anyhow::Result<Self> {
        let deadline = tokio::time::Instant::now() + OPEN_RETRY_FOR;
        let mut backoff = Duration::from_millis(50);
        loop {
            match Self::try_open(url, migrator, tables).await {
                Ok(database) => return Ok(database),
                Err(e) if is_locked(&e) && tokio::time::Instant::now() < deadline => {
                    tracing::warn!(
                        error = %format!("{e:#}"),
                        "database locked while opening (another replica starting?); retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_open(url: &str, migrator: &Migrator, tables: Tables) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // `sqlite://var/seat.db` out of the box: a missing `var/` is not worth a crash.
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITER_ACQUIRE_TIMEOUT)
            .after_release(|conn, _| Box::pin(returned_outside_transaction(conn)))
            .connect_with(options.clone())
            .await?;
        {
            // The whole check-and-apply under the write lock: another replica starting at the
            // same moment waits here, then finds the schema current.
            let writes = Writer::new("migrations", writer.clone()).beginning_with(BEGIN_WRITE);
            let mut tx = writes.begin().await?;
            if tables == Tables::WithMessaging {
                install_in(&mut tx).await?;
            }
            migrator.run(&mut *tx).await?;
            tx.commit().await?;
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true).create_if_missing(false))
            .await?;
        Ok(Self {
            writes: Writer::new("sqlite", writer.clone()).beginning_with(BEGIN_WRITE),
            writer,
            reader,
        })
    }

    /// A write transaction holding the write lock from its first statement. Cancel-safe.
    pub async fn write(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.writes.begin().await
    }

    /// The outbox in this database, for the relay.
    pub fn outbox(&self) -> SqliteOutbox {
        SqliteOutbox::new(self.writer.clone())
    }

    /// Readiness: the database answers reads, and a write transaction (so the write lock)
    /// begins within [`READY_WITHIN`]. `Err` says why not.
    pub async fn ping(&self) -> Result<(), String> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(|e| format!("the database cannot be read: {e}"))?;
        self.writes.probe(READY_WITHIN).await
    }
}

/// How every write transaction starts: with the write lock.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The writer pool's check of a connection it gets back: `false` (close it, which rolls back
/// whatever it holds) when it is still inside a transaction. Whatever left it so — a begin
/// dropped at its unsafe await point (see [`crate::write`]), a rollback SQLite refused — the
/// one writer connection must not go on serving inside it.
async fn returned_outside_transaction(conn: &mut SqliteConnection) -> sqlx::Result<bool> {
    // The worker thread runs commands in order: once the ping is answered, the rollback a
    // dropped `Transaction` queued has run, and the depth is current.
    conn.ping().await?;
    if conn.is_in_transaction() {
        metrics::counter!("db_connections_discarded_total", "reason" => "in_transaction")
            .increment(1);
        tracing::error!(
            "the SQLite writer connection came back inside a transaction; closing it (its \
             transaction rolls back) and opening a new one"
        );
        return Ok(false);
    }
    Ok(true)
}

/// Whether opening failed only because another connection held a lock (`SQLITE_BUSY`).
fn is_locked(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let text = cause.to_string();
        text.contains("database is locked") || text.contains("(code: 5)")
    })
}

/// Creates the outbox and inbox tables if they are missing. Idempotent; call at start-up
/// before the service's own migrations.
pub async fn install(pool: &SqlitePool) -> sqlx::Result<()> {
    let mut conn = pool.acquire().await?;
    install_in(&mut conn).await
}

async fn install_in(conn: &mut SqliteConnection) -> sqlx::Result<()> {
    sqlx::raw_sql(
        r#"
        CREATE TABLE IF NOT EXISTS messaging_outbox (
            seq          INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id     TEXT NOT NULL UNIQUE,
            topic        TEXT NOT NULL,
            message_key  TEXT NOT NULL,
            payload      BLOB NOT NULL,
            headers      TEXT NOT NULL,
            created_at   TEXT NOT NULL,
            published_at TEXT
        );
        CREATE INDEX IF NOT EXISTS messaging_outbox_pending
            ON messaging_outbox (seq) WHERE published_at IS NULL;
        CREATE TABLE IF NOT EXISTS messaging_relay_lease (
            id         INTEGER PRIMARY KEY CHECK (id = 1),
            holder     TEXT NOT NULL,
            expires_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS messaging_inbox (
            consumer     TEXT NOT NULL,
            event_id     TEXT NOT NULL,
            processed_at TEXT NOT NULL,
            PRIMARY KEY (consumer, event_id)
        );
        "#,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes `message` to the outbox inside the caller's transaction.
pub async fn enqueue(conn: &mut SqliteConnection, message: &OutboxMessage) -> sqlx::Result<()> {
    let headers = serde_json::to_string(&message.headers).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO messaging_outbox (event_id, topic, message_key, payload, headers, created_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(message.event_id.to_string())
    .bind(&message.topic)
    .bind(&message.key)
    .bind(&message.payload)
    .bind(headers)
    .bind(Utc::now().to_rfc3339())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `consumer` processed `event_id`, inside the caller's transaction. Returns
/// false when it had already been processed: the caller then applies nothing and commits (or
/// rolls back) an empty transaction.
pub async fn claim(
    conn: &mut SqliteConnection,
    consumer: &str,
    event_id: Uuid,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO messaging_inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id.to_string())
    .bind(Utc::now().to_rfc3339())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The relay's view of a SQLite outbox.
#[derive(Debug, Clone)]
pub struct SqliteOutbox {
    pool: SqlitePool,
    writes: Writer<Sqlite>,
}

impl SqliteOutbox {
    pub fn new(pool: SqlitePool) -> Self {
        Self {
            writes: Writer::new("outbox", pool.clone()).beginning_with(BEGIN_WRITE),
            pool,
        }
    }
}

impl OutboxStore for SqliteOutbox {
    async fn pending(&self, limit: u32) -> anyhow::Result<Vec<PendingMessage>> {
        let rows = sqlx::query(
            "SELECT seq, event_id, topic, message_key, payload, headers
             FROM messaging_outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(PendingMessage::from_text_row).collect()
    }

    async fn mark_published(&self, seqs: &[i64]) -> anyhow::Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let now = Utc::now().to_rfc3339();
        let mut tx = self.writes.begin().await?;
        for seq in seqs {
            sqlx::query("UPDATE messaging_outbox SET published_at = ? WHERE seq = ?")
                .bind(&now)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn prune(&self, retention: Duration) -> anyhow::Result<u64> {
        let cutoff = Utc::now() - chrono::Duration::from_std(retention)?;
        let done = sqlx::query(
            "DELETE FROM messaging_outbox WHERE published_at IS NOT NULL AND published_at < ?",
        )
        .bind(cutoff.to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn backlog(&self) -> anyhow::Result<i64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM messaging_outbox WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(count)
    }

    async fn acquire_lease(&self, holder: &str, ttl: Duration) -> anyhow::Result<bool> {
        let now = Utc::now().timestamp_millis();
        let until = now + i64::try_from(ttl.as_millis())?;
        let done = sqlx::query(
            "INSERT INTO messaging_relay_lease (id, holder, expires_at) VALUES (1, ?, ?)
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE messaging_relay_lease.holder = excluded.holder
                OR messaging_relay_lease.expires_at < ?",
        )
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, holder: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM messaging_relay_lease WHERE holder = ?")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
