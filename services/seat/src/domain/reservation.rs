//! The `Reservation` aggregate: one customer's hold on one seat for one window, and the saga
//! state it moves through.
//!
//! ```text
//! REQUESTED ──confirm──▶ CONFIRMED ──paid──▶ PAID ──register──▶ REGISTERED ──window ends──▶ COMPLETED
//!     │                     │                  │                    │
//!     ├─reject─▶ REJECTED   ├─declined─▶ PAYMENT_FAILED             │
//!     ├─hold runs out─▶ EXPIRED ◀─┘            │                    │
//!     └──────────────── cancel (any live state, before the window ends) ─▶ CANCELLED
//! ```
//!
//! Every transition returns the [`ReservationEvent`] it causes; the caller stores both in one
//! transaction. A transition that does not apply to the current state is a
//! [`TransitionError`], never a silent change.

use chrono::{DateTime, Duration, Utc};

use crate::domain::{
    CustomerId, Money, PaymentToken, ReservationId, ReservationPolicy, Seat, SeatId, TimeWindow,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    Requested,
    Confirmed,
    Paid,
    Registered,
    Completed,
    Rejected,
    PaymentFailed,
    Expired,
    Cancelled,
}

impl ReservationStatus {
    pub const ALL: [Self; 9] = [
        Self::Requested,
        Self::Confirmed,
        Self::Paid,
        Self::Registered,
        Self::Completed,
        Self::Rejected,
        Self::PaymentFailed,
        Self::Expired,
        Self::Cancelled,
    ];

    /// Live reservations hold their seat: no other live reservation may overlap them.
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            Self::Requested | Self::Confirmed | Self::Paid | Self::Registered
        )
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Confirmed => "CONFIRMED",
            Self::Paid => "PAID",
            Self::Registered => "REGISTERED",
            Self::Completed => "COMPLETED",
            Self::Rejected => "REJECTED",
            Self::PaymentFailed => "PAYMENT_FAILED",
            Self::Expired => "EXPIRED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelledBy {
    Customer,
    Admin,
}

/// What happened to a reservation; the published language's events are made from these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationEvent {
    Reserved,
    Confirmed,
    Rejected { reason: String },
    Paid { payment_id: String },
    PaymentFailed { reason: String },
    Registered { registration_id: String },
    Cancelled { by: CancelledBy, was_paid: bool },
    Expired { expired_in: ReservationStatus },
    Completed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} reservation cannot be {action}")]
pub struct TransitionError {
    pub from: &'static str,
    pub action: &'static str,
}

/// Where the payment of a confirmed reservation stands (seat's view of it). Read-only outside
/// the aggregate: only [`Reservation`]'s transitions move it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentProgress {
    attempts: u32,
    next_attempt_at: Option<DateTime<Utc>>,
    payment_id: Option<String>,
}

impl PaymentProgress {
    /// Calls to the payment service that did not get an answer (outage, open breaker).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// When the next attempt is due; `None` when no payment is pending.
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.next_attempt_at
    }

    /// The payment service's id of the approved payment.
    pub fn payment_id(&self) -> Option<&str> {
        self.payment_id.as_deref()
    }
}

/// One customer's hold on one seat for one window. Its fields are private: the state moves
/// only through the transitions below, each of which checks the rules and returns the events
/// it causes. Callers read it through the accessors; a store saves it from [`Self::state`]
/// and rebuilds it with `Reservation::restore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    id: ReservationId,
    seat_id: SeatId,
    customer_id: CustomerId,
    window: TimeWindow,
    price: Money,
    status: ReservationStatus,
    /// Why it ended as it did (rejection reason, decline reason).
    status_reason: Option<String>,
    hold_expires_at: DateTime<Utc>,
    payment_token: PaymentToken,
    payment: PaymentProgress,
    registration_id: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Optimistic concurrency: bumped on every stored change.
    version: i64,
}

/// A [`Reservation`] as a store keeps it: every field, plain and public. The one raw form of
/// the aggregate, for persistence only: a store writes what [`Reservation::state`] gives and
/// hands what it read back to `Reservation::restore`, which is crate-private, so no other
/// crate can make a reservation in a state of its choosing. Changing one of these fields
/// changes no reservation: a change of state is a transition of the aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationState {
    pub id: ReservationId,
    pub seat_id: SeatId,
    pub customer_id: CustomerId,
    pub window: TimeWindow,
    pub price: Money,
    pub status: ReservationStatus,
    pub status_reason: Option<String>,
    pub hold_expires_at: DateTime<Utc>,
    pub payment_token: PaymentToken,
    /// [`PaymentProgress::attempts`].
    pub payment_attempts: u32,
    /// [`PaymentProgress::next_attempt_at`].
    pub next_payment_at: Option<DateTime<Utc>>,
    /// [`PaymentProgress::payment_id`].
    pub payment_id: Option<String>,
    pub registration_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The version it was stored at (the store bumps it on every save).
    pub version: i64,
}

/// Why a seat cannot be requested at all (before any overlap check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("seat {0} is not taking reservations")]
    SeatDisabled(SeatId),
    #[error("the price overflows")]
    Price,
}

impl Reservation {
    /// A customer asks for `seat` during `window`. Whether the seat is free is the
    /// repository's call, atomically with storing it.
    pub fn request(
        seat: &Seat,
        customer_id: CustomerId,
        window: TimeWindow,
        payment_token: PaymentToken,
        policy: &ReservationPolicy,
        now: DateTime<Utc>,
    ) -> Result<(Self, ReservationEvent), RequestError> {
        if !seat.enabled {
            return Err(RequestError::SeatDisabled(seat.id.clone()));
        }
        let price = seat
            .hourly_price
            .times(window.hours())
            .map_err(|_| RequestError::Price)?;
        let reservation = Self {
            id: ReservationId::new(),
            seat_id: seat.id.clone(),
            customer_id,
            window,
            price,
            status: ReservationStatus::Requested,
            status_reason: None,
            hold_expires_at: now + policy.hold,
            payment_token,
            payment: PaymentProgress::default(),
            registration_id: None,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        Ok((reservation, ReservationEvent::Reserved))
    }

    /// Rebuilds a stored reservation from what [`Self::state`] gave the store. For the stores
    /// in `outbound` only (nothing else in the crate calls it): no rule is checked, the state
    /// is taken as it was saved.
    pub(crate) fn restore(state: ReservationState) -> Self {
        let ReservationState {
            id,
            seat_id,
            customer_id,
            window,
            price,
            status,
            status_reason,
            hold_expires_at,
            payment_token,
            payment_attempts,
            next_payment_at,
            payment_id,
            registration_id,
            created_at,
            updated_at,
            version,
        } = state;
        Self {
            id,
            seat_id,
            customer_id,
            window,
            price,
            status,
            status_reason,
            hold_expires_at,
            payment_token,
            payment: PaymentProgress {
                attempts: payment_attempts,
                next_attempt_at: next_payment_at,
                payment_id,
            },
            registration_id,
            created_at,
            updated_at,
            version,
        }
    }

    /// Every field, for a store to write (see [`ReservationState`]).
    pub fn state(&self) -> ReservationState {
        let Self {
            id,
            seat_id,
            customer_id,
            window,
            price,
            status,
            status_reason,
            hold_expires_at,
            payment_token,
            payment:
                PaymentProgress {
                    attempts,
                    next_attempt_at,
                    payment_id,
                },
            registration_id,
            created_at,
            updated_at,
            version,
        } = self;
        ReservationState {
            id: *id,
            seat_id: seat_id.clone(),
            customer_id: customer_id.clone(),
            window: *window,
            price: *price,
            status: *status,
            status_reason: status_reason.clone(),
            hold_expires_at: *hold_expires_at,
            payment_token: payment_token.clone(),
            payment_attempts: *attempts,
            next_payment_at: *next_attempt_at,
            payment_id: payment_id.clone(),
            registration_id: registration_id.clone(),
            created_at: *created_at,
            updated_at: *updated_at,
            version: *version,
        }
    }

    pub fn id(&self) -> ReservationId {
        self.id
    }

    pub fn seat_id(&self) -> &SeatId {
        &self.seat_id
    }

    pub fn customer_id(&self) -> &CustomerId {
        &self.customer_id
    }

    pub fn window(&self) -> TimeWindow {
        self.window
    }

    pub fn price(&self) -> Money {
        self.price
    }

    pub fn status(&self) -> ReservationStatus {
        self.status
    }

    /// Why it ended as it did (rejection reason, decline reason).
    pub fn status_reason(&self) -> Option<&str> {
        self.status_reason.as_deref()
    }

    /// When an unpaid reservation stops holding its seat.
    pub fn hold_expires_at(&self) -> DateTime<Utc> {
        self.hold_expires_at
    }

    pub fn payment_token(&self) -> &PaymentToken {
        &self.payment_token
    }

    pub fn payment(&self) -> &PaymentProgress {
        &self.payment
    }

    /// Registration's id of the booking. Also set on a reservation still CONFIRMED whose
    /// registration arrived before its payment (see [`Self::register`]).
    pub fn registration_id(&self) -> Option<&str> {
        self.registration_id.as_deref()
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    /// The version it was read at: what a save expects to find stored.
    pub fn version(&self) -> i64 {
        self.version
    }

    fn transition(
        &mut self,
        allowed_from: &[ReservationStatus],
        to: ReservationStatus,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if !allowed_from.contains(&self.status) {
            return Err(TransitionError {
                from: self.status.as_str(),
                action,
            });
        }
        self.status = to;
        self.updated_at = now;
        Ok(())
    }

    /// The cafe confirmed the booking: payment is due now.
    pub fn confirm(&mut self, now: DateTime<Utc>) -> Result<ReservationEvent, TransitionError> {
        use ReservationStatus::*;
        self.transition(&[Requested], Confirmed, "confirmed", now)?;
        self.payment.next_attempt_at = Some(now);
        Ok(ReservationEvent::Confirmed)
    }

    pub fn reject(
        &mut self,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ReservationEvent, TransitionError> {
        use ReservationStatus::*;
        self.transition(&[Requested], Rejected, "rejected", now)?;
        self.status_reason = Some(reason.to_owned());
        Ok(ReservationEvent::Rejected {
            reason: reason.to_owned(),
        })
    }

    /// Payment approved (the synchronous answer, or `PaymentCompleted` when that answer was
    /// lost). A registration that arrived first (see [`Self::register`]) follows at once.
    pub fn mark_paid(
        &mut self,
        payment_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<ReservationEvent>, TransitionError> {
        use ReservationStatus::*;
        self.transition(&[Confirmed], Paid, "paid", now)?;
        self.payment.payment_id = Some(payment_id.to_owned());
        self.payment.next_attempt_at = None;
        let mut events = vec![ReservationEvent::Paid {
            payment_id: payment_id.to_owned(),
        }];
        if let Some(registration_id) = self.registration_id.clone() {
            self.transition(&[Paid], Registered, "registered", now)?;
            events.push(ReservationEvent::Registered { registration_id });
        }
        Ok(events)
    }

    /// Whether registration already registered this CONFIRMED reservation: its payment has
    /// completed, seat has not heard yet.
    pub fn registered_before_paid(&self) -> bool {
        self.status == ReservationStatus::Confirmed && self.registration_id.is_some()
    }

    pub fn mark_payment_failed(
        &mut self,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ReservationEvent, TransitionError> {
        use ReservationStatus::*;
        self.transition(&[Confirmed], PaymentFailed, "marked payment-failed", now)?;
        self.status_reason = Some(reason.to_owned());
        self.payment.next_attempt_at = None;
        Ok(ReservationEvent::PaymentFailed {
            reason: reason.to_owned(),
        })
    }

    /// The payment service could not be reached: try again after `backoff`. No event: the
    /// reservation stays CONFIRMED with its payment pending.
    pub fn postpone_payment(
        &mut self,
        backoff: Duration,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if self.status != ReservationStatus::Confirmed {
            return Err(TransitionError {
                from: self.status.as_str(),
                action: "retried for payment",
            });
        }
        self.payment.attempts += 1;
        self.payment.next_attempt_at = Some(now + backoff);
        self.updated_at = now;
        Ok(())
    }

    /// Registration registered the booking. It does so only once the payment completed, but
    /// its `SeatRegistered` and payment's `PaymentCompleted` travel on different topics, in no
    /// order between them: on a reservation still CONFIRMED (the synchronous answer lost, the
    /// payment topic behind) the registration is kept, with no event yet, and the payment,
    /// however it comes, moves the reservation through PAID to REGISTERED (see
    /// [`Self::mark_paid`]). Dropping it instead left the reservation PAID for good.
    pub fn register(
        &mut self,
        registration_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<ReservationEvent>, TransitionError> {
        use ReservationStatus::*;
        if self.status == Confirmed && self.registration_id.is_none() {
            self.registration_id = Some(registration_id.to_owned());
            self.updated_at = now;
            return Ok(Vec::new());
        }
        self.transition(&[Paid], Registered, "registered", now)?;
        self.registration_id = Some(registration_id.to_owned());
        Ok(vec![ReservationEvent::Registered {
            registration_id: registration_id.to_owned(),
        }])
    }

    /// Cancels a live reservation whose window has not ended.
    pub fn cancel(
        &mut self,
        by: CancelledBy,
        now: DateTime<Utc>,
    ) -> Result<ReservationEvent, TransitionError> {
        use ReservationStatus::*;
        if self.status.is_live() && self.window.has_ended(now) {
            return Err(TransitionError {
                from: "finished",
                action: "cancelled",
            });
        }
        let was_paid = matches!(self.status, Paid | Registered);
        self.transition(
            &[Requested, Confirmed, Paid, Registered],
            Cancelled,
            "cancelled",
            now,
        )?;
        self.payment.next_attempt_at = None;
        Ok(ReservationEvent::Cancelled { by, was_paid })
    }

    /// The hold ran out before payment.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<ReservationEvent, TransitionError> {
        use ReservationStatus::*;
        if now < self.hold_expires_at {
            return Err(TransitionError {
                from: self.status.as_str(),
                action: "expired before its hold ends",
            });
        }
        if self.registered_before_paid() {
            // Paid (registration says so): the payment's answer is due, not the hold's end.
            return Err(TransitionError {
                from: "registered before its payment was seen",
                action: "expired",
            });
        }
        let expired_in = self.status;
        self.transition(&[Requested, Confirmed], Expired, "expired", now)?;
        self.payment.next_attempt_at = None;
        Ok(ReservationEvent::Expired { expired_in })
    }

    /// The window of a registered reservation ended.
    pub fn complete(&mut self, now: DateTime<Utc>) -> Result<ReservationEvent, TransitionError> {
        use ReservationStatus::*;
        if !self.window.has_ended(now) {
            return Err(TransitionError {
                from: self.status.as_str(),
                action: "completed before its window ends",
            });
        }
        self.transition(&[Registered], Completed, "completed", now)?;
        Ok(ReservationEvent::Completed)
    }

    /// Whether a payment attempt is due at `now`.
    pub fn payment_due(&self, now: DateTime<Utc>) -> bool {
        self.status == ReservationStatus::Confirmed
            && self.payment.next_attempt_at.is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::SeatKind;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
    }

    fn seat(enabled: bool) -> Seat {
        Seat {
            id: SeatId::parse("A-01").unwrap(),
            zone: "A".into(),
            kind: SeatKind::OpenDesk,
            hourly_price: Money::krw(2500).unwrap(),
            enabled,
        }
    }

    fn requested() -> Reservation {
        let policy = ReservationPolicy::default();
        let window =
            TimeWindow::for_new_reservation(now() + Duration::hours(1), 2, &policy, now()).unwrap();
        Reservation::request(
            &seat(true),
            CustomerId::parse("alice").unwrap(),
            window,
            PaymentToken::parse("tok_approve").unwrap(),
            &policy,
            now(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn happy_path() {
        let mut r = requested();
        assert_eq!(r.price.won(), 5000);
        assert_eq!(r.hold_expires_at, now() + Duration::minutes(10));
        assert_eq!(r.confirm(now()).unwrap(), ReservationEvent::Confirmed);
        assert!(r.payment_due(now()));
        r.mark_paid("pay-1", now()).unwrap();
        assert!(!r.payment_due(now()));
        r.register("reg-1", now()).unwrap();
        assert!(r.complete(now()).is_err(), "not before the window ends");
        r.complete(now() + Duration::hours(3)).unwrap();
        assert_eq!(r.status, ReservationStatus::Completed);
        assert!(!r.status.is_live());
    }

    #[test]
    fn illegal_transitions_are_errors_and_change_nothing() {
        let mut r = requested();
        let before = r.clone();
        assert!(r.mark_paid("p", now()).is_err());
        assert!(r.register("g", now()).is_err());
        assert!(r.complete(now() + Duration::days(1)).is_err());
        assert_eq!(r, before);
        r.reject("full", now()).unwrap();
        assert!(r.confirm(now()).is_err());
        assert!(r.cancel(CancelledBy::Customer, now()).is_err());
    }

    #[test]
    fn expiry_only_after_the_hold_and_only_unpaid() {
        let mut r = requested();
        assert!(r.expire(now()).is_err());
        r.confirm(now()).unwrap();
        let later = now() + Duration::minutes(11);
        assert_eq!(
            r.expire(later).unwrap(),
            ReservationEvent::Expired {
                expired_in: ReservationStatus::Confirmed
            }
        );
        let mut paid = requested();
        paid.confirm(now()).unwrap();
        paid.mark_paid("p", now()).unwrap();
        assert!(paid.expire(later).is_err());
    }

    #[test]
    fn a_registration_before_the_payment_is_kept_and_follows_the_payment() {
        let mut r = requested();
        r.confirm(now()).unwrap();
        assert_eq!(r.register("reg-1", now()).unwrap(), []);
        assert_eq!(r.status, ReservationStatus::Confirmed);
        assert!(r.registered_before_paid());
        assert!(
            r.expire(now() + Duration::minutes(11)).is_err(),
            "paid, by registration's word: no expiry"
        );
        assert!(r.register("reg-2", now()).is_err(), "one registration");
        assert_eq!(
            r.mark_paid("pay-1", now()).unwrap(),
            [
                ReservationEvent::Paid {
                    payment_id: "pay-1".into()
                },
                ReservationEvent::Registered {
                    registration_id: "reg-1".into()
                }
            ]
        );
        assert_eq!(r.status, ReservationStatus::Registered);
        assert!(!r.registered_before_paid());
        assert!(r.mark_paid("pay-1", now()).is_err(), "paid once");
    }

    #[test]
    fn cancel_reports_whether_it_was_paid_and_not_after_the_window() {
        let mut r = requested();
        r.confirm(now()).unwrap();
        r.mark_paid("p", now()).unwrap();
        assert_eq!(
            r.cancel(CancelledBy::Customer, now()).unwrap(),
            ReservationEvent::Cancelled {
                by: CancelledBy::Customer,
                was_paid: true
            }
        );
        let mut ended = requested();
        assert!(
            ended
                .cancel(CancelledBy::Admin, now() + Duration::hours(4))
                .is_err()
        );
    }

    #[test]
    fn payment_postponed_keeps_it_confirmed() {
        let mut r = requested();
        r.confirm(now()).unwrap();
        r.postpone_payment(Duration::seconds(4), now()).unwrap();
        assert_eq!(r.status, ReservationStatus::Confirmed);
        assert_eq!(r.payment.attempts, 1);
        assert!(!r.payment_due(now()));
        assert!(r.payment_due(now() + Duration::seconds(4)));
    }

    #[test]
    fn a_restored_state_is_the_same_reservation() {
        let mut r = requested();
        r.confirm(now()).unwrap();
        r.postpone_payment(Duration::seconds(4), now()).unwrap();
        r.register("reg-1", now()).unwrap();
        assert_eq!(Reservation::restore(r.state()), r);
        r.mark_paid("pay-1", now()).unwrap();
        assert_eq!(Reservation::restore(r.state()), r);
    }

    #[test]
    fn disabled_seats_take_no_reservations() {
        let policy = ReservationPolicy::default();
        let window = TimeWindow::for_new_reservation(now(), 1, &policy, now()).unwrap();
        let err = Reservation::request(
            &seat(false),
            CustomerId::parse("bob").unwrap(),
            window,
            PaymentToken::parse("tok_approve").unwrap(),
            &policy,
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, RequestError::SeatDisabled(_)));
    }
}
