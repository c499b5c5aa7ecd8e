//! What registration and payment say about a reservation, kept beside (not inside) the seat
//! topic's status.
//!
//! These come on other topics, so they can arrive before or after the seat service's events
//! about the same reservation; keeping them apart means neither order loses anything. Within
//! one topic they are in order (key = reservation id); the rules below still never let a late
//! message undo a final fact (a refund, a cancelled registration).

use chrono::{DateTime, Utc};

use crate::domain::{ExternalRef, Money, ReservationId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Paid,
    Declined,
    Refunded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationStatus {
    Registered,
    Cancelled,
}

/// The cafe's decision on the booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingDecision {
    Confirmed,
    Rejected,
}

macro_rules! wire_names {
    ($ty:ident { $( $variant:ident => $name:literal ),* $(,)? }) => {
        impl $ty {
            pub fn as_str(&self) -> &'static str {
                match self { $( Self::$variant => $name, )* }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $( $name => Some(Self::$variant), )* _ => None }
            }
        }
    };
}

wire_names!(PaymentStatus { Paid => "PAID", Declined => "DECLINED", Refunded => "REFUNDED" });
wire_names!(RegistrationStatus { Registered => "REGISTERED", Cancelled => "CANCELLED" });
wire_names!(BookingDecision { Confirmed => "CONFIRMED", Rejected => "REJECTED" });

/// One registration or payment event about a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetailChange {
    BookingConfirmed,
    BookingRejected,
    SeatRegistered {
        registration_id: ExternalRef,
        entry_pass_code: ExternalRef,
    },
    RegistrationCancelled {
        /// Absent when only a pending booking was closed.
        registration_id: Option<ExternalRef>,
    },
    PaymentCompleted {
        payment_id: ExternalRef,
    },
    PaymentDeclined {
        payment_id: ExternalRef,
    },
    PaymentRefunded {
        payment_id: ExternalRef,
        refund_id: ExternalRef,
        amount: Money,
    },
}

/// A detail event, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailUpdate {
    pub reservation_id: ReservationId,
    pub change: DetailChange,
    pub occurred_at: DateTime<Utc>,
}

/// Registration's and payment's part of a reservation's timeline entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationDetails {
    pub reservation_id: ReservationId,
    pub booking: Option<BookingDecision>,
    pub registration_status: Option<RegistrationStatus>,
    pub registration_id: Option<ExternalRef>,
    pub entry_pass_code: Option<ExternalRef>,
    pub payment_status: Option<PaymentStatus>,
    pub payment_id: Option<ExternalRef>,
    pub refund_id: Option<ExternalRef>,
    pub refund_amount: Option<Money>,
    /// The newest `occurredAt` applied.
    pub updated_at: DateTime<Utc>,
}

impl ReservationDetails {
    /// The details after `update`, whether or not any existed before (upsert).
    pub fn evolve(existing: Option<Self>, update: &DetailUpdate) -> Self {
        let mut details = existing.unwrap_or(Self {
            reservation_id: update.reservation_id,
            booking: None,
            registration_status: None,
            registration_id: None,
            entry_pass_code: None,
            payment_status: None,
            payment_id: None,
            refund_id: None,
            refund_amount: None,
            updated_at: update.occurred_at,
        });
        details.updated_at = details.updated_at.max(update.occurred_at);
        match &update.change {
            DetailChange::BookingConfirmed => details.booking = Some(BookingDecision::Confirmed),
            DetailChange::BookingRejected => details.booking = Some(BookingDecision::Rejected),
            DetailChange::SeatRegistered {
                registration_id,
                entry_pass_code,
            } => {
                details.registration_id = Some(registration_id.clone());
                details.entry_pass_code = Some(entry_pass_code.clone());
                // A cancellation is final: a registration seen late does not revive it.
                if details.registration_status != Some(RegistrationStatus::Cancelled) {
                    details.registration_status = Some(RegistrationStatus::Registered);
                }
            }
            DetailChange::RegistrationCancelled { registration_id } => {
                if let Some(id) = registration_id {
                    details.registration_id.get_or_insert_with(|| id.clone());
                }
                details.registration_status = Some(RegistrationStatus::Cancelled);
            }
            DetailChange::PaymentCompleted { payment_id } => {
                details.payment_id = Some(payment_id.clone());
                // A refund is final: the charge seen late does not hide it.
                if details.payment_status != Some(PaymentStatus::Refunded) {
                    details.payment_status = Some(PaymentStatus::Paid);
                }
            }
            DetailChange::PaymentDeclined { payment_id } => {
                details.payment_id.get_or_insert_with(|| payment_id.clone());
                if details.payment_status.is_none() {
                    details.payment_status = Some(PaymentStatus::Declined);
                }
            }
            DetailChange::PaymentRefunded {
                payment_id,
                refund_id,
                amount,
            } => {
                details.payment_id = Some(payment_id.clone());
                details.payment_status = Some(PaymentStatus::Refunded);
                details.refund_id = Some(refund_id.clone());
                details.refund_amount = Some(*amount);
            }
        }
        details
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn update(change: DetailChange, minute: u32) -> DetailUpdate {
        DetailUpdate {
            reservation_id: ReservationId::parse("0190a6d2-7c3e-7b1a-9f00-000000000001").unwrap(),
            change,
            occurred_at: Utc.with_ymd_and_hms(2030, 1, 1, 0, minute, 0).unwrap(),
        }
    }

    fn r(raw: &str) -> ExternalRef {
        ExternalRef::parse("ref", raw).unwrap()
    }

    #[test]
    fn final_facts_are_not_undone_by_late_news() {
        let refunded = ReservationDetails::evolve(
            None,
            &update(
                DetailChange::PaymentRefunded {
                    payment_id: r("pay-1"),
                    refund_id: r("ref-1"),
                    amount: Money::krw(4000).unwrap(),
                },
                5,
            ),
        );
        let late_charge = ReservationDetails::evolve(
            Some(refunded),
            &update(
                DetailChange::PaymentCompleted {
                    payment_id: r("pay-1"),
                },
                1,
            ),
        );
        assert_eq!(late_charge.payment_status, Some(PaymentStatus::Refunded));
        assert_eq!(late_charge.refund_amount, Some(Money::krw(4000).unwrap()));
        assert_eq!(late_charge.updated_at.format("%M").to_string(), "05");

        let cancelled = ReservationDetails::evolve(
            Some(late_charge),
            &update(
                DetailChange::RegistrationCancelled {
                    registration_id: None,
                },
                6,
            ),
        );
        let late_pass = ReservationDetails::evolve(
            Some(cancelled),
            &update(
                DetailChange::SeatRegistered {
                    registration_id: r("reg-1"),
                    entry_pass_code: r("123456"),
                },
                2,
            ),
        );
        assert_eq!(
            late_pass.registration_status,
            Some(RegistrationStatus::Cancelled)
        );
        assert_eq!(late_pass.entry_pass_code, Some(r("123456")));
    }

    #[test]
    fn wire_names_round_trip() {
        for s in [
            PaymentStatus::Paid,
            PaymentStatus::Declined,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            RegistrationStatus::parse("CANCELLED"),
            Some(RegistrationStatus::Cancelled)
        );
        assert_eq!(BookingDecision::parse("nope"), None);
    }
}
