//! Read-only queries for the inbound adapters that the domain's use cases do not need
//! (no invariant hangs on them), kept out of the domain's [`ReservationStore`] port.
//!
//! [`ReservationStore`]: crate::domain::ports::ReservationStore

use std::future::Future;

use crate::{
    application::Actor,
    domain::{CustomerId, Reservation, ports::StoreError},
};

/// The most reservations one listing returns.
pub const MAX_PAGE: u32 = 200;
pub const DEFAULT_PAGE: u32 = 50;

pub trait ReservationQueries: Clone + Send + Sync + 'static {
    /// `customer`'s reservations, newest first, at most `limit`.
    fn of_customer(
        &self,
        customer: &CustomerId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Reservation>, StoreError>> + Send;
}

/// "My reservations": the caller's own, whoever they are (an admin's own too). `page_size`
/// 0 means the default; larger than [`MAX_PAGE`] is capped.
pub async fn my_reservations<Q: ReservationQueries>(
    queries: &Q,
    actor: &Actor,
    page_size: u32,
) -> Result<Vec<Reservation>, StoreError> {
    let limit = match page_size {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    queries.of_customer(&actor.user, limit).await
}
