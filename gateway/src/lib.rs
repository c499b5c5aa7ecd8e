//! The gateway: the single entry point (routing, JWT checks, rate limiting, request ids, static web root).
