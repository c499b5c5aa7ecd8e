//! Driven adapters: the SQLite store (bookings, policy, outbox, inbox) and the
//! published-language mapping.

pub mod published_language;
pub mod sqlite;
