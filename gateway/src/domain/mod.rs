//! The gateway's policies, as plain data and pure functions: where a path goes and who may
//! call it ([`routes`]), and how often a client may call ([`rate_limit`]). No HTTP server,
//! client or clock lives here; the adapters in `inbound` and `outbound` apply these.

pub mod rate_limit;
pub mod routes;

pub use rate_limit::{ClientKey, Decision, RateLimitPolicy, RateLimiter};
pub use routes::{Access, Destination, Route, RouteTable, Upstream};
