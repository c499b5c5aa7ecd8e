//! Driven adapters: the user stores (SQLite embedded, PostgreSQL in production; the URL's
//! scheme picks one), argon2id password hashing, and the key directory.

pub mod argon;
pub mod keys;
pub mod postgres;
mod rows;
pub mod sqlite;
