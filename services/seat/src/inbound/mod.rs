//! Driving adapters: the REST and gRPC APIs (sharing [`commands`] and [`failure`]), the Kafka consumer, and the timers that expire holds,
//! complete finished reservations and take due payments.

pub mod commands;
pub mod events;
pub mod failure;
pub mod grpc;
pub mod http;
pub mod timers;
