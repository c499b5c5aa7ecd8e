//! Driven adapters: the view stores (SQLite embedded, Redis in production) and the live board
//! feed (local broadcast, fanned out across replicas through Redis pub/sub with Redis).

pub mod feed;
pub mod redis;
pub mod redis_feed;
pub mod sqlite;
