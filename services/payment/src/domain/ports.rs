//! The ports of the payments domain: what it needs from the outside, in its own words.
//!
//! Driven (implemented in `outbound`):
//! - [`PaymentStore`] keeps payments, refunds, reservation closures, the outbox and the inbox
//!   — one store, because a state change, the event it causes and the event that caused it
//!   must commit together.
//! - [`CardProvider`] is the card processor. The built-in adapter is the card simulator; a
//!   real processor's adapter implements the same trait. Both calls take an idempotency key
//!   and a real processor honours it: asking twice never charges (or refunds) twice.
//! - [`Clock`] tells the time.
//!
//! Driving adapters (HTTP, Kafka consumer, settlement worker in `inbound`) call
//! [`crate::application::PaymentService`].

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    Money, Payment, PaymentEvent, PaymentId, PaymentToken, Refund, ReservationClosure,
    ReservationId,
};

/// The store failed (unreachable, I/O, corrupt row). Not a business outcome.
pub type StoreError = studycafe_kernel::StoreError<Payments>;

/// The payment store, as its failures name it.
#[derive(Debug)]
pub enum Payments {}

impl studycafe_kernel::StoreName for Payments {
    const NAME: &'static str = "payment store";
}

pub use studycafe_kernel::Consumed;

/// What recording a new payment came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// A payment for the reservation exists already (made by another process meanwhile).
    Exists(Payment),
}

/// What storing a change came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome<T = ()> {
    Saved(T),
    /// Someone else changed the row since it was read: reload and decide again.
    Stale,
}

/// Who may ask the card provider about a PENDING payment or refund right now, and until when.
///
/// Why in the store: replicas sharing one database each have their own in-process lock (and
/// their own settlement worker), so the "only one of us calls the provider" guarantee must live in
/// the payment or refund row itself. The claim is a lease (`until`), renewed while the call
/// runs, so a replica that dies mid-call does not block the row for longer than one lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The claiming service instance (one per process: within a process the keyed lock and
    /// the single settlement worker already serialise calls, so the instance may renew or retake
    /// its own claim).
    pub holder: Uuid,
    pub now: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// What claiming a payment or refund for a provider call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller holds the claim until its `until`.
    Claimed,
    /// Another instance holds a live claim, or the row is no longer what was claimed
    /// (settled, or for a refund: postponed or completed meanwhile): reload it.
    Busy,
}

/// What recording a closure came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// Recorded; `refund` is the refund it made owed, if any.
    Recorded { refund: Option<Refund> },
    /// The consumed event had already been applied: nothing was written.
    AlreadyApplied,
}

pub trait PaymentStore: Clone + Send + Sync + 'static {
    /// Records a new PENDING payment (committed before the provider is called).
    fn insert(
        &self,
        payment: &Payment,
    ) -> impl Future<Output = Result<InsertOutcome, StoreError>> + Send;

    fn by_reservation(
        &self,
        id: ReservationId,
    ) -> impl Future<Output = Result<Option<Payment>, StoreError>> + Send;

    fn refunds_of(
        &self,
        payment: PaymentId,
    ) -> impl Future<Output = Result<Vec<Refund>, StoreError>> + Send;

    /// Stores a settled payment (if still PENDING at `expected_version`) with its event. When the
    /// payment completed and its reservation is already known closed, `refund_if_closed` is
    /// stored too — all in one transaction, so a closure recorded concurrently cannot be
    /// missed. Returns the refund when one was stored.
    ///
    /// The store is the one place a payment's version goes up: on `Saved`, the row and
    /// `payment` are both at `expected_version + 1`; on `Stale`, `payment` is left as it was.
    fn settle(
        &self,
        payment: &mut Payment,
        expected_version: i64,
        event: &PaymentEvent,
        causation: &str,
        refund_if_closed: Option<&Refund>,
    ) -> impl Future<Output = Result<SaveOutcome<Option<Refund>>, StoreError>> + Send;

    /// Claims (or renews the claim of) a PENDING payment for a provider call: succeeds when
    /// the payment is PENDING and unclaimed, its claim has expired, or `claim.holder` holds it.
    /// Does not change the payment's version (the claim is not part of the aggregate).
    fn claim_charge(
        &self,
        payment: PaymentId,
        claim: &Claim,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;

    /// Stores an unanswered attempt (if still at `expected_version`) and releases the charge
    /// claim, so a retry from any instance may ask the provider at once; no event. Bumps the
    /// version as [`PaymentStore::settle`] does.
    fn save_attempt(
        &self,
        payment: &mut Payment,
        expected_version: i64,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    /// Records that a reservation is closed and, in the same transaction with the consumed
    /// event's inbox record, the refund its payment is now owed ([`Refund::owed`]) unless it
    /// has one already.
    fn close_reservation(
        &self,
        closure: &ReservationClosure,
        consumed: Consumed,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<CloseOutcome, StoreError>> + Send;

    /// PENDING payments of reservations seat has closed, unchanged since `untouched_since`
    /// and with no live charge claim at `now`, oldest first: payments nobody will ask about
    /// any more (seat stops retrying once a reservation is closed), left to
    /// [`crate::application::PaymentService::reconcile_stranded`].
    fn stranded_payments(
        &self,
        now: DateTime<Utc>,
        untouched_since: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Payment>, StoreError>> + Send;

    /// PENDING refunds whose next attempt is due and that no instance holds a live claim on,
    /// oldest first. Claim each one ([`PaymentStore::claim_refund`]) before calling the
    /// provider: another replica may claim it between this read and that.
    fn due_refunds(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Refund>, StoreError>> + Send;

    /// Claims (or renews the claim of) `refund` for a provider call: succeeds when the refund
    /// is still as read — PENDING, due at `claim.now`, with the same attempt count — and
    /// unclaimed, its claim has expired, or `claim.holder` holds it. The attempt count guard
    /// keeps a replica that read the refund before another one postponed it from asking again
    /// ahead of the backoff, or overwriting that attempt.
    fn claim_refund(
        &self,
        refund: &Refund,
        claim: &Claim,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;

    /// Stores a refund that just completed, with its `PaymentRefunded` event, and releases its
    /// claim, only if it is still PENDING (otherwise `Stale`: someone else completed it;
    /// nothing is written).
    fn complete_refund(
        &self,
        refund: &Refund,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    /// Stores an unanswered refund attempt (its new attempt count and due time) and releases
    /// its claim, only if it is still PENDING: any instance may retry once it is due.
    fn postpone_refund(
        &self,
        refund: &Refund,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;
}

/// The card processor's answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    Approved { provider_ref: String },
    Declined { reason: String },
}

/// No answer from the card processor (down, timed out). The charge may or may not have
/// happened; asking again with the same idempotency key is safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card provider unavailable: {0}")]
pub struct ProviderUnavailable(pub String);

pub trait CardProvider: Send + Sync + 'static {
    /// Charges `amount` to `token`. Asked again with the same `idempotency_key`, the processor
    /// answers the first result and charges nothing more.
    fn charge(
        &self,
        idempotency_key: &str,
        amount: Money,
        token: &PaymentToken,
    ) -> impl Future<Output = Result<Charge, ProviderUnavailable>> + Send;

    /// Refunds `amount` of the charge `provider_ref`; returns the refund's reference. Asked
    /// again with the same `idempotency_key`, it refunds nothing more.
    fn refund(
        &self,
        idempotency_key: &str,
        provider_ref: &str,
        amount: Money,
    ) -> impl Future<Output = Result<String, ProviderUnavailable>> + Send;
}

pub use studycafe_kernel::{Clock, SystemClock};
