//! Adapters that drive the gateway: the public HTTP edge ([`http`]).

pub mod http;
