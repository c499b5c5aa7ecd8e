//! Driving adapters: the Kafka consumer that projects every event, the REST API and the live
//! board stream.

pub mod events;
pub mod http;
pub mod stream;
