//! The kernel every studycafe service's domain shares: what a port says when its store fails,
//! where the time comes from, the inbox record of a consumed event, and the application
//! layers' retry of a use case whose save was stale.
//!
//! Kept apart from `studycafe-platform` (which brings axum, tokio and the rest of the edge) so a
//! domain can name these without naming a framework. Identifiers that are a contract between
//! services are not here but in the published language (`shared-events`).

mod clock;
mod consumed;
mod retry;
mod store;

pub use clock::{Clock, SystemClock};
pub use consumed::Consumed;
pub use retry::{Attempt, MAX_ATTEMPTS, retry_on_stale};
pub use store::{StoreError, StoreName};
