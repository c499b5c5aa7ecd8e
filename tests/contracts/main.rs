//! Contract tests (Pact): every consumer states what it needs from a producer in a pact file
//! under `tests/contracts/pacts/` (in the repository; no broker server), and each producer is
//! verified against every pact naming it.
//!
//! - HTTP: seat's payment client (`HttpPayments`) is the consumer of payment's
//!   `POST /internal/payments`; `consumer_seat_*` runs the real client against Pact's mock
//!   server and writes `seat-payment.json`; `provider_payment_*` replays it against the real
//!   payment service (in-process, SQLite, the card simulator) with provider states.
//! - Messages: the notification service (Python; its pytest writes `notification-*.json`),
//!   seat-view and registration (`consumer_*` here) state the events they consume;
//!   `provider_events_*` runs the real suite (every service its own process on the embedded
//!   broker), drives the saga through every outcome, and verifies each pact's messages against
//!   the events the producers really published.
//! - `*_breaking_*`: a renamed event field and a changed payment response field, applied to a
//!   copy of what the producer sends, fail the verification.
//!
//! Consumers rewrite the committed pacts and providers verify them; in one run of this binary a
//! lock keeps writers and readers apart. `scripts/test-notification` reruns the consumers
//! (`-- consumer_`, and the Python one's pytest) and fails when a committed pact is stale.

mod events;
mod payment;
mod support;
