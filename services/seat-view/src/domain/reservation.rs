//! A reservation as the seat service last told it: the authoritative status and what the
//! reservation holds, kept from the seat topic.
//!
//! Every reservation event of the seat service carries the full [`ReservationRef`], so any of
//! them can create the entry (the `SeatReserved` may have been dead-lettered, or the view may
//! have been rebuilt from a topic whose oldest messages were compacted away). Events of one
//! reservation arrive in order on the seat topic (key = reservation id), so the newest event
//! sets the status; the inbox absorbs redeliveries before they get here.

use chrono::{DateTime, Utc};

use crate::domain::{CustomerId, ExternalRef, Money, ReservationId, SeatId};

/// The reservation states of the saga (the seat service's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    Requested,
    Confirmed,
    Rejected,
    Paid,
    PaymentFailed,
    Registered,
    Cancelled,
    Expired,
    Completed,
}

/// How a reservation in some status shows on the seat board while its window covers the
/// instant asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardPresence {
    /// Paid for (or used): the seat is taken.
    Occupies,
    /// Not paid yet but holding the seat.
    Holds,
    /// Released: the reservation no longer shows.
    None,
}

impl ReservationStatus {
    pub const ALL: [Self; 9] = [
        Self::Requested,
        Self::Confirmed,
        Self::Rejected,
        Self::Paid,
        Self::PaymentFailed,
        Self::Registered,
        Self::Cancelled,
        Self::Expired,
        Self::Completed,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
            Self::Paid => "PAID",
            Self::PaymentFailed => "PAYMENT_FAILED",
            Self::Registered => "REGISTERED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
            Self::Completed => "COMPLETED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    pub fn presence(&self) -> BoardPresence {
        match self {
            // COMPLETED keeps showing over its (past) window: someone did sit there.
            Self::Paid | Self::Registered | Self::Completed => BoardPresence::Occupies,
            Self::Requested | Self::Confirmed => BoardPresence::Holds,
            Self::Rejected | Self::PaymentFailed | Self::Cancelled | Self::Expired => {
                BoardPresence::None
            }
        }
    }
}

/// The reserved window `[starts_at, ends_at)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a window must end after it starts ({starts_at} .. {ends_at})")]
pub struct EmptyWindow {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

impl Window {
    pub fn new(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Result<Self, EmptyWindow> {
        if ends_at <= starts_at {
            return Err(EmptyWindow { starts_at, ends_at });
        }
        Ok(Self { starts_at, ends_at })
    }

    pub fn starts_at(&self) -> DateTime<Utc> {
        self.starts_at
    }

    pub fn ends_at(&self) -> DateTime<Utc> {
        self.ends_at
    }

    pub fn covers(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.ends_at
    }

    /// Whole hours, rounded up (windows are whole hours; a stray one still shows sensibly).
    pub fn hours(&self) -> u8 {
        let secs = (self.ends_at - self.starts_at).num_seconds();
        u8::try_from((secs + 3599) / 3600).unwrap_or(u8::MAX)
    }
}

/// Which reservation, of whom, holding which seat when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRef {
    pub id: ReservationId,
    pub seat_id: SeatId,
    pub customer_id: CustomerId,
    pub window: Window,
}

/// Who cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceller {
    Customer,
    Admin,
}

/// What the seat service says happened to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Reserved {
        hours: u8,
        price: Money,
        hold_expires_at: DateTime<Utc>,
    },
    Confirmed,
    Rejected {
        reason: String,
    },
    Paid {
        payment_id: ExternalRef,
        amount: Money,
    },
    PaymentFailed {
        reason: String,
    },
    Registered {
        registration_id: ExternalRef,
    },
    Cancelled {
        by: Canceller,
    },
    Expired {
        expired_in: String,
    },
    Completed,
}

impl Transition {
    /// The status the reservation is in after this.
    pub fn status(&self) -> ReservationStatus {
        match self {
            Self::Reserved { .. } => ReservationStatus::Requested,
            Self::Confirmed => ReservationStatus::Confirmed,
            Self::Rejected { .. } => ReservationStatus::Rejected,
            Self::Paid { .. } => ReservationStatus::Paid,
            Self::PaymentFailed { .. } => ReservationStatus::PaymentFailed,
            Self::Registered { .. } => ReservationStatus::Registered,
            Self::Cancelled { .. } => ReservationStatus::Cancelled,
            Self::Expired { .. } => ReservationStatus::Expired,
            Self::Completed => ReservationStatus::Completed,
        }
    }

    /// Why the reservation ended where it did, in words a customer reads.
    fn reason(&self) -> Option<String> {
        match self {
            Self::Rejected { reason } | Self::PaymentFailed { reason } => Some(reason.clone()),
            Self::Cancelled {
                by: Canceller::Customer,
            } => Some("cancelled by the customer".to_owned()),
            Self::Cancelled {
                by: Canceller::Admin,
            } => Some("cancelled by the cafe".to_owned()),
            Self::Expired { expired_in } => Some(format!(
                "not paid before the hold ran out (was {expired_in})"
            )),
            _ => None,
        }
    }
}

/// One reservation event of the seat topic, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationChange {
    pub reference: ReservationRef,
    pub transition: Transition,
    pub occurred_at: DateTime<Utc>,
}

/// A reservation in the customer's timeline (the seat topic's part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub reference: ReservationRef,
    pub hours: u8,
    /// Known from `SeatReserved` (or the amount paid); absent if neither was seen.
    pub price: Option<Money>,
    /// Known from `SeatReserved`.
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub status: ReservationStatus,
    pub reason: Option<String>,
    pub payment_id: Option<ExternalRef>,
    pub registration_id: Option<ExternalRef>,
    /// When it was reserved (`SeatReserved`'s `occurredAt`; else the first event seen).
    pub created_at: DateTime<Utc>,
    /// The newest `occurredAt` applied.
    pub updated_at: DateTime<Utc>,
}

impl Reservation {
    /// The entry after `change`, whether or not one existed before (upsert).
    pub fn evolve(existing: Option<Self>, change: &ReservationChange) -> Self {
        let at = change.occurred_at;
        let mut entry = existing.unwrap_or_else(|| Self {
            reference: change.reference.clone(),
            hours: change.reference.window.hours(),
            price: None,
            hold_expires_at: None,
            status: change.transition.status(),
            reason: None,
            payment_id: None,
            registration_id: None,
            created_at: at,
            updated_at: at,
        });
        // The newest event's reference is the truth (they never differ in practice).
        entry.reference = change.reference.clone();
        entry.status = change.transition.status();
        entry.reason = change.transition.reason();
        entry.created_at = entry.created_at.min(at);
        entry.updated_at = entry.updated_at.max(at);
        match &change.transition {
            Transition::Reserved {
                hours,
                price,
                hold_expires_at,
            } => {
                entry.hours = *hours;
                entry.price = Some(*price);
                entry.hold_expires_at = Some(*hold_expires_at);
                entry.created_at = at;
            }
            Transition::Paid { payment_id, amount } => {
                entry.payment_id = Some(payment_id.clone());
                entry.price.get_or_insert(*amount);
            }
            Transition::Registered { registration_id } => {
                entry.registration_id = Some(registration_id.clone());
            }
            _ => {}
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, hour, 0, 0).unwrap()
    }

    fn reference() -> ReservationRef {
        ReservationRef {
            id: ReservationId::parse("0190a6d2-7c3e-7b1a-9f00-000000000001").unwrap(),
            seat_id: SeatId::parse("A-01").unwrap(),
            customer_id: CustomerId::parse("alice").unwrap(),
            window: Window::new(t(10), t(12)).unwrap(),
        }
    }

    fn change(transition: Transition, at: DateTime<Utc>) -> ReservationChange {
        ReservationChange {
            reference: reference(),
            transition,
            occurred_at: at,
        }
    }

    #[test]
    fn a_reservation_follows_the_seat_topic() {
        let reserved = Reservation::evolve(
            None,
            &change(
                Transition::Reserved {
                    hours: 2,
                    price: Money::krw(4000).unwrap(),
                    hold_expires_at: t(1),
                },
                t(0),
            ),
        );
        assert_eq!(reserved.status, ReservationStatus::Requested);
        assert_eq!(reserved.price, Some(Money::krw(4000).unwrap()));
        let paid = Reservation::evolve(
            Some(reserved),
            &change(
                Transition::Paid {
                    payment_id: ExternalRef::parse("payment id", "pay-1").unwrap(),
                    amount: Money::krw(4000).unwrap(),
                },
                t(1),
            ),
        );
        assert_eq!(paid.status.presence(), BoardPresence::Occupies);
        assert_eq!(paid.created_at, t(0));
        assert_eq!(paid.updated_at, t(1));
        let cancelled = Reservation::evolve(
            Some(paid),
            &change(
                Transition::Cancelled {
                    by: Canceller::Customer,
                },
                t(2),
            ),
        );
        assert_eq!(cancelled.status, ReservationStatus::Cancelled);
        assert_eq!(
            cancelled.reason.as_deref(),
            Some("cancelled by the customer")
        );
        assert_eq!(cancelled.payment_id.unwrap().as_str(), "pay-1");
    }

    #[test]
    fn any_event_can_create_the_entry() {
        let entry = Reservation::evolve(None, &change(Transition::Confirmed, t(3)));
        assert_eq!(entry.status, ReservationStatus::Confirmed);
        assert_eq!(entry.hours, 2);
        assert_eq!(entry.price, None);
        assert_eq!(entry.hold_expires_at, None);
        assert_eq!(entry.created_at, t(3));
    }

    #[test]
    fn windows() {
        assert!(Window::new(t(2), t(2)).is_err());
        let w = Window::new(t(10), t(12)).unwrap();
        assert!(w.covers(t(10)) && w.covers(t(11)) && !w.covers(t(12)) && !w.covers(t(9)));
        for status in ReservationStatus::ALL {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
        }
    }
}
