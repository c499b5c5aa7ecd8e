//! How every studycafe service talks to Kafka.
//!
//! The rules this crate enforces, so no service has to remember them:
//!
//! - **Transactional outbox.** A service never produces to Kafka from a request handler. It
//!   writes its state change and the event (an [`OutboxMessage`]) in one local transaction
//!   ([`sqlite::enqueue`]); the [`relay::OutboxRelay`] later publishes what was committed.
//!   A crash between the two loses nothing: the row is still there. A broker outage delays
//!   events, never rejects requests.
//! - **In order per key.** The relay publishes one key's messages strictly one after the other
//!   (the next only after the broker acknowledged the previous), different keys concurrently.
//!   A message is marked published only after its acknowledgement, so a crash can re-publish
//!   a message (at-least-once) but never skip or reorder one.
//! - **Idempotent consumers.** A handler records the event id in the inbox in the same
//!   transaction as its state change ([`sqlite::claim`]); a redelivered event is then a no-op.
//!   The consumer stores the Kafka offset only after the handler committed
//!   ([`consumer::EventConsumer`]).
//! - **Poison messages go to a dead-letter topic** (undecodable, or failing every retry), with
//!   the error in headers, and the partition keeps moving.
//! - **Trace context travels in Kafka headers** (W3C `traceparent`), captured when the event is
//!   written to the outbox, so a trace spans request → outbox → relay → consumer.

pub mod config;
pub mod consumer;
mod logs;
pub mod mysql;
pub mod outbox;
pub mod postgres;
pub mod relay;
pub mod sqlite;
pub mod topics;
mod trace;
pub mod write;

pub use config::KafkaConfig;
pub use consumer::{ConsumerSettings, EventConsumer, EventHandler, HandleError, ReceivedEvent};
pub use outbox::{OutboxMessage, OutboxSignal, OutboxStore, PendingMessage};
pub use relay::{OutboxRelay, RelaySettings};
