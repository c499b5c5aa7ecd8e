//! Driving adapters: the REST API, the Kafka consumer of seat's events, and the settlement worker (refunds, stranded payments).

pub mod events;
pub mod http;
pub mod settlement;
