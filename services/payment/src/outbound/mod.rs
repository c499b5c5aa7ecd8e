//! Driven adapters: the payment stores (SQLite embedded, MySQL/MariaDB in production; both
//! with outbox and inbox), the published-language mapping, and the card simulator behind the
//! provider port.

use std::future::Future;

use studycafe_messaging::OutboxStore;

use crate::domain::ports::{PaymentStore, StoreError};

pub mod mysql;
pub mod published_language;
pub mod records;
pub mod simulator;
pub mod sqlite;

/// What the service's wiring needs from a store adapter beyond the domain's port: the outbox
/// the relay publishes from, and a readiness check. `App` is generic over it, so every
/// backend is wired the same way.
pub trait StoreAdapter: PaymentStore {
    type Outbox: OutboxStore;

    fn outbox(&self) -> Self::Outbox;

    /// Whether the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
