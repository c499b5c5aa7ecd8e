//! Driven adapters: the booking stores (bookings, policy, outbox, inbox) — SQLite embedded,
//! PostgreSQL in production; `REGISTRATION_DATABASE_URL`'s scheme picks one — and the
//! published-language mapping.

pub mod postgres;
pub mod published_language;
pub mod sqlite;
