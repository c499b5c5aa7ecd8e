//! What every studycafe service shares at its edges: typed configuration from the environment,
//! `problem+json` errors, JWT verification, health and metrics endpoints, logs and traces, and
//! graceful shutdown. Nothing here knows a domain.

pub mod auth;
pub mod balancer;
pub mod breaker;
pub mod client_credentials;
pub mod config;
pub mod detach;
pub mod http;
pub mod inbound;
pub mod liveness;
pub mod observability;
pub mod openapi;
pub mod problem;
pub mod service;
pub mod shutdown;
pub mod signing;

pub use problem::Problem;
