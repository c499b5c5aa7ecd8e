//! Driving adapters: the REST API, the Kafka consumer, and the timers that expire holds,
//! complete finished reservations and take due payments.

pub mod events;
pub mod http;
pub mod timers;
