//! Adapters that drive the gateway: the public HTTP edge ([`http`]) and its own API, the
//! OpenAPI document and reference page ([`openapi`]).

pub mod http;
pub mod openapi;
