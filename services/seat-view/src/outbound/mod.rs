//! Driven adapters: the SQLite views and the live board feed.

pub mod feed;
pub mod sqlite;
