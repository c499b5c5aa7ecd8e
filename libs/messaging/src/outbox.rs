//! The transactional outbox: events are rows first, Kafka messages later.
//!
//! A service turns each event into an [`OutboxMessage`] and inserts it in the same database
//! transaction as the state change that caused it (see [`crate::sqlite::enqueue`]). After the
//! commit it pokes the [`OutboxSignal`] so the relay publishes at once instead of at its next
//! poll. The relay reads committed rows through an [`OutboxStore`], one adapter per database.

use std::{collections::HashMap, future::Future, sync::Arc};

use serde::Serialize;
use shared_events::{Envelope, Event};
use tokio::sync::Notify;
use uuid::Uuid;

/// One event on its way to Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub event_id: Uuid,
    pub topic: String,
    /// The Kafka message key: the envelope's correlation id.
    pub key: String,
    /// The envelope as JSON bytes.
    pub payload: Vec<u8>,
    /// Kafka headers, including the W3C trace context of the span that wrote the event.
    pub headers: HashMap<String, String>,
}

impl OutboxMessage {
    /// The message for a typed event, on its own topic, keyed by its correlation id, carrying
    /// the current trace context.
    pub fn from_event<T: Event + Serialize>(envelope: &Envelope<T>) -> Self {
        let mut headers = crate::trace::current_context_headers();
        headers.insert("event-type".into(), envelope.event_type.clone());
        Self {
            event_id: envelope.id,
            topic: T::TOPIC.to_owned(),
            key: envelope.correlation_id.clone(),
            payload: envelope.to_json(),
            headers,
        }
    }
}

/// A committed, not yet published outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMessage {
    /// Commit order within the outbox; publishing follows it per key.
    pub seq: i64,
    pub message: OutboxMessage,
}

impl PendingMessage {
    /// Decodes an outbox row as SQLite and MySQL store it (the event id and the headers as
    /// text); PostgreSQL's native `uuid` and `jsonb` columns decode directly.
    pub(crate) fn from_text_row<R>(row: &R) -> anyhow::Result<Self>
    where
        R: sqlx::Row,
        for<'a> &'a str: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let event_id: String = row.try_get("event_id")?;
        let headers: String = row.try_get("headers")?;
        Ok(Self {
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
    }
}

/// Read side of the outbox, for the relay. Implemented per database.
pub trait OutboxStore: Send + Sync + 'static {
    /// Up to `limit` unpublished messages, oldest first.
    fn pending(
        &self,
        limit: u32,
    ) -> impl Future<Output = anyhow::Result<Vec<PendingMessage>>> + Send;

    /// Marks messages as published (the broker acknowledged them).
    fn mark_published(&self, seqs: &[i64]) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Deletes published messages older than `retention`; returns how many.
    fn prune(
        &self,
        retention: std::time::Duration,
    ) -> impl Future<Output = anyhow::Result<u64>> + Send;

    /// How many messages wait to be published (for metrics and readiness details).
    fn backlog(&self) -> impl Future<Output = anyhow::Result<i64>> + Send;

    /// Takes or renews the outbox's relay lease for `holder` until `ttl` from now. True when
    /// `holder` holds it. Replicas of a service share one outbox; only the lease holder
    /// publishes, so events of one key never race each other out of two processes.
    fn acquire_lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> impl Future<Output = anyhow::Result<bool>> + Send;

    /// Gives the lease up (at shutdown) so another replica takes over at once.
    fn release_lease(&self, holder: &str) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Wakes the relay after a commit that wrote outbox rows. Cheap to clone; a wake-up with no
/// relay waiting is remembered, so none is lost.
#[derive(Debug, Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Call after committing a transaction that enqueued messages.
    pub fn notify(&self) {
        self.0.notify_one();
    }

    pub(crate) async fn notified(&self) {
        self.0.notified().await;
    }
}
