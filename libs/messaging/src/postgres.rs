//! The PostgreSQL adapter of the outbox and the inbox.
//!
//! Same contract as the SQLite adapter: both tables live in the service's own database so a
//! state change, the events it causes and the ids of the events it consumed commit together.
//!
//! Ordering: `seq` comes from a sequence, taken at insert time, so concurrent transactions may
//! commit out of `seq` order. Per key that cannot happen as long as a service writes its outbox
//! row after updating (and so locking) the aggregate's row, which serializes the transactions of
//! one aggregate: the later one takes the higher `seq`. Across keys order does not matter, and a
//! row committed late with a lower `seq` is still pending, so the relay picks it up next round.

use std::{collections::HashMap, time::Duration};

use sqlx::{PgConnection, PgPool, Row as _};
use uuid::Uuid;

use crate::{OutboxMessage, OutboxStore, PendingMessage, write::Writer};

/// Creates the outbox, inbox and lease tables if they are missing. Idempotent; call at
/// start-up before the service's own migrations. Safe to race between replicas starting
/// together (an advisory lock serializes them).
pub async fn install(pool: &PgPool) -> sqlx::Result<()> {
    let mut tx = Writer::new("install", pool.clone()).begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7312001)")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(
        r#"
        CREATE TABLE IF NOT EXISTS messaging_outbox (
            seq          BIGSERIAL PRIMARY KEY,
            event_id     UUID NOT NULL UNIQUE,
            topic        TEXT NOT NULL,
            message_key  TEXT NOT NULL,
            payload      BYTEA NOT NULL,
            headers      JSONB NOT NULL,
            created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
            published_at TIMESTAMPTZ
        );
        CREATE INDEX IF NOT EXISTS messaging_outbox_pending
            ON messaging_outbox (seq) WHERE published_at IS NULL;
        CREATE TABLE IF NOT EXISTS messaging_relay_lease (
            id         INTEGER PRIMARY KEY CHECK (id = 1),
            holder     TEXT NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE IF NOT EXISTS messaging_inbox (
            consumer     TEXT NOT NULL,
            event_id     UUID NOT NULL,
            processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, event_id)
        );
        "#,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Writes `message` to the outbox inside the caller's transaction.
pub async fn enqueue(conn: &mut PgConnection, message: &OutboxMessage) -> sqlx::Result<()> {
    let headers = serde_json::to_value(&message.headers).unwrap_or_default();
    sqlx::query(
        "INSERT INTO messaging_outbox (event_id, topic, message_key, payload, headers)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(message.event_id)
    .bind(&message.topic)
    .bind(&message.key)
    .bind(&message.payload)
    .bind(headers)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `consumer` processed `event_id`, inside the caller's transaction. False when
/// it had already been processed (a redelivery): apply nothing.
pub async fn claim(conn: &mut PgConnection, consumer: &str, event_id: Uuid) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO messaging_inbox (consumer, event_id) VALUES ($1, $2)
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The relay's view of a PostgreSQL outbox.
#[derive(Debug, Clone)]
pub struct PgOutbox {
    pool: PgPool,
}

impl PgOutbox {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl OutboxStore for PgOutbox {
    async fn pending(&self, limit: u32) -> anyhow::Result<Vec<PendingMessage>> {
        let rows = sqlx::query(
            "SELECT seq, event_id, topic, message_key, payload, headers
             FROM messaging_outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let headers: serde_json::Value = row.try_get("headers")?;
                Ok(PendingMessage {
                    seq: row.try_get("seq")?,
                    message: OutboxMessage {
                        event_id: row.try_get("event_id")?,
                        topic: row.try_get("topic")?,
                        key: row.try_get("message_key")?,
                        payload: row.try_get("payload")?,
                        headers: serde_json::from_value::<HashMap<String, String>>(headers)
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
        sqlx::query("UPDATE messaging_outbox SET published_at = now() WHERE seq = ANY($1)")
            .bind(seqs)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn prune(&self, retention: Duration) -> anyhow::Result<u64> {
        let done = sqlx::query(
            "DELETE FROM messaging_outbox
             WHERE published_at IS NOT NULL AND published_at < now() - $1 * interval '1 millisecond'",
        )
        .bind(i64::try_from(retention.as_millis())?)
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
        let done = sqlx::query(
            "INSERT INTO messaging_relay_lease (id, holder, expires_at)
             VALUES (1, $1, now() + $2 * interval '1 millisecond')
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE messaging_relay_lease.holder = excluded.holder
                OR messaging_relay_lease.expires_at < now()",
        )
        .bind(holder)
        .bind(i64::try_from(ttl.as_millis())?)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, holder: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM messaging_relay_lease WHERE holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
