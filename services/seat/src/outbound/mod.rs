//! Driven adapters: the SQLite store, the published language, the seat catalogue file.

pub mod catalogue;
pub mod payments;
pub mod published_language;
pub mod sqlite;
