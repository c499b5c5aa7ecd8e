//! The one error type that changes the exit code: a usage or configuration mistake exits 2,
//! everything else 1. Errors stay `anyhow` everywhere; `main` looks for this one in the chain.

/// The user asked for something that cannot work as configured (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
