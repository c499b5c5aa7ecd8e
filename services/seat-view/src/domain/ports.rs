//! The ports of the read side: what it needs from the outside, in its own words.
//!
//! Driven (implemented in `outbound`): [`ViewStore`] keeps the materialized views and the
//! inbox of consumed event ids — one store, because a view change and the id of the event that
//! caused it must commit together. It is phrased as view operations (apply a change, the board
//! at an instant, a customer's reservations, start over), not as queries, so a Redis adapter
//! can implement it as naturally as the SQLite one. [`BoardFeed`] tells live watchers about
//! committed board changes.
//!
//! Driving adapters (the Kafka consumer and the HTTP API in `inbound`) call
//! [`crate::application::ViewService`].

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::domain::{
    BoardChange, BoardFacts, ConsumedChange, CustomerId, Generation, PageLimit, TimelineEntry,
};

/// The store failed (unreachable, I/O, corrupt row). Not a business outcome.
pub type StoreError = studycafe_kernel::StoreError<Views>;

/// The view store, as its failures name it.
#[derive(Debug)]
pub enum Views {}

impl studycafe_kernel::StoreName for Views {
    const NAME: &'static str = "view store";
}

/// What applying a consumed change came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The views changed and the event id is recorded, in one commit.
    Applied,
    /// The event had been applied before (a redelivery): nothing was written.
    AlreadyApplied,
}

pub trait ViewStore: Clone + Send + Sync + 'static {
    /// Applies `change` and records its event id as consumed, atomically; a change whose
    /// event id is already recorded writes nothing.
    fn apply(
        &self,
        change: &ConsumedChange,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Every seat, and the reservations whose window covers `at`.
    fn board_at(
        &self,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<BoardFacts, StoreError>> + Send;

    /// The customer's reservations, newest first (by creation, then id).
    fn reservations_of(
        &self,
        customer: &CustomerId,
        limit: PageLimit,
    ) -> impl Future<Output = Result<Vec<TimelineEntry>, StoreError>> + Send;

    /// The current generation of the views.
    fn generation(&self) -> impl Future<Output = Result<Generation, StoreError>> + Send;

    /// Wipes every view and the inbox and moves to the next generation, atomically.
    fn start_over(&self) -> impl Future<Output = Result<Generation, StoreError>> + Send;

    /// Whether the store answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where committed board changes go for live watchers. Publishing never blocks and never
/// fails the projection: watchers that cannot keep up are told to refetch instead.
pub trait BoardFeed: std::fmt::Debug + Send + Sync + 'static {
    fn publish(&self, change: BoardChange);
}
