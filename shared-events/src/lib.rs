//! The published language of studycafe.
//!
//! Every integration event that crosses a bounded context is defined here, once, as a typed
//! struct; every event travels in the same [`Envelope`]. Besides the events, services share
//! only the identifiers that are a contract between them ([`CustomerId`], [`PaymentToken`]):
//! not tables, not domain types. A service in another language consumes the JSON Schemas under
//! `shared-events/schemas/`, generated from these types (`cargo run -p shared-events --bin
//! generate-event-schemas`) and checked by a test so they never go stale.
//!
//! Wire rules:
//! - JSON, camelCase field names, RFC 3339 timestamps in UTC.
//! - The Kafka message key is the correlation id (the reservation id), so every event of one
//!   reservation lands on one partition, in order.
//! - One topic per publishing context, versioned: see [`topics`].
//! - Additive changes keep the `version`; a breaking change gets a new `version` (and, when
//!   the whole language changes, a new topic `…v2`).

mod envelope;
mod events;
mod ids;
pub mod topics;

pub use envelope::{DecodeError, Envelope, EventMeta, RawEnvelope};
pub use events::*;
pub use ids::{CustomerId, IdError, PaymentToken};

/// The checked-in file name of an event's schema.
pub fn schema_file_name(event_type: &str, version: u16) -> String {
    format!("{event_type}.v{version}.schema.json")
}

/// The exact text a schema file holds (pretty JSON, trailing newline).
pub fn render_schema(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
