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

/// The dead-letter topic of one consumer group: messages that group could not decode or
/// process go here, with the error in headers, so the partition keeps moving.
pub fn dead_letter(consumer_group: &str) -> String {
    format!("studycafe.dlq.{consumer_group}.v1")
}
