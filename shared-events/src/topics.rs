//! Topic names. One topic per publishing context; the suffix is the version of the language.

/// Events published by the seat service (seat catalogue and the reservation lifecycle).
pub const SEAT: &str = "studycafe.seat.v1";
/// Events published by the registration service (bookings and entry passes).
pub const REGISTRATION: &str = "studycafe.registration.v1";
/// Events published by the payment service (payments and refunds).
pub const PAYMENT: &str = "studycafe.payment.v1";

/// Every topic of the published language, for consumers that read everything (seat-view) and
/// for creating topics up front.
pub const ALL: [&str; 3] = [SEAT, REGISTRATION, PAYMENT];

/// Partitions per topic. Fixed because the key-to-partition mapping (and so per-reservation
/// ordering) depends on it; consumer replicas beyond this number sit idle.
pub const PARTITIONS: i32 = 6;

/// How long the event topics keep events, in days. A rebuild of a view (seat-view's
/// `--rebuild`, a new consumer group) replays the topics, so everything a view shows must still
/// be on them: a reservation is announced up to the booking horizon (30 days) before its window,
/// which lasts at most a day, so 35 days keeps every reservation that is not over yet. The seat
/// catalogue changes rarely; seat re-announces it well within this (`SEAT_CATALOGUE_REANNOUNCE_SECS`).
/// Set where topics are created: `ensure_topics`, scripts/engines/kafka, docker-compose.yml and
/// the KafkaTopic manifests.
pub const EVENT_RETENTION_DAYS: u64 = 35;

/// [`EVENT_RETENTION_DAYS`] as Kafka's `retention.ms`.
pub const EVENT_RETENTION_MS: u64 = EVENT_RETENTION_DAYS * 24 * 60 * 60 * 1000;

/// How long dead-letter topics keep messages: long enough for someone to look and replay.
pub const DEAD_LETTER_RETENTION_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// The retention a topic is created with (`retention.ms`), by its logical name.
pub fn retention_ms(topic: &str) -> u64 {
    if topic.starts_with("studycafe.dlq.") {
        DEAD_LETTER_RETENTION_MS
    } else {
        EVENT_RETENTION_MS
    }
}

/// The dead-letter topic of one consumer group: messages that group could not decode or
/// process go here, with the error in headers, so the partition keeps moving.
pub fn dead_letter(consumer_group: &str) -> String {
    format!("studycafe.dlq.{consumer_group}.v1")
}
