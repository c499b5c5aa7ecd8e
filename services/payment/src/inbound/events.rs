//! The payment service's Kafka consumer: seat's news that a reservation is over.
//!
//! A cancelled, expired or payment-failed reservation is recorded as closed; if its payment
//! completed, a refund is owed (created in the same transaction as the inbox record of the
//! event, so a redelivered event owes nothing more). Every other event on the seat topic is
//! acknowledged and ignored.

use shared_events::IntegrationEvent;
use studycafe_messaging::{EventHandler, HandleError, ReceivedEvent};

use crate::application::PaymentService;
use crate::domain::{
    ClosureReason, ReservationClosure, ReservationId,
    ports::{CardProvider, Consumed, PaymentStore},
};

/// The consumer group (and inbox name) of the payment service.
pub const CONSUMER: &str = "payment";

/// The topics the payment service reacts to.
pub const TOPICS: &[&str] = &[shared_events::topics::SEAT];

#[derive(Debug)]
pub struct ClosureReactions<S, P> {
    pub service: PaymentService<S, P>,
}

impl<S: PaymentStore, P: CardProvider> EventHandler for ClosureReactions<S, P> {
    async fn handle(&self, received: &ReceivedEvent) -> Result<(), HandleError> {
        let (reservation_id, reason) = match &received.event {
            IntegrationEvent::ReservationCancelled(e) => {
                (&e.reservation.reservation_id, ClosureReason::Cancelled)
            }
            IntegrationEvent::ReservationExpired(e) => {
                (&e.reservation.reservation_id, ClosureReason::Expired)
            }
            IntegrationEvent::ReservationPaymentFailed(e) => {
                (&e.reservation.reservation_id, ClosureReason::PaymentFailed)
            }
            // The rest of the seat topic is for other contexts.
            _ => return Ok(()),
        };
        let reservation_id = ReservationId::parse(reservation_id)
            .map_err(|e| HandleError::Rejected(e.to_string()))?;
        let closure = ReservationClosure {
            reservation_id,
            reason,
            closed_at: received.envelope.occurred_at,
        };
        let consumed = Consumed {
            consumer: CONSUMER,
            event_id: received.envelope.id,
        };
        self.service
            .reservation_closed(closure, consumed)
            .await
            .map_err(|e| HandleError::Failed(e.into()))?;
        Ok(())
    }
}
