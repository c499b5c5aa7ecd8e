//! Driven adapters: the SQLite user store, argon2id password hashing, and the key directory.

pub mod argon;
pub mod keys;
pub mod sqlite;
