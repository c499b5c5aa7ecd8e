//! The identity service: accounts, credentials, signing keys, OAuth2 token endpoint and JWKS.
