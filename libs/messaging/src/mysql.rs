//! The MySQL/MariaDB adapter of the outbox and the inbox.
//!
//! Same contract as the SQLite and PostgreSQL adapters. Per-key order holds as long as a
//! service writes its outbox row after updating (and so locking) the aggregate's row: the
//! transactions of one aggregate are serialized and the later one takes the higher `seq`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlConnection, MySqlPool, Row as _};
use uuid::Uuid;

use crate::{OutboxMessage, OutboxStore, PendingMessage, write::Writer};

/// Creates the outbox, inbox and lease tables if they are missing. Idempotent.
pub async fn install(pool: &MySqlPool) -> sqlx::Result<()> {
    for statement in [
        "CREATE TABLE IF NOT EXISTS messaging_outbox (
            seq          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            event_id     CHAR(36) NOT NULL UNIQUE,
            topic        VARCHAR(255) NOT NULL,
            message_key  VARCHAR(255) NOT NULL,
            payload      LONGBLOB NOT NULL,
            headers      TEXT NOT NULL,
            created_at   DATETIME(6) NOT NULL,
            published_at DATETIME(6) NULL,
            INDEX messaging_outbox_pending (published_at, seq)
        ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS messaging_relay_lease (
            id         INT NOT NULL PRIMARY KEY,
            holder     VARCHAR(255) NOT NULL,
            expires_at DATETIME(6) NOT NULL
        ) ENGINE=InnoDB",
        "CREATE TABLE IF NOT EXISTS messaging_inbox (
            consumer     VARCHAR(191) NOT NULL,
            event_id     CHAR(36) NOT NULL,
            processed_at DATETIME(6) NOT NULL,
            PRIMARY KEY (consumer, event_id)
        ) ENGINE=InnoDB",
    ] {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}

/// Writes `message` to the outbox inside the caller's transaction.
pub async fn enqueue(conn: &mut MySqlConnection, message: &OutboxMessage) -> sqlx::Result<()> {
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
    .bind(Utc::now())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `consumer` processed `event_id`, inside the caller's transaction. False when
/// it had already been processed (a redelivery): apply nothing.
pub async fn claim(
    conn: &mut MySqlConnection,
    consumer: &str,
    event_id: Uuid,
) -> sqlx::Result<bool> {
    // INSERT IGNORE: the only error a row of three plain values can meet is the duplicate key.
    let inserted = sqlx::query(
        "INSERT IGNORE INTO messaging_inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)",
    )
    .bind(consumer)
    .bind(event_id.to_string())
    .bind(Utc::now())
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The relay's view of a MySQL/MariaDB outbox.
#[derive(Debug, Clone)]
pub struct MySqlOutbox {
    pool: MySqlPool,
    writes: Writer<MySql>,
}

impl MySqlOutbox {
    pub fn new(pool: MySqlPool) -> Self {
        Self {
            writes: Writer::new("outbox", pool.clone()),
            pool,
        }
    }
}

impl OutboxStore for MySqlOutbox {
    async fn pending(&self, limit: u32) -> anyhow::Result<Vec<PendingMessage>> {
        let rows = sqlx::query(
            "SELECT seq, event_id, topic, message_key, payload, headers
             FROM messaging_outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(PendingMessage::from_text_row).collect()
    }

    async fn mark_published(&self, seqs: &[i64]) -> anyhow::Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let placeholders = vec!["?"; seqs.len()].join(",");
        let sql =
            format!("UPDATE messaging_outbox SET published_at = ? WHERE seq IN ({placeholders})");
        let mut query = sqlx::query(&sql).bind(Utc::now());
        for seq in seqs {
            query = query.bind(seq);
        }
        query.execute(&self.pool).await?;
        Ok(())
    }

    async fn prune(&self, retention: Duration) -> anyhow::Result<u64> {
        let cutoff = Utc::now() - chrono::Duration::from_std(retention)?;
        let done = sqlx::query(
            "DELETE FROM messaging_outbox WHERE published_at IS NOT NULL AND published_at < ?",
        )
        .bind(cutoff)
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
        // Read and decide under the row lock: MySQL's upsert cannot express "take it only if
        // it is mine or expired" and tell whether it did.
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(ttl)?;
        let mut tx = self.writes.begin().await?;
        let current = sqlx::query(
            "SELECT holder, expires_at FROM messaging_relay_lease WHERE id = 1 FOR UPDATE",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let mine = match current {
            None => {
                // Two replicas may both find no row: the primary key lets one insert win.
                let inserted = sqlx::query(
                    "INSERT IGNORE INTO messaging_relay_lease (id, holder, expires_at) VALUES (1, ?, ?)",
                )
                .bind(holder)
                .bind(until)
                .execute(&mut *tx)
                .await?;
                inserted.rows_affected() == 1
            }
            Some(row) => {
                let current_holder: String = row.try_get("holder")?;
                let expires_at: DateTime<Utc> = row.try_get("expires_at")?;
                if current_holder == holder || expires_at < now {
                    sqlx::query(
                        "UPDATE messaging_relay_lease SET holder = ?, expires_at = ? WHERE id = 1",
                    )
                    .bind(holder)
                    .bind(until)
                    .execute(&mut *tx)
                    .await?;
                    true
                } else {
                    false
                }
            }
        };
        tx.commit().await?;
        Ok(mine)
    }

    async fn release_lease(&self, holder: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM messaging_relay_lease WHERE holder = ?")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
