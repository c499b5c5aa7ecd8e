//! The registration service's Kafka consumer: reservations arriving from the seat service,
//! payments from the payment service.
//!
//! Every reaction is applied exactly once: the consumed event's id is claimed in the same
//! transaction as the booking's change and the outbox row it causes. News that no longer
//! applies (a payment for a cancelled booking, a cancellation of a rejected one) is recorded
//! and ignored, not dead-lettered: it is a normal outcome of an asynchronous saga. Events
//! that cannot be understood (an id that is not a UUID, a window that ends before it
//! starts) are rejected, which sends them to the dead-letter topic.

use shared_events::{self as pl, IntegrationEvent};
use studycafe_messaging::{EventHandler, HandleError, ReceivedEvent};

use crate::application::{Applied, BookingService, Opened, Reaction};
use crate::domain::{
    CustomerId, Money, NewBooking, ReservationEnded, ReservationId, SeatId, Window,
    ports::{BookingStore, Consumed},
};

/// The consumer group (and inbox name) of the registration service.
pub const CONSUMER: &str = "registration";

/// The topics the registration service reacts to.
pub const TOPICS: &[&str] = &[shared_events::topics::SEAT, shared_events::topics::PAYMENT];

#[derive(Debug)]
pub struct BookingReactions<S> {
    pub service: BookingService<S>,
}

fn rejected(e: impl std::fmt::Display) -> HandleError {
    HandleError::Rejected(e.to_string())
}

fn new_booking(e: &pl::SeatReserved) -> Result<NewBooking, HandleError> {
    let r = &e.reservation;
    Ok(NewBooking {
        reservation_id: ReservationId::parse(&r.reservation_id).map_err(rejected)?,
        seat_id: SeatId::parse(&r.seat_id).map_err(rejected)?,
        customer_id: CustomerId::parse(&r.customer_id).map_err(rejected)?,
        window: Window::new(r.starts_at, r.ends_at).map_err(rejected)?,
        price: Money::krw(e.price.amount).map_err(rejected)?,
        hold_expires_at: e.hold_expires_at,
    })
}

impl<S: BookingStore> BookingReactions<S> {
    async fn open(&self, e: &pl::SeatReserved, consumed: Consumed) -> Result<(), HandleError> {
        let new = new_booking(e)?;
        let id = new.reservation_id;
        let opened = self
            .service
            .open(new, consumed)
            .await
            .map_err(|e| HandleError::Failed(e.into()))?;
        match opened {
            Opened::Pending => tracing::info!(reservation_id = %id, "booking pending"),
            Opened::AutoConfirmed => {
                tracing::info!(reservation_id = %id, "booking auto-confirmed")
            }
            Opened::Exists => {
                tracing::info!(reservation_id = %id, "booking exists already; event recorded")
            }
            Opened::AlreadyApplied => tracing::debug!(reservation_id = %id, "duplicate delivery"),
        }
        Ok(())
    }

    async fn react(
        &self,
        reservation_id: &str,
        reaction: Reaction,
        consumed: Consumed,
    ) -> Result<(), HandleError> {
        let id = ReservationId::parse(reservation_id).map_err(rejected)?;
        let applied = self
            .service
            .react(id, &reaction, consumed)
            .await
            .map_err(|e| HandleError::Failed(e.into()))?;
        match applied {
            Applied::Changed(status) => {
                tracing::info!(reservation_id = %id, status = status.as_str(), "booking moved")
            }
            Applied::Ignored(why) => {
                tracing::info!(reservation_id = %id, %why, ?reaction, "news ignored")
            }
            Applied::AlreadyApplied => tracing::debug!(reservation_id = %id, "duplicate delivery"),
            Applied::UnknownReservation => {
                tracing::warn!(reservation_id = %id, ?reaction, "news about an unknown booking")
            }
        }
        Ok(())
    }
}

impl<S: BookingStore> EventHandler for BookingReactions<S> {
    async fn handle(&self, received: &ReceivedEvent) -> Result<(), HandleError> {
        let consumed = Consumed {
            consumer: CONSUMER,
            event_id: received.envelope.id,
        };
        let (reservation_id, reaction) = match &received.event {
            IntegrationEvent::SeatReserved(e) => return self.open(e, consumed).await,
            IntegrationEvent::PaymentCompleted(e) => {
                (&e.reservation_id, Reaction::PaymentCompleted)
            }
            IntegrationEvent::ReservationCancelled(e) => (
                &e.reservation.reservation_id,
                Reaction::ReservationEnded(match e.cancelled_by {
                    pl::CancelledBy::Customer => ReservationEnded::CancelledByCustomer,
                    pl::CancelledBy::Admin => ReservationEnded::CancelledByAdmin,
                }),
            ),
            IntegrationEvent::ReservationExpired(e) => (
                &e.reservation.reservation_id,
                Reaction::ReservationEnded(ReservationEnded::Expired),
            ),
            IntegrationEvent::ReservationPaymentFailed(e) => (
                &e.reservation.reservation_id,
                Reaction::ReservationEnded(ReservationEnded::PaymentFailed {
                    reason: e.reason.clone(),
                }),
            ),
            // ReservationRejected: registration made that decision itself. Everything else on
            // these topics is for other contexts.
            _ => return Ok(()),
        };
        self.react(reservation_id, reaction, consumed).await
    }
}
