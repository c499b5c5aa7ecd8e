//! The gateway's policies, as plain data and pure functions: where a path goes and who may
//! call it ([`routes`]), how often a client may call ([`rate_limit`]), who the client is by
//! address ([`client_address`]) and which other web origins may call ([`cors`]). No HTTP server,
//! client or clock lives here; the adapters in `inbound` and `outbound` apply these.

pub mod client_address;
pub mod cors;
pub mod rate_limit;
pub mod routes;

pub use client_address::{Cidr, ClientAddress, TrustedProxies};
pub use cors::{CorsPolicy, Origin};
pub use rate_limit::{ClientKey, Decision, RateLimitPolicy, RateLimiter};
pub use routes::{Access, Destination, Route, RouteTable, Upstream};
