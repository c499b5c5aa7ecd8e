use uuid::Uuid;

/// An event consumed from Kafka, recorded (claimed) in the same transaction as the change it
/// causes: the inbox entry that turns a redelivery into a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    pub consumer: &'static str,
    pub event_id: Uuid,
}
