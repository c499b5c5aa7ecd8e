//! The `Booking` aggregate: the cafe's side of one reservation, from the moment the seat
//! service announces it until it is registered (an entry pass exists) or closed.
//!
//! ```text
//! PENDING ──confirm (admin or auto-confirm)──▶ CONFIRMED ──paid──▶ REGISTERED
//!    │                                            │                   │
//!    ├──reject (admin)──▶ REJECTED                │                   │
//!    └───────── reservation cancelled / expired / payment failed ─────┴──▶ CANCELLED
//! ```
//!
//! Every transition returns the [`BookingEvent`] it causes; the caller stores both in one
//! transaction. A transition that does not apply to the current state is a
//! [`TransitionError`] and changes nothing.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::{
    AdminId, CustomerId, EntryPassCode, Money, RegistrationId, RejectionReason, ReservationId,
    SeatId, Window,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookingStatus {
    Pending,
    Confirmed,
    Rejected,
    Registered,
    Cancelled,
}

impl BookingStatus {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Confirmed,
        Self::Rejected,
        Self::Registered,
        Self::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::Registered => "REGISTERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parses a status name in any case (`pending`, `PENDING`).
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(raw))
    }

    /// A closed booking never changes again.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Rejected | Self::Cancelled)
    }
}

impl fmt::Display for BookingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who decided a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decider {
    Admin(AdminId),
    /// The cafe's auto-confirm policy.
    AutoConfirm,
}

impl Decider {
    /// The name on the wire (`confirmed_by`) and in the database.
    pub const AUTO_CONFIRM: &'static str = "auto-confirm";

    pub fn as_str(&self) -> &str {
        match self {
            Self::Admin(admin) => admin.as_str(),
            Self::AutoConfirm => Self::AUTO_CONFIRM,
        }
    }

    /// The decider as stored by [`Decider::as_str`].
    pub fn restore(raw: &str) -> Option<Self> {
        if raw == Self::AUTO_CONFIRM {
            Some(Self::AutoConfirm)
        } else {
            AdminId::parse(raw).ok().map(Self::Admin)
        }
    }
}

/// A paid booking's registration with the cafe: what lets the customer in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    id: RegistrationId,
    entry_pass_code: EntryPassCode,
    registered_at: DateTime<Utc>,
}

impl Registration {
    /// A new registration with a fresh id and a random entry pass code.
    pub fn issue(now: DateTime<Utc>) -> Self {
        Self {
            id: RegistrationId::new(),
            entry_pass_code: EntryPassCode::random(),
            registered_at: now,
        }
    }

    /// A registration as a store kept it (part of a [`BookingState`]). Anything but a store
    /// makes one with [`Registration::issue`].
    pub fn restore(
        id: RegistrationId,
        entry_pass_code: EntryPassCode,
        registered_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            entry_pass_code,
            registered_at,
        }
    }

    pub fn id(&self) -> RegistrationId {
        self.id
    }

    pub fn entry_pass_code(&self) -> &EntryPassCode {
        &self.entry_pass_code
    }

    pub fn registered_at(&self) -> DateTime<Utc> {
        self.registered_at
    }
}

/// Why the reservation behind a booking ended, as the seat service reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationEnded {
    CancelledByCustomer,
    CancelledByAdmin,
    /// The hold ran out before payment.
    Expired,
    PaymentFailed {
        reason: String,
    },
}

impl ReservationEnded {
    /// The reason recorded on the booking and published in `RegistrationCancelled`.
    pub fn reason(&self) -> String {
        match self {
            Self::CancelledByCustomer => "reservation cancelled by the customer".to_owned(),
            Self::CancelledByAdmin => "reservation cancelled by an admin".to_owned(),
            Self::Expired => "reservation expired before it was paid".to_owned(),
            Self::PaymentFailed { reason } => format!("payment failed: {reason}"),
        }
    }
}

/// What happened to a booking; the published language's events are made from these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingEvent {
    Confirmed {
        by: Decider,
    },
    Rejected {
        by: AdminId,
        reason: RejectionReason,
    },
    /// The booking's registration (now on the booking) was issued.
    Registered,
    Cancelled {
        /// The registration that was cancelled, when there was one.
        registration_id: Option<RegistrationId>,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} booking cannot be {action}")]
pub struct TransitionError {
    pub from: BookingStatus,
    pub action: &'static str,
}

/// What the seat service told us about a new reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBooking {
    pub reservation_id: ReservationId,
    pub seat_id: SeatId,
    pub customer_id: CustomerId,
    pub window: Window,
    pub price: Money,
    pub hold_expires_at: DateTime<Utc>,
}

/// Every field of a booking, as a store keeps it: the aggregate's one raw form.
///
/// Only persistence uses it: a store reads [`Booking::state`] to write a booking and hands
/// what it read back to `Booking::restore`, which is crate-private, so no other crate can make
/// a booking in a state of its choosing. Everything else reads a booking through its
/// accessors and changes it through its transitions, which enforce the rules and return the
/// events they cause; changing a field of a `BookingState` changes no booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingState {
    pub reservation_id: ReservationId,
    pub seat_id: SeatId,
    pub customer_id: CustomerId,
    pub window: Window,
    pub price: Money,
    /// Unpaid at this instant, the seat service expires the reservation.
    pub hold_expires_at: DateTime<Utc>,
    pub status: BookingStatus,
    /// Who confirmed or rejected it.
    pub decided_by: Option<Decider>,
    /// Why it was rejected or cancelled.
    pub reason: Option<String>,
    pub registration: Option<Registration>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic concurrency: the version the store holds this booking at. The store is the
    /// one place it goes up (by one per stored change, see `BookingStore::save`); no
    /// transition touches it.
    pub version: i64,
}

/// A booking. Its fields are private: read them through the accessors, change them through
/// the transitions; stores use [`BookingState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    state: BookingState,
}

impl Booking {
    /// A new PENDING booking for a reservation the seat service just took.
    pub fn open(new: NewBooking, now: DateTime<Utc>) -> Self {
        Self {
            state: BookingState {
                reservation_id: new.reservation_id,
                seat_id: new.seat_id,
                customer_id: new.customer_id,
                window: new.window,
                price: new.price,
                hold_expires_at: new.hold_expires_at,
                status: BookingStatus::Pending,
                decided_by: None,
                reason: None,
                registration: None,
                created_at: now,
                updated_at: now,
                version: 0,
            },
        }
    }

    /// Rebuilds a booking from what a store kept, as it was saved (no rule is checked). For
    /// the stores in `outbound` only (see [`BookingState`]).
    pub(crate) fn restore(state: BookingState) -> Self {
        Self { state }
    }

    /// Every field, for a store to write. For stores only (see [`BookingState`]).
    pub fn state(&self) -> &BookingState {
        &self.state
    }

    pub fn reservation_id(&self) -> ReservationId {
        self.state.reservation_id
    }

    pub fn seat_id(&self) -> &SeatId {
        &self.state.seat_id
    }

    pub fn customer_id(&self) -> &CustomerId {
        &self.state.customer_id
    }

    pub fn window(&self) -> Window {
        self.state.window
    }

    pub fn price(&self) -> Money {
        self.state.price
    }

    /// Unpaid at this instant, the seat service expires the reservation.
    pub fn hold_expires_at(&self) -> DateTime<Utc> {
        self.state.hold_expires_at
    }

    pub fn status(&self) -> BookingStatus {
        self.state.status
    }

    /// Who confirmed or rejected it.
    pub fn decided_by(&self) -> Option<&Decider> {
        self.state.decided_by.as_ref()
    }

    /// Why it was rejected or cancelled.
    pub fn reason(&self) -> Option<&str> {
        self.state.reason.as_deref()
    }

    /// Its registration, once paid.
    pub fn registration(&self) -> Option<&Registration> {
        self.state.registration.as_ref()
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.state.created_at
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.state.updated_at
    }

    /// The version the store holds this booking at (what a save expects to find).
    pub fn version(&self) -> i64 {
        self.state.version
    }

    fn transition(
        &mut self,
        allowed_from: &[BookingStatus],
        to: BookingStatus,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if !allowed_from.contains(&self.state.status) {
            return Err(TransitionError {
                from: self.state.status,
                action,
            });
        }
        self.state.status = to;
        self.state.updated_at = now;
        Ok(())
    }

    pub fn confirm(
        &mut self,
        by: Decider,
        now: DateTime<Utc>,
    ) -> Result<BookingEvent, TransitionError> {
        use BookingStatus::*;
        self.transition(&[Pending], Confirmed, "confirmed", now)?;
        self.state.decided_by = Some(by.clone());
        Ok(BookingEvent::Confirmed { by })
    }

    pub fn reject(
        &mut self,
        by: AdminId,
        reason: RejectionReason,
        now: DateTime<Utc>,
    ) -> Result<BookingEvent, TransitionError> {
        use BookingStatus::*;
        self.transition(&[Pending], Rejected, "rejected", now)?;
        self.state.decided_by = Some(Decider::Admin(by.clone()));
        self.state.reason = Some(reason.to_string());
        Ok(BookingEvent::Rejected { by, reason })
    }

    /// The confirmed booking was paid: register it with `registration`.
    pub fn register(
        &mut self,
        registration: Registration,
        now: DateTime<Utc>,
    ) -> Result<BookingEvent, TransitionError> {
        use BookingStatus::*;
        self.transition(&[Confirmed], Registered, "registered", now)?;
        self.state.registration = Some(registration);
        Ok(BookingEvent::Registered)
    }

    /// The reservation behind the booking ended before its time: close the booking (and its
    /// registration, if it has one).
    pub fn cancel(
        &mut self,
        ended: &ReservationEnded,
        now: DateTime<Utc>,
    ) -> Result<BookingEvent, TransitionError> {
        use BookingStatus::*;
        self.transition(
            &[Pending, Confirmed, Registered],
            Cancelled,
            "cancelled",
            now,
        )?;
        let reason = ended.reason();
        self.state.reason = Some(reason.clone());
        Ok(BookingEvent::Cancelled {
            registration_id: self.state.registration.as_ref().map(|r| r.id),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap()
    }

    fn pending() -> Booking {
        Booking::open(
            NewBooking {
                reservation_id: ReservationId::parse(&uuid::Uuid::now_v7().to_string()).unwrap(),
                seat_id: SeatId::parse("A-01").unwrap(),
                customer_id: CustomerId::parse("alice").unwrap(),
                window: Window::new(now() + Duration::hours(1), now() + Duration::hours(3))
                    .unwrap(),
                price: Money::krw(5000).unwrap(),
                hold_expires_at: now() + Duration::minutes(10),
            },
            now(),
        )
    }

    fn admin() -> AdminId {
        AdminId::parse("root").unwrap()
    }

    #[test]
    fn happy_path() {
        let mut b = pending();
        assert_eq!(b.status(), BookingStatus::Pending);
        assert_eq!(
            b.confirm(Decider::AutoConfirm, now()).unwrap(),
            BookingEvent::Confirmed {
                by: Decider::AutoConfirm
            }
        );
        assert_eq!(b.decided_by(), Some(&Decider::AutoConfirm));
        let registration = Registration::issue(now());
        assert_eq!(
            b.register(registration.clone(), now()).unwrap(),
            BookingEvent::Registered
        );
        assert_eq!(b.status(), BookingStatus::Registered);
        assert_eq!(b.registration(), Some(&registration));
        assert_eq!(
            b.cancel(&ReservationEnded::CancelledByCustomer, now())
                .unwrap(),
            BookingEvent::Cancelled {
                registration_id: Some(registration.id),
                reason: "reservation cancelled by the customer".into()
            }
        );
    }

    #[test]
    fn illegal_transitions_are_errors_and_change_nothing() {
        let mut b = pending();
        let before = b.clone();
        assert_eq!(
            b.register(Registration::issue(now()), now()),
            Err(TransitionError {
                from: BookingStatus::Pending,
                action: "registered"
            })
        );
        assert_eq!(b, before);

        b.reject(admin(), RejectionReason::parse("full").unwrap(), now())
            .unwrap();
        assert_eq!(b.reason(), Some("full"));
        let rejected = b.clone();
        assert!(b.confirm(Decider::Admin(admin()), now()).is_err());
        assert!(b.cancel(&ReservationEnded::Expired, now()).is_err());
        assert!(
            b.reject(admin(), RejectionReason::parse("again").unwrap(), now())
                .is_err()
        );
        assert_eq!(b, rejected);

        let mut confirmed = pending();
        confirmed.confirm(Decider::Admin(admin()), now()).unwrap();
        let err = confirmed
            .confirm(Decider::Admin(admin()), now())
            .unwrap_err();
        assert_eq!(err.to_string(), "a CONFIRMED booking cannot be confirmed");
    }

    #[test]
    fn cancelling_a_pending_booking_names_no_registration() {
        let mut b = pending();
        let event = b
            .cancel(
                &ReservationEnded::PaymentFailed {
                    reason: "card declined".into(),
                },
                now(),
            )
            .unwrap();
        assert_eq!(
            event,
            BookingEvent::Cancelled {
                registration_id: None,
                reason: "payment failed: card declined".into()
            }
        );
        assert_eq!(b.status(), BookingStatus::Cancelled);
        assert!(b.status().is_closed());
    }

    #[test]
    fn statuses_parse_in_any_case() {
        assert_eq!(
            BookingStatus::parse("pending"),
            Some(BookingStatus::Pending)
        );
        assert_eq!(
            BookingStatus::parse("REGISTERED"),
            Some(BookingStatus::Registered)
        );
        assert_eq!(BookingStatus::parse("paid"), None);
        assert_eq!(Decider::restore("auto-confirm"), Some(Decider::AutoConfirm));
        assert_eq!(Decider::restore("root"), Some(Decider::Admin(admin())));
    }
}
