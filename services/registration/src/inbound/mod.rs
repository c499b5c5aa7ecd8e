//! Driving adapters: the admin REST API and the Kafka consumer.

pub mod events;
pub mod http;
