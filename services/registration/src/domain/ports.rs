//! The ports of the registration domain: what it needs from the outside, in its own words.
//!
//! Driven (implemented in `outbound`): [`BookingStore`] keeps bookings, the auto-confirm
//! policy, the outbox and the inbox — one store, because a booking's change, the event it
//! causes and the consumed event that caused it must commit together. [`Clock`] tells the time.
//!
//! Driving adapters (the admin REST API and the Kafka consumer in `inbound`) call
//! [`crate::application::BookingService`].

use std::future::Future;

use crate::domain::{
    AutoConfirmPolicy, Booking, BookingEvent, BookingStatus, CafeId, ReservationId,
};

/// The store failed (unreachable, busy, I/O). Not a business outcome.
pub type StoreError = studycafe_kernel::StoreError<Bookings>;

/// The booking store, as its failures name it.
#[derive(Debug)]
pub enum Bookings {}

impl studycafe_kernel::StoreName for Bookings {
    const NAME: &'static str = "booking store";
}

pub use studycafe_kernel::Consumed;

/// What storing a new booking came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// A booking for this reservation exists already (the event was re-sent under a new id):
    /// nothing was changed, the event is recorded as consumed.
    Exists,
    /// The consumed event had already been applied: nothing was written.
    AlreadyApplied,
}

/// What storing a change came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    /// Someone else (another request, another replica) changed the booking since it was read:
    /// reload and decide again.
    Stale,
    /// The consumed event had already been applied: nothing was written.
    AlreadyApplied,
}

pub trait BookingStore: Clone + Send + Sync + 'static {
    /// Whether the store answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<Option<Booking>, StoreError>> + Send;

    /// Bookings, newest first, optionally only those in `status`.
    fn list(
        &self,
        status: Option<BookingStatus>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Booking>, StoreError>> + Send;

    /// Stores a new booking with the event it caused at once (auto-confirm), claiming the
    /// consumed event, in one transaction.
    fn insert(
        &self,
        booking: &Booking,
        event: Option<&BookingEvent>,
        consumed: Consumed,
    ) -> impl Future<Output = Result<InsertOutcome, StoreError>> + Send;

    /// Stores `booking` if it is still at `expected_version`, with its event and the consumed
    /// event's claim (if any), in one transaction. The store is the one place a booking's
    /// version goes up: on `Saved`, the row and `booking` are both at `expected_version + 1`;
    /// otherwise `booking` is left as it was.
    fn save(
        &self,
        booking: &mut Booking,
        expected_version: i64,
        event: &BookingEvent,
        causation: &str,
        consumed: Option<Consumed>,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    /// Records a consumed event that changes nothing, so it is not reconsidered. False if it
    /// was recorded already: another delivery (or replica) got there first, and what the
    /// caller read may be that one's effect.
    fn mark_consumed(
        &self,
        consumed: Consumed,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn policy(
        &self,
        cafe: &CafeId,
    ) -> impl Future<Output = Result<Option<AutoConfirmPolicy>, StoreError>> + Send;

    /// Installs the deployment's initial policy unless an admin has set one: an admin's
    /// decision outlives restarts. Returns the policy in force.
    fn seed_policy(
        &self,
        initial: &AutoConfirmPolicy,
    ) -> impl Future<Output = Result<AutoConfirmPolicy, StoreError>> + Send;

    fn save_policy(
        &self,
        policy: &AutoConfirmPolicy,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub use studycafe_kernel::{Clock, SystemClock};
