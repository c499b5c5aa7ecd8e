//! Driving adapters: the REST API, the Kafka consumer of seat's events, and the refund worker.

pub mod events;
pub mod http;
pub mod settlement;
