//! Driven adapters: the stores (SQLite embedded, PostgreSQL for replicas), the published
//! language, the seat catalogue file, the payment client.
//!
//! [`StoreAdapter`] is what the wiring in `App` needs from a store beyond the domain's
//! [`ReservationStore`] port (start-up and operations concerns the domain never sees), so the
//! wiring is written once, generic over the backend chosen by `SEAT_DATABASE_URL`.

use std::future::Future;

use studycafe_messaging::OutboxStore;

use crate::domain::{
    Seat,
    ports::{ReservationStore, StoreError},
};

pub mod catalogue;
pub mod payments;
pub mod postgres;
pub mod published_language;
mod records;
pub mod sqlite;

/// A [`ReservationStore`] as the application wires it: its outbox for the relay, a readiness
/// ping and the catalogue sync run at start-up.
pub trait StoreAdapter: ReservationStore + crate::queries::ReservationQueries {
    type Outbox: OutboxStore;

    /// The outbox as the relay reads it.
    fn outbox(&self) -> Self::Outbox;

    /// Whether the database answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes the stored catalogue match `seats`; returns how many seats changed.
    fn sync_catalogue(&self, seats: &[Seat]) -> impl Future<Output = anyhow::Result<usize>> + Send;
}

impl StoreAdapter for sqlite::SqliteStore {
    type Outbox = studycafe_messaging::sqlite::SqliteOutbox;

    fn outbox(&self) -> Self::Outbox {
        sqlite::SqliteStore::outbox(self)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlite::SqliteStore::ping(self).await
    }

    async fn sync_catalogue(&self, seats: &[Seat]) -> anyhow::Result<usize> {
        sqlite::SqliteStore::sync_catalogue(self, seats).await
    }
}

impl StoreAdapter for postgres::PgStore {
    type Outbox = studycafe_messaging::postgres::PgOutbox;

    fn outbox(&self) -> Self::Outbox {
        postgres::PgStore::outbox(self)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        postgres::PgStore::ping(self).await
    }

    async fn sync_catalogue(&self, seats: &[Seat]) -> anyhow::Result<usize> {
        postgres::PgStore::sync_catalogue(self, seats).await
    }
}
