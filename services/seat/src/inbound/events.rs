//! The seat service's Kafka consumer: news from registration and payment that moves
//! reservations along the saga.
//!
//! Every reaction is applied exactly once (the consumed event's id is recorded in the same
//! transaction as the change). Late or out-of-order news that no longer applies (a
//! confirmation for an expired reservation) is recorded and ignored, not dead-lettered: it is
//! a normal outcome of an asynchronous saga.

use std::sync::Arc;

use shared_events::IntegrationEvent;
use studycafe_messaging::{EventHandler, HandleError, ReceivedEvent};
use tokio::sync::Notify;

use crate::application::{Applied, Reaction, ReservationService};
use crate::domain::{
    ReservationId,
    ports::{Consumed, ReservationStore},
};

/// The consumer group (and inbox name) of the seat service.
pub const CONSUMER: &str = "seat";

/// The topics the seat service reacts to.
pub const TOPICS: &[&str] = &[
    shared_events::topics::REGISTRATION,
    shared_events::topics::PAYMENT,
];

#[derive(Debug)]
pub struct SagaReactions<S> {
    pub service: ReservationService<S>,
    /// Woken when a reservation became CONFIRMED, so payment is attempted at once.
    pub payment_due: Arc<Notify>,
}

impl<S: ReservationStore> EventHandler for SagaReactions<S> {
    async fn handle(&self, received: &ReceivedEvent) -> Result<(), HandleError> {
        let (reservation_id, reaction) = match &received.event {
            IntegrationEvent::BookingConfirmed(e) => {
                (&e.reservation_id, Reaction::BookingConfirmed)
            }
            IntegrationEvent::BookingRejected(e) => (
                &e.reservation_id,
                Reaction::BookingRejected {
                    reason: e.reason.clone(),
                },
            ),
            IntegrationEvent::PaymentCompleted(e) => (
                &e.reservation_id,
                Reaction::PaymentCompleted {
                    payment_id: e.payment_id.clone(),
                },
            ),
            IntegrationEvent::PaymentDeclined(e) => (
                &e.reservation_id,
                Reaction::PaymentDeclined {
                    reason: e.reason.clone(),
                },
            ),
            IntegrationEvent::SeatRegistered(e) => (
                &e.reservation_id,
                Reaction::SeatRegistered {
                    registration_id: e.registration_id.clone(),
                },
            ),
            // Everything else on these topics is for other contexts.
            _ => return Ok(()),
        };
        let id = ReservationId::parse(reservation_id)
            .map_err(|e| HandleError::Rejected(e.to_string()))?;
        let consumed = Consumed {
            consumer: CONSUMER,
            event_id: received.envelope.id,
        };
        let applied = self
            .service
            .react(id, &reaction, consumed)
            .await
            .map_err(|e| HandleError::Failed(e.into()))?;
        match &applied {
            Applied::Changed(status) => {
                tracing::info!(reservation_id = %id, status = status.as_str(), "reservation moved");
                if reaction == Reaction::BookingConfirmed {
                    self.payment_due.notify_one();
                }
            }
            Applied::Ignored(why) => tracing::info!(reservation_id = %id, %why, "news ignored"),
            Applied::AlreadyApplied => tracing::debug!(reservation_id = %id, "duplicate delivery"),
            Applied::UnknownReservation => {
                tracing::warn!(reservation_id = %id, "news about an unknown reservation")
            }
        }
        Ok(())
    }
}
