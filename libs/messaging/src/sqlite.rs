//! The SQLite adapter of the outbox and the inbox.
//!
//! Both tables live in the service's own database so that a state change, the events it
//! causes and the ids of the events it consumed commit together.

use std::{collections::HashMap, time::Duration};

use chrono::Utc;
use sqlx::{Row as _, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::{OutboxMessage, OutboxStore, PendingMessage};

/// Creates the outbox and inbox tables if they are missing. Idempotent; call at start-up
/// before the service's own migrations.
pub async fn install(pool: &SqlitePool) -> sqlx::Result<()> {
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
    .execute(pool)
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
}

impl SqliteOutbox {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
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
        rows.into_iter()
            .map(|row| {
                let headers: String = row.try_get("headers")?;
                let event_id: String = row.try_get("event_id")?;
                Ok(PendingMessage {
                    seq: row.try_get("seq")?,
                    message: OutboxMessage {
                        event_id: event_id.parse()?,
                        topic: row.try_get("topic")?,
                        key: row.try_get("message_key")?,
                        payload: row.try_get("payload")?,
                        headers: serde_json::from_str::<HashMap<String, String>>(&headers)
                            .unwrap_or_default(),
                    },
                })
            })
            .collect()
    }

    async fn mark_published(&self, seqs: &[i64]) -> anyhow::Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let now = Utc::now().to_rfc3339();
        let mut tx = self.pool.begin().await?;
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
