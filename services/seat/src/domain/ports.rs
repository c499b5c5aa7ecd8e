//! The ports of the seat domain: what it needs from the outside, in its own words.
//!
//! Driven (implemented in `outbound`): [`ReservationStore`] keeps reservations, the seat
//! catalogue, idempotency keys, the outbox and the inbox — one store, because a state change,
//! the event it causes and the event that caused it must commit together. [`Payments`] takes
//! a payment (the one synchronous call of the saga). [`Clock`] tells the time.
//!
//! Driving adapters (HTTP, Kafka consumer, timers in `inbound`) call
//! [`crate::application::ReservationService`].

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::domain::{
    CustomerId, Money, PaymentToken, Reservation, ReservationEvent, ReservationId, Seat, SeatId,
};

/// The store failed (unreachable, I/O). Not a business outcome.
pub type StoreError = studycafe_kernel::StoreError<Reservations>;

/// The reservation store, as its failures name it.
#[derive(Debug)]
pub enum Reservations {}

impl studycafe_kernel::StoreName for Reservations {
    const NAME: &'static str = "reservation store";
}

/// An `Idempotency-Key` claimed by a reservation request, scoped to the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub key: String,
    /// A fingerprint of the request body: the same key with another body is a client bug.
    pub request_hash: String,
}

pub use studycafe_kernel::Consumed;

/// What storing a new reservation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// A live reservation of the seat overlaps the window.
    SeatTaken,
    /// The idempotency key was used before with the same request: that reservation.
    Replayed(ReservationId),
    /// The idempotency key was used before with a different request.
    KeyReused,
}

/// What storing a change came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    /// Someone else changed the reservation since it was read: reload and decide again.
    Stale,
    /// The consumed event had already been applied: nothing was written.
    AlreadyApplied,
}

/// Which reservations a timer is looking for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// REQUESTED or CONFIRMED whose hold ran out.
    HoldExpiry,
    /// REGISTERED whose window ended.
    Completion,
    /// CONFIRMED whose next payment attempt is due.
    Payment,
}

pub trait ReservationStore: Clone + Send + Sync + 'static {
    fn seats(&self) -> impl Future<Output = Result<Vec<Seat>, StoreError>> + Send;

    fn seat(&self, id: &SeatId) -> impl Future<Output = Result<Option<Seat>, StoreError>> + Send;

    /// Stores a new reservation with its event, atomically checking that no live
    /// reservation of the seat overlaps it and claiming the idempotency key.
    fn insert(
        &self,
        reservation: &Reservation,
        event: &ReservationEvent,
        causation: &str,
        idempotency: Option<&IdempotencyClaim>,
    ) -> impl Future<Output = Result<InsertOutcome, StoreError>> + Send;

    fn get(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<Option<Reservation>, StoreError>> + Send;

    /// Stores `reservation` if it is still at `expected_version`, with its events (in order)
    /// and the consumed event's inbox record (if any), in one transaction.
    fn save(
        &self,
        reservation: &Reservation,
        expected_version: i64,
        events: &[ReservationEvent],
        causation: &str,
        consumed: Option<Consumed>,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    /// Records a consumed event that changes nothing, so it is not reconsidered.
    fn mark_consumed(
        &self,
        consumed: Consumed,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Announces again (`SeatDefined`, through the outbox) up to `limit` seats last announced
    /// before `announced_before`, marking them announced at `now`; returns how many. Keeps the
    /// catalogue on the seat topic however short its retention, so a consumer replaying the
    /// topic (a rebuild, a new group) finds every seat, not only recently changed ones.
    fn reannounce_seats(
        &self,
        announced_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    fn due(
        &self,
        due: Due,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Reservation>, StoreError>> + Send;
}

/// A request to charge a reservation. The reservation id is the idempotency key: asking
/// twice never charges twice.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub reservation_id: ReservationId,
    pub customer_id: CustomerId,
    pub amount: Money,
    pub token: PaymentToken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Approved { payment_id: String },
    Declined { reason: String },
}

/// No answer from payment (down, slow, breaker open). The charge may or may not have
/// happened; asking again with the same reservation id is safe.
#[derive(Debug, Clone, thiserror::Error)]
#[error("payment unavailable: {0}")]
pub struct PaymentUnavailable(pub String);

pub trait Payments: Send + Sync + 'static {
    fn pay(
        &self,
        request: PaymentRequest,
    ) -> impl Future<Output = Result<PaymentOutcome, PaymentUnavailable>> + Send;
}

pub use studycafe_kernel::{Clock, SystemClock};
