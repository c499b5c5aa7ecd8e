//! What the end-to-end tests that judge a whole run share: a seedable random schedule and the
//! reservation states of the saga.

/// A small, seedable generator (xorshift64*): a run's schedule is reproducible from its seed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced: xorshift never leaves it).
    pub fn seeded(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `low..=high` milliseconds.
    pub fn millis(&mut self, low: u64, high: u64) -> std::time::Duration {
        std::time::Duration::from_millis(low + self.next_u64() % (high - low + 1))
    }
}

/// The statuses in which a reservation holds its seat.
pub const LIVE: [&str; 4] = ["REQUESTED", "CONFIRMED", "PAID", "REGISTERED"];

/// The type of the seat event a reservation in `status` was last announced by.
pub fn last_event_of(status: &str) -> &'static str {
    match status {
        "REQUESTED" => "SeatReserved",
        "CONFIRMED" => "ReservationConfirmed",
        "PAID" => "ReservationPaid",
        "REGISTERED" => "ReservationRegistered",
        "REJECTED" => "ReservationRejected",
        "PAYMENT_FAILED" => "ReservationPaymentFailed",
        "CANCELLED" => "ReservationCancelled",
        "EXPIRED" => "ReservationExpired",
        "COMPLETED" => "ReservationCompleted",
        other => panic!("unknown status {other}"),
    }
}
