//! Driven adapters: the SQLite store (with outbox and inbox), the published-language mapping,
//! and the card simulator behind the provider port.

pub mod published_language;
pub mod simulator;
pub mod sqlite;
