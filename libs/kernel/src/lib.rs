//! The kernel every studycafe service's domain shares: what a port says when its store fails,
//! where the time comes from, and the inbox record of a consumed event.
//!
//! Kept apart from `studycafe-platform` (which brings axum, tokio and the rest of the edge) so a
//! domain can name these without naming a framework. Identifiers that are a contract between
//! services are not here but in the published language (`shared-events`).

mod clock;
mod consumed;
mod store;

pub use clock::{Clock, SystemClock};
pub use consumed::Consumed;
pub use store::{StoreError, StoreName};
