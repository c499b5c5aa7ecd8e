//! The `Payment` aggregate, its `Refund`, and the closures seat reports.
//!
//! ```text
//! PENDING ──approved──▶ COMPLETED ──(reservation closed)──▶ refund PENDING ──▶ refund COMPLETED
//!    │  ▲
//!    │  └── provider unavailable (attempts + 1, stays PENDING; the caller retries)
//!    └──declined──▶ DECLINED
//! ```
//!
//! One payment per reservation (the reservation id is the idempotency key), at most one refund
//! per payment, always of the full amount. Every transition returns the event it causes; the
//! caller stores both in one transaction.

use chrono::{DateTime, Duration, Utc};

use crate::domain::{CustomerId, Money, PaymentId, PaymentToken, RefundId, ReservationId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Recorded, provider not (yet) answered: the charge may or may not have happened.
    Pending,
    Completed,
    Declined,
}

impl PaymentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Completed => "COMPLETED",
            Self::Declined => "DECLINED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Completed, Self::Declined]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// A request to charge one reservation.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub reservation_id: ReservationId,
    pub customer_id: CustomerId,
    pub amount: Money,
    pub token: PaymentToken,
}

/// Every field of a payment, as a store keeps it: the aggregate's one raw form.
///
/// Only persistence uses it: a store reads [`Payment::state`] to write a payment and hands
/// what it read back to `Payment::restore`, which is crate-private, so no other crate can make
/// a payment in a state of its choosing. Everything else reads a payment through its
/// accessors and changes it through its transitions, which enforce the rules and return the
/// events they cause; changing a field of a `PaymentState` changes no payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentState {
    pub id: PaymentId,
    pub reservation_id: ReservationId,
    pub customer_id: CustomerId,
    pub amount: Money,
    pub token: PaymentToken,
    pub status: PaymentStatus,
    /// The card processor's reference of the charge (COMPLETED only).
    pub provider_ref: Option<String>,
    /// Why the card was declined (DECLINED only).
    pub decline_reason: Option<String>,
    /// Provider calls made for this payment so far.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic concurrency: the version the store holds this payment at. The store is the
    /// one place it goes up (by one per stored change, see `PaymentStore::settle` and
    /// `PaymentStore::save_attempt`); no transition touches it.
    pub version: i64,
}

/// A payment. Its fields are private: read them through the accessors, change them through
/// the transitions; stores use [`PaymentState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    state: PaymentState,
}

/// What a payment transition tells the other contexts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    Completed,
    Declined { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment {id} is {}, not PENDING", status.as_str())]
pub struct NotPending {
    pub id: PaymentId,
    pub status: PaymentStatus,
}

/// A repeated request that is not the same request: a client bug, never charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("reservation {reservation} was already charged for another amount ({recorded})")]
    Amount {
        reservation: ReservationId,
        recorded: Money,
    },
    #[error("reservation {reservation} was already charged to another customer")]
    Customer { reservation: ReservationId },
}

impl Payment {
    /// A new payment, recorded before the provider is called so that a crash mid-call leaves
    /// a PENDING trace to resume from.
    pub fn start(charge: ChargeRequest, now: DateTime<Utc>) -> Self {
        Self {
            state: PaymentState {
                id: PaymentId::new(),
                reservation_id: charge.reservation_id,
                customer_id: charge.customer_id,
                amount: charge.amount,
                token: charge.token,
                status: PaymentStatus::Pending,
                provider_ref: None,
                decline_reason: None,
                attempts: 0,
                created_at: now,
                updated_at: now,
                version: 0,
            },
        }
    }

    /// Rebuilds a payment from what a store kept, as it was saved (no rule is checked). For
    /// the stores in `outbound` only (see [`PaymentState`]).
    pub(crate) fn restore(state: PaymentState) -> Self {
        Self { state }
    }

    /// Every field, for a store to write. For stores only (see [`PaymentState`]).
    pub fn state(&self) -> &PaymentState {
        &self.state
    }

    pub fn id(&self) -> PaymentId {
        self.state.id
    }

    pub fn reservation_id(&self) -> ReservationId {
        self.state.reservation_id
    }

    pub fn customer_id(&self) -> &CustomerId {
        &self.state.customer_id
    }

    pub fn amount(&self) -> Money {
        self.state.amount
    }

    /// What the card processor is asked to charge.
    pub fn token(&self) -> &PaymentToken {
        &self.state.token
    }

    pub fn status(&self) -> PaymentStatus {
        self.state.status
    }

    /// The card processor's reference of the charge (COMPLETED only).
    pub fn provider_ref(&self) -> Option<&str> {
        self.state.provider_ref.as_deref()
    }

    /// Why the card was declined (DECLINED only).
    pub fn decline_reason(&self) -> Option<&str> {
        self.state.decline_reason.as_deref()
    }

    /// Provider calls made for this payment so far.
    pub fn attempts(&self) -> u32 {
        self.state.attempts
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.state.created_at
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.state.updated_at
    }

    /// The version the store holds this payment at (what a save expects to find).
    pub fn version(&self) -> i64 {
        self.state.version
    }

    /// The request this payment was made for (as a retry would repeat it).
    pub fn charge_request(&self) -> ChargeRequest {
        ChargeRequest {
            reservation_id: self.state.reservation_id,
            customer_id: self.state.customer_id.clone(),
            amount: self.state.amount,
            token: self.state.token.clone(),
        }
    }

    /// Whether `charge` repeats the request this payment was made for. The token may differ
    /// (a retry does not re-send what the first one used); customer and amount may not.
    pub fn check_repeat(&self, charge: &ChargeRequest) -> Result<(), Mismatch> {
        if self.state.customer_id != charge.customer_id {
            return Err(Mismatch::Customer {
                reservation: self.state.reservation_id,
            });
        }
        if self.state.amount != charge.amount {
            return Err(Mismatch::Amount {
                reservation: self.state.reservation_id,
                recorded: self.state.amount,
            });
        }
        Ok(())
    }

    pub fn is_settled(&self) -> bool {
        self.state.status != PaymentStatus::Pending
    }

    fn pending(&self) -> Result<(), NotPending> {
        if self.state.status == PaymentStatus::Pending {
            Ok(())
        } else {
            Err(NotPending {
                id: self.state.id,
                status: self.state.status,
            })
        }
    }

    /// The provider approved the charge.
    pub fn complete(
        &mut self,
        provider_ref: &str,
        now: DateTime<Utc>,
    ) -> Result<PaymentEvent, NotPending> {
        self.pending()?;
        self.state.status = PaymentStatus::Completed;
        self.state.provider_ref = Some(provider_ref.to_owned());
        self.state.attempts += 1;
        self.state.updated_at = now;
        Ok(PaymentEvent::Completed)
    }

    /// The provider declined the charge: nothing was taken.
    pub fn decline(
        &mut self,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<PaymentEvent, NotPending> {
        self.pending()?;
        self.state.status = PaymentStatus::Declined;
        self.state.decline_reason = Some(reason.to_owned());
        self.state.attempts += 1;
        self.state.updated_at = now;
        Ok(PaymentEvent::Declined {
            reason: reason.to_owned(),
        })
    }

    /// The provider did not answer: the payment stays PENDING and the caller retries.
    pub fn provider_unavailable(&mut self, now: DateTime<Utc>) -> Result<(), NotPending> {
        self.pending()?;
        self.state.attempts += 1;
        self.state.updated_at = now;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    Pending,
    Completed,
}

impl RefundStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Completed => "COMPLETED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Completed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// Every field of a refund, as a store keeps it: the refund's one raw form, for persistence
/// only (see [`PaymentState`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundState {
    pub id: RefundId,
    pub payment_id: PaymentId,
    /// Copied from the payment (immutable facts the worker and the event need).
    pub reservation_id: ReservationId,
    pub charge_ref: String,
    pub amount: Money,
    pub status: RefundStatus,
    /// The provider's reference of the refund (COMPLETED only).
    pub provider_ref: Option<String>,
    /// Provider calls that went unanswered so far.
    pub attempts: u32,
    /// When the worker should try (again).
    pub next_attempt_at: DateTime<Utc>,
    /// The event or request that made this refund owed (the refund event's causation).
    pub cause: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Giving a completed payment back, in full. Created PENDING; the settlement worker asks the
/// provider until it succeeds. Its fields are private: read them through the accessors,
/// change them through [`Refund::complete`] and [`Refund::postpone`]; stores use
/// [`RefundState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    state: RefundState,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refund {0} is already completed")]
pub struct AlreadyRefunded(pub RefundId);

/// How long to wait before asking the provider again after `attempts` unanswered calls:
/// 1 s, 2 s, 4 s … capped at `max`.
pub fn refund_backoff(attempts: u32, max: Duration) -> Duration {
    let exponent = attempts.saturating_sub(1).min(20);
    Duration::seconds(1_i64 << exponent).min(max)
}

impl Refund {
    /// The refund `payment` is owed now that its reservation is closed: only a COMPLETED
    /// payment has money to give back. `None` for PENDING or DECLINED payments.
    pub fn owed(payment: &Payment, cause: &str, now: DateTime<Utc>) -> Option<Self> {
        if payment.status() != PaymentStatus::Completed {
            return None;
        }
        Some(Self {
            state: RefundState {
                id: RefundId::new(),
                payment_id: payment.id(),
                reservation_id: payment.reservation_id(),
                charge_ref: payment.provider_ref().unwrap_or_default().to_owned(),
                amount: payment.amount(),
                status: RefundStatus::Pending,
                provider_ref: None,
                attempts: 0,
                next_attempt_at: now,
                cause: cause.to_owned(),
                created_at: now,
                updated_at: now,
            },
        })
    }

    /// Rebuilds a refund from what a store kept, as it was saved (no rule is checked). For
    /// the stores in `outbound` only (see [`RefundState`]; crate-private like
    /// `Payment::restore`).
    pub(crate) fn restore(state: RefundState) -> Self {
        Self { state }
    }

    /// Every field, for a store to write. For stores only (see [`RefundState`]).
    pub fn state(&self) -> &RefundState {
        &self.state
    }

    pub fn id(&self) -> RefundId {
        self.state.id
    }

    pub fn payment_id(&self) -> PaymentId {
        self.state.payment_id
    }

    pub fn reservation_id(&self) -> ReservationId {
        self.state.reservation_id
    }

    /// The card processor's reference of the charge being refunded.
    pub fn charge_ref(&self) -> &str {
        &self.state.charge_ref
    }

    pub fn amount(&self) -> Money {
        self.state.amount
    }

    pub fn status(&self) -> RefundStatus {
        self.state.status
    }

    /// The provider's reference of the refund (COMPLETED only).
    pub fn provider_ref(&self) -> Option<&str> {
        self.state.provider_ref.as_deref()
    }

    /// Provider calls that went unanswered so far.
    pub fn attempts(&self) -> u32 {
        self.state.attempts
    }

    /// When the worker should try (again).
    pub fn next_attempt_at(&self) -> DateTime<Utc> {
        self.state.next_attempt_at
    }

    /// The event or request that made this refund owed (the refund event's causation).
    pub fn cause(&self) -> &str {
        &self.state.cause
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.state.created_at
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.state.updated_at
    }

    /// The provider refunded it.
    pub fn complete(
        &mut self,
        provider_ref: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AlreadyRefunded> {
        if self.state.status == RefundStatus::Completed {
            return Err(AlreadyRefunded(self.state.id));
        }
        self.state.status = RefundStatus::Completed;
        self.state.provider_ref = Some(provider_ref.to_owned());
        self.state.updated_at = now;
        Ok(())
    }

    /// The provider did not answer: try again after a capped exponential backoff.
    pub fn postpone(&mut self, now: DateTime<Utc>, max_backoff: Duration) {
        self.state.attempts += 1;
        self.state.next_attempt_at = now + refund_backoff(self.state.attempts, max_backoff);
        self.state.updated_at = now;
    }
}

/// Why seat says a reservation is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosureReason {
    Cancelled,
    Expired,
    PaymentFailed,
}

impl ClosureReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
            Self::PaymentFailed => "PAYMENT_FAILED",
        }
    }
}

/// A reservation seat reported closed: any money taken for it is owed back, including a
/// payment that completes only afterwards (it was in flight when the reservation ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationClosure {
    pub reservation_id: ReservationId,
    pub reason: ClosureReason,
    pub closed_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(amount: i64) -> ChargeRequest {
        ChargeRequest {
            reservation_id: ReservationId::parse("0190a0a0-0000-7000-8000-000000000001").unwrap(),
            customer_id: CustomerId::parse("alice").unwrap(),
            amount: Money::krw(amount).unwrap(),
            token: PaymentToken::parse("tok_approve").unwrap(),
        }
    }

    #[test]
    fn a_payment_settles_once() {
        let now = Utc::now();
        let mut payment = Payment::start(charge(4000), now);
        assert_eq!(payment.status(), PaymentStatus::Pending);
        payment.provider_unavailable(now).unwrap();
        assert_eq!(payment.attempts(), 1);
        assert_eq!(
            payment.complete("ch_1", now).unwrap(),
            PaymentEvent::Completed
        );
        assert_eq!(payment.attempts(), 2);
        assert!(payment.is_settled());
        assert!(payment.decline("late", now).is_err());
        assert!(payment.complete("ch_2", now).is_err());
        assert!(payment.provider_unavailable(now).is_err());
        assert_eq!(payment.provider_ref(), Some("ch_1"));
    }

    #[test]
    fn repeats_must_match() {
        let payment = Payment::start(charge(4000), Utc::now());
        assert!(payment.check_repeat(&charge(4000)).is_ok());
        assert!(matches!(
            payment.check_repeat(&charge(5000)),
            Err(Mismatch::Amount { .. })
        ));
        let mut other = charge(4000);
        other.customer_id = CustomerId::parse("bob").unwrap();
        assert!(matches!(
            payment.check_repeat(&other),
            Err(Mismatch::Customer { .. })
        ));
        let mut new_token = charge(4000);
        new_token.token = PaymentToken::parse("tok_decline").unwrap();
        assert!(payment.check_repeat(&new_token).is_ok());
    }

    #[test]
    fn only_completed_payments_are_owed_a_refund() {
        let now = Utc::now();
        let mut payment = Payment::start(charge(4000), now);
        assert!(Refund::owed(&payment, "ev", now).is_none());
        let mut declined = payment.clone();
        declined.decline("card declined", now).unwrap();
        assert!(Refund::owed(&declined, "ev", now).is_none());
        payment.complete("ch_1", now).unwrap();
        let mut refund = Refund::owed(&payment, "ev", now).unwrap();
        assert_eq!(refund.amount(), payment.amount());
        assert_eq!(refund.charge_ref(), "ch_1");
        assert_eq!(refund.next_attempt_at(), now);
        refund.complete("rf_1", now).unwrap();
        assert_eq!(
            refund.complete("rf_2", now),
            Err(AlreadyRefunded(refund.id()))
        );
    }

    #[test]
    fn refund_retries_back_off_up_to_the_cap() {
        let max = Duration::seconds(30);
        let waits: Vec<i64> = (1..=8)
            .map(|n| refund_backoff(n, max).num_seconds())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(refund_backoff(u32::MAX, max), max);
        let now = Utc::now();
        let mut payment = Payment::start(charge(4000), now);
        payment.complete("ch", now).unwrap();
        let mut refund = Refund::owed(&payment, "ev", now).unwrap();
        refund.postpone(now, max);
        refund.postpone(now, max);
        assert_eq!(refund.attempts(), 2);
        assert_eq!(refund.next_attempt_at(), now + Duration::seconds(2));
    }
}
