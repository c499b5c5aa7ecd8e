//! Translating the domain's reservation events into the published language.
//!
//! The domain speaks of transitions; other contexts read `shared_events`. This is the one
//! place where one becomes the other, so the domain can change its insides without changing
//! the contract.

use chrono::{DateTime, Utc};
use shared_events::{self as pl, Envelope, EventMeta};
use studycafe_messaging::OutboxMessage;

use crate::domain::{CancelledBy, Reservation, ReservationEvent, Seat};

pub const SOURCE: &str = "seat";

pub(crate) fn money(won: i64) -> pl::Money {
    pl::Money {
        amount: won,
        currency: pl::Currency::Krw,
    }
}

fn reference(r: &Reservation) -> pl::ReservationRef {
    pl::ReservationRef {
        reservation_id: r.id().to_string(),
        seat_id: r.seat_id().to_string(),
        customer_id: r.customer_id().to_string(),
        starts_at: r.window().starts_at(),
        ends_at: r.window().ends_at(),
    }
}

fn message<T: pl::Event>(meta: EventMeta, data: T) -> OutboxMessage {
    OutboxMessage::from_event(&Envelope::wrap(meta, data))
}

/// The outbox message for `event`, which just happened to `reservation` (already in its new
/// state).
pub fn reservation_message(
    reservation: &Reservation,
    event: &ReservationEvent,
    causation: &str,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let meta = EventMeta::new(SOURCE, reservation.id().to_string(), causation, now);
    let reservation_ref = reference(reservation);
    match event {
        ReservationEvent::Reserved => message(
            meta,
            pl::SeatReserved {
                reservation: reservation_ref,
                hours: reservation.window().hours(),
                price: money(reservation.price().won()),
                hold_expires_at: reservation.hold_expires_at(),
            },
        ),
        ReservationEvent::Confirmed => message(
            meta,
            pl::ReservationConfirmed {
                reservation: reservation_ref,
            },
        ),
        ReservationEvent::Rejected { reason } => message(
            meta,
            pl::ReservationRejected {
                reservation: reservation_ref,
                reason: reason.clone(),
            },
        ),
        ReservationEvent::Paid { payment_id } => message(
            meta,
            pl::ReservationPaid {
                reservation: reservation_ref,
                payment_id: payment_id.clone(),
                amount: money(reservation.price().won()),
            },
        ),
        ReservationEvent::PaymentFailed { reason } => message(
            meta,
            pl::ReservationPaymentFailed {
                reservation: reservation_ref,
                reason: reason.clone(),
            },
        ),
        ReservationEvent::Registered { registration_id } => message(
            meta,
            pl::ReservationRegistered {
                reservation: reservation_ref,
                registration_id: registration_id.clone(),
            },
        ),
        ReservationEvent::Cancelled { by, was_paid } => message(
            meta,
            pl::ReservationCancelled {
                reservation: reservation_ref,
                cancelled_by: match by {
                    CancelledBy::Customer => pl::CancelledBy::Customer,
                    CancelledBy::Admin => pl::CancelledBy::Admin,
                },
                was_paid: *was_paid,
            },
        ),
        ReservationEvent::Expired { expired_in } => message(
            meta,
            pl::ReservationExpired {
                reservation: reservation_ref,
                expired_in: expired_in.as_str().to_owned(),
            },
        ),
        ReservationEvent::Completed => message(
            meta,
            pl::ReservationCompleted {
                reservation: reservation_ref,
            },
        ),
    }
}

/// The outbox message announcing a seat's catalogue entry.
pub fn seat_message(seat: &Seat, causation: &str, now: DateTime<Utc>) -> OutboxMessage {
    let meta = EventMeta::new(SOURCE, seat.id.to_string(), causation, now);
    message(
        meta,
        pl::SeatDefined {
            seat_id: seat.id.to_string(),
            zone: seat.zone.clone(),
            kind: seat.kind.as_str().to_owned(),
            hourly_price: money(seat.hourly_price.won()),
            enabled: seat.enabled,
        },
    )
}
