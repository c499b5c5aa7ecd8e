//! Translating the domain's booking events into the published language.
//!
//! The domain speaks of transitions; other contexts read `shared_events`. This is the one
//! place where one becomes the other.

use chrono::{DateTime, Utc};
use shared_events::{self as pl, Envelope, EventMeta};
use studycafe_messaging::OutboxMessage;

use crate::domain::{Booking, BookingEvent};

pub const SOURCE: &str = "registration";

fn message<T: pl::Event>(meta: EventMeta, data: T) -> OutboxMessage {
    OutboxMessage::from_event(&Envelope::wrap(meta, data))
}

/// The outbox message for `event`, which just happened to `booking` (already in its new
/// state). Correlated and keyed by the reservation id, so it stays in order with the rest of
/// the reservation's saga.
pub fn booking_message(
    booking: &Booking,
    event: &BookingEvent,
    causation: &str,
    now: DateTime<Utc>,
) -> Result<OutboxMessage, MappingError> {
    let reservation_id = booking.reservation_id().to_string();
    let meta = EventMeta::new(SOURCE, reservation_id.clone(), causation, now);
    Ok(match event {
        BookingEvent::Confirmed { by } => message(
            meta,
            pl::BookingConfirmed {
                reservation_id,
                confirmed_by: by.as_str().to_owned(),
            },
        ),
        BookingEvent::Rejected { by, reason } => message(
            meta,
            pl::BookingRejected {
                reservation_id,
                rejected_by: by.to_string(),
                reason: reason.to_string(),
            },
        ),
        BookingEvent::Registered => {
            let registration = booking
                .registration()
                .ok_or(MappingError::RegisteredWithoutRegistration)?;
            message(
                meta,
                pl::SeatRegistered {
                    reservation_id,
                    registration_id: registration.id().to_string(),
                    seat_id: booking.seat_id().to_string(),
                    entry_pass_code: registration.entry_pass_code().to_string(),
                    starts_at: booking.window().starts_at(),
                    ends_at: booking.window().ends_at(),
                },
            )
        }
        BookingEvent::Cancelled {
            registration_id,
            reason,
        } => message(
            meta,
            pl::RegistrationCancelled {
                reservation_id,
                registration_id: registration_id.map(|id| id.to_string()),
                reason: reason.clone(),
            },
        ),
    })
}

/// The event cannot be told from the booking (a bug, never a business outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("a Registered event for a booking without a registration")]
    RegisteredWithoutRegistration,
}
