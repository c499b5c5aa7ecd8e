//! The identity domain: accounts, machine clients, and the tokens they are given.
//!
//! Pure Rust: no web framework, database or hashing library in here. The outside world
//! reaches the domain through the ports in [`ports`], implemented by adapters in `inbound`
//! and `outbound`.

pub mod client;
pub mod ports;
pub mod throttle;
pub mod token;
pub mod user;

pub use client::{Client, ClientId, ClientRegistry, ClientSecret};
pub use token::{IssuedToken, TokenClaims, TokenPolicy};
pub use user::{
    DisplayName, Field, FieldError, Password, PasswordHash, Role, User, UserId, Username,
};
