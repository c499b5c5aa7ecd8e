//! Driving adapters: the account API ([`http`]) and the OAuth2 token endpoint and JWKS
//! ([`oauth`]).

pub mod http;
pub mod oauth;
