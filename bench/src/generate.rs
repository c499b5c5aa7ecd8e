//! `generate-events`: a realistic, valid event history in the published language, produced to
//! the broker as fast as it takes it, for the seat-view replay benchmark.
//!
//! The history is that of a chain of study cafes (`--seats` seats, `--customers` customers):
//! the seat catalogue (`SeatDefined`, re-announced weekly as seat does), then, seat by seat, one
//! reservation after another, each with its whole saga across the three topics:
//!
//! | share | lifecycle (seat, registration and payment events in the order they happen) |
//! |---:|---|
//! | 72% | reserved, booking confirmed, confirmed, payment completed, paid, seat registered, registered, completed after its window |
//! | 9% | the same until registered, then cancelled before the window (1 in 9 by the cafe), refunded, registration cancelled |
//! | 3% | reserved, cancelled by the customer, pending booking closed |
//! | 5% | reserved, booking rejected, rejected |
//! | 5% | reserved, booking confirmed, confirmed, payment declined, payment failed |
//! | 6% | reserved (half of them also confirmed), expired after the 10-minute hold, booking closed |
//!
//! No two live reservations of a seat overlap: a window released by a rejection, a failed
//! payment, an expiry or a cancellation may be booked again, but only after the release. Ids
//! are consistent throughout (UUID v7 event ids and reservation ids carrying their instant,
//! causation = the previous event of the saga, correlation and Kafka key = the reservation id,
//! the seat id for the catalogue). All events are sorted by `occurredAt` and the first
//! `--events` are kept: the log as it stands at one instant, sagas still in flight included.
//! That instant is then moved to the present (whole hours, so windows stay on the hour).
//!
//! The generator also writes a manifest: what it produced, and what seat-view must show after
//! replaying it — the board at a few instants and the timelines of a few customers — which
//! `replay` checks.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use rdkafka::{
    ClientContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer},
};
use serde::{Deserialize, Serialize};
use shared_events::{self as pl, Envelope, Event, EventMeta};
use studycafe_messaging::KafkaConfig;
use uuid::Uuid;

const MS: i64 = 1_000;
const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// seat's default hold (`SEAT_HOLD_MINUTES`).
const HOLD: i64 = 10 * MINUTE;
/// Average events per reservation of the mix above (measured on the generator's output).
const EVENTS_PER_RESERVATION: f64 = 7.3;
/// A catalogue re-announcement every week, as seat does within the topics' retention.
const REANNOUNCE_EVERY: i64 = 7 * DAY;
/// Marks a catalogue event in [`Ev::reservation`].
const CATALOGUE: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub events: u64,
    pub seats: Option<usize>,
    pub customers: Option<usize>,
    pub seed: u64,
    pub compression: String,
    pub manifest: PathBuf,
}

/// What was produced, and what the views must show after a replay of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// `KAFKA_TOPIC_PREFIX` of the topics written.
    pub prefix: String,
    pub events: u64,
    pub bytes: u64,
    pub by_topic: BTreeMap<String, u64>,
    pub by_type: BTreeMap<String, u64>,
    pub seats: usize,
    pub customers: usize,
    pub reservations: usize,
    /// Reservations by final status.
    pub statuses: BTreeMap<String, u64>,
    pub seed: u64,
    /// The first event's `occurredAt` and the last's (the log's present).
    pub first_event_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub produce_secs: f64,
    pub produce_rate: f64,
    /// The board (seat id → status) at a few instants.
    pub boards: Vec<BoardSample>,
    /// A few customers' reservations (reservation id → status).
    pub timelines: Vec<TimelineSample>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoardSample {
    pub at: DateTime<Utc>,
    pub seats: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineSample {
    pub customer: String,
    pub reservations: BTreeMap<String, String>,
}

/// splitmix64: small, fast, deterministic (the same seed makes the same history).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `[lo, hi]`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        out
    }
}

/// A value derived from the seed and a few numbers: ids that can be recomputed anywhere.
fn derived(seed: u64, a: u64, b: u64) -> Rng {
    let mut rng =
        Rng(seed ^ a.wrapping_mul(0xA24B_AED4_963E_E407) ^ b.wrapping_mul(0x9FB2_1C65_1E98_DF25));
    rng.next();
    rng
}

fn uuid_v7(at_micros: i64, rng: &mut Rng) -> Uuid {
    let millis = u64::try_from(at_micros / MS).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &rng.bytes::<10>()).into_uuid()
}

fn uuid_v4(rng: &mut Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.bytes::<16>()).into_uuid()
}

#[derive(Debug, Clone)]
struct Seat {
    id: String,
    zone: String,
    kind: &'static str,
    price: i64,
    enabled: bool,
}

fn catalogue(count: usize) -> Vec<Seat> {
    (0..count)
        .map(|i| {
            let zone = char::from(b'A' + u8::try_from((i / 100) % 26).unwrap_or(0)).to_string();
            let (kind, price) = match i % 25 {
                24 => ("group-room", 8_000),
                9 | 19 => ("focus-booth", 3_000),
                _ => ("open-desk", 2_000),
            };
            Seat {
                id: format!("{zone}-{:02}", i % 100 + 1),
                zone,
                kind,
                price,
                // About one seat in 50 is out of service.
                enabled: i % 50 != 37,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Reserved,
    BookingConfirmed,
    Confirmed,
    PaymentCompleted,
    Paid,
    SeatRegistered,
    Registered,
    Completed,
    Cancelled {
        by_admin: bool,
        was_paid: bool,
    },
    PaymentRefunded,
    /// `registered`: an entry pass existed; `expired`: why the booking closed.
    RegistrationCancelled {
        registered: bool,
        expired: bool,
    },
    BookingRejected,
    Rejected,
    PaymentDeclined,
    PaymentFailed,
    Expired {
        confirmed: bool,
    },
}

impl Step {
    /// The reservation's status after this step, for seat's own events.
    fn status(self) -> Option<&'static str> {
        Some(match self {
            Self::Reserved => "REQUESTED",
            Self::Confirmed => "CONFIRMED",
            Self::Paid => "PAID",
            Self::Registered => "REGISTERED",
            Self::Completed => "COMPLETED",
            Self::Cancelled { .. } => "CANCELLED",
            Self::Rejected => "REJECTED",
            Self::PaymentFailed => "PAYMENT_FAILED",
            Self::Expired { .. } => "EXPIRED",
            _ => return None,
        })
    }
}

/// How a status shows on the board (seat-view's rule): 2 occupies, 1 holds, 0 nothing.
fn presence(status: &str) -> u8 {
    match status {
        "PAID" | "REGISTERED" | "COMPLETED" => 2,
        "REQUESTED" | "CONFIRMED" => 1,
        _ => 0,
    }
}

#[derive(Debug, Clone)]
struct Reservation {
    seat: u32,
    customer: u32,
    starts: i64,
    hours: u8,
    steps: Vec<(Step, i64)>,
}

impl Reservation {
    fn ends(&self) -> i64 {
        self.starts + i64::from(self.hours) * HOUR
    }

    /// When the seat was released (rejected, failed, expired, cancelled), if it was.
    fn released_at(&self) -> Option<i64> {
        self.steps.iter().find_map(|(step, t)| {
            matches!(
                step,
                Step::Rejected
                    | Step::PaymentFailed
                    | Step::Expired { .. }
                    | Step::Cancelled { .. }
            )
            .then_some(*t)
        })
    }

    /// The status after its first `kept` steps.
    fn status_after(&self, kept: usize) -> Option<&'static str> {
        self.steps[..kept]
            .iter()
            .rev()
            .find_map(|(s, _)| s.status())
    }
}

/// A saga being written: its steps and the instant of the latest.
struct Saga {
    t: i64,
    steps: Vec<(Step, i64)>,
}

impl Saga {
    /// `step` between `lo_ms` and `hi_ms` after the previous one.
    fn then(&mut self, rng: &mut Rng, step: Step, lo_ms: i64, hi_ms: i64) -> i64 {
        self.t += rng.range(lo_ms, hi_ms) * MS;
        self.steps.push((step, self.t));
        self.t
    }

    /// `step` at `t`.
    fn at(&mut self, step: Step, t: i64) {
        self.t = t;
        self.steps.push((step, t));
    }

    /// Auto-confirmed, paid, registered: returns when it was registered.
    fn happy(&mut self, rng: &mut Rng) -> i64 {
        self.then(rng, Step::BookingConfirmed, 20, 2_000);
        self.then(rng, Step::Confirmed, 5, 200);
        self.then(rng, Step::PaymentCompleted, 50, 800);
        self.then(rng, Step::Paid, 1, 30);
        self.then(rng, Step::SeatRegistered, 20, 400);
        self.then(rng, Step::Registered, 5, 200)
    }
}

/// One reservation's saga from `booked`, for a window `[starts, ends)`.
fn lifecycle(rng: &mut Rng, booked: i64, starts: i64, ends: i64) -> Vec<(Step, i64)> {
    let mut saga = Saga {
        t: booked,
        steps: vec![(Step::Reserved, booked)],
    };
    match rng.below(100) {
        0..72 => {
            saga.happy(rng);
            saga.at(Step::Completed, ends + rng.range(1, 60) * SECOND);
        }
        roll @ 72..81 => {
            let registered = saga.happy(rng);
            let cancel = rng.range(
                registered + MINUTE,
                (starts - MINUTE).max(registered + MINUTE),
            );
            saga.at(
                Step::Cancelled {
                    by_admin: roll == 80,
                    was_paid: true,
                },
                cancel,
            );
            saga.then(rng, Step::PaymentRefunded, 30, 600);
            saga.then(
                rng,
                Step::RegistrationCancelled {
                    registered: true,
                    expired: false,
                },
                10,
                300,
            );
        }
        81..84 => {
            saga.then(
                rng,
                Step::Cancelled {
                    by_admin: false,
                    was_paid: false,
                },
                30_000,
                300_000,
            );
            saga.then(
                rng,
                Step::RegistrationCancelled {
                    registered: false,
                    expired: false,
                },
                10,
                300,
            );
        }
        84..89 => {
            saga.then(rng, Step::BookingRejected, 1_000, 540_000);
            saga.then(rng, Step::Rejected, 5, 200);
        }
        89..94 => {
            saga.then(rng, Step::BookingConfirmed, 20, 2_000);
            saga.then(rng, Step::Confirmed, 5, 200);
            saga.then(rng, Step::PaymentDeclined, 50, 800);
            saga.then(rng, Step::PaymentFailed, 1, 30);
        }
        roll => {
            let confirmed = roll >= 97;
            if confirmed {
                saga.then(rng, Step::BookingConfirmed, 20, 2_000);
                saga.then(rng, Step::Confirmed, 5, 200);
            }
            saga.at(
                Step::Expired { confirmed },
                booked + HOLD + rng.range(1, 30) * SECOND,
            );
            saga.then(
                rng,
                Step::RegistrationCancelled {
                    registered: false,
                    expired: true,
                },
                10,
                300,
            );
        }
    }
    saga.steps
}

/// Every enabled seat's reservations, one after another, `per_seat` each.
fn reservations(seed: u64, seats: &[Seat], customers: usize, per_seat: usize) -> Vec<Reservation> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    for (s, seat) in seats.iter().enumerate() {
        if !seat.enabled {
            continue;
        }
        let mut cursor = rng.range(0, 23) * HOUR;
        // Set while the window at `cursor` was released and may be booked again after then.
        let mut released: Option<i64> = None;
        for _ in 0..per_seat {
            let hours = [1u8, 2, 2, 3, 3, 3, 4, 4, 5, 6, 8][rng.below(11) as usize];
            let starts = cursor;
            let ends = starts + i64::from(hours) * HOUR;
            let lead = if rng.below(2) == 0 {
                rng.range(15, 360) * MINUTE
            } else {
                rng.range(6 * 60, 72 * 60) * MINUTE
            };
            let mut booked = starts - lead;
            if let Some(at) = released {
                booked = booked.max(at + rng.range(1, 30) * MINUTE);
                if booked > starts - 15 * MINUTE {
                    // Too late to book that window again: the seat stays free for it.
                    cursor = starts + HOUR;
                    released = None;
                    continue;
                }
            }
            let steps = lifecycle(&mut rng, booked, starts, ends);
            let reservation = Reservation {
                seat: u32::try_from(s).unwrap_or(u32::MAX),
                customer: u32::try_from(rng.below(customers as u64)).unwrap_or(0),
                starts,
                hours,
                steps,
            };
            match reservation.released_at() {
                Some(at) => released = Some(at),
                None => {
                    cursor = ends + [0, 0, 0, 1, 1, 2, 3, 6][rng.below(8) as usize] * HOUR;
                    released = None;
                }
            }
            out.push(reservation);
        }
    }
    out
}

/// One event of the history: a reservation's step, or a catalogue announcement of a seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ev {
    at: i64,
    reservation: u32,
    /// The step's index, or the seat's for the catalogue.
    index: u32,
}

struct History {
    seats: Vec<Seat>,
    reservations: Vec<Reservation>,
    events: Vec<Ev>,
    /// How many of each reservation's steps are in `events`.
    kept: Vec<usize>,
    /// Added to every instant: the last event happens now.
    shift: i64,
    customers: usize,
}

fn history(settings: &Settings) -> anyhow::Result<History> {
    let events = settings.events;
    let seat_count = settings.seats.unwrap_or_else(|| {
        usize::try_from(events / 1_000)
            .unwrap_or(1_000)
            .clamp(40, 1_000)
    });
    if !(2..=26 * 100).contains(&seat_count) {
        bail!("--seats must be between 2 and 2600");
    }
    let seats = catalogue(seat_count);
    let enabled = seats.iter().filter(|s| s.enabled).count().max(1);
    let expected_reservations = events as f64 / EVENTS_PER_RESERVATION;
    let customers = settings
        .customers
        .unwrap_or_else(|| ((expected_reservations / 25.0) as usize).max(20));
    // Enough sagas that the first `events` events are all in the middle of the history.
    let mut per_seat = ((expected_reservations * 1.2) / enabled as f64).ceil() as usize + 2;
    loop {
        let reservations = reservations(settings.seed, &seats, customers, per_seat);
        let start = reservations.iter().map(|r| r.steps[0].1).min().unwrap_or(0) - HOUR;
        let end = reservations
            .iter()
            .filter_map(|r| r.steps.last().map(|s| s.1))
            .max()
            .unwrap_or(0);
        let mut all: Vec<Ev> = Vec::with_capacity(reservations.len() * 8 + seats.len() * 8);
        let mut at = start;
        while at <= end {
            for i in 0..seats.len() {
                all.push(Ev {
                    at: at + i as i64 * MS,
                    reservation: CATALOGUE,
                    index: u32::try_from(i).unwrap_or(0),
                });
            }
            at += REANNOUNCE_EVERY;
        }
        for (r, reservation) in reservations.iter().enumerate() {
            for (k, (_, t)) in reservation.steps.iter().enumerate() {
                all.push(Ev {
                    at: *t,
                    reservation: u32::try_from(r).unwrap_or(0),
                    index: u32::try_from(k).unwrap_or(0),
                });
            }
        }
        if (all.len() as u64) < events {
            per_seat *= 2;
            continue;
        }
        all.sort_unstable();
        all.truncate(usize::try_from(events).unwrap_or(usize::MAX));
        let mut kept = vec![0usize; reservations.len()];
        for ev in &all {
            if ev.reservation != CATALOGUE {
                kept[ev.reservation as usize] += 1;
            }
        }
        let last = all.last().map_or(0, |e| e.at);
        let now = Utc::now().timestamp_micros();
        let shift = (now - last).div_euclid(HOUR) * HOUR;
        return Ok(History {
            seats,
            reservations,
            events: all,
            kept,
            shift,
            customers,
        });
    }
}

fn instant(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn money(amount: i64) -> pl::Money {
    pl::Money {
        amount,
        currency: pl::Currency::Krw,
    }
}

/// A rendered event: its topic (logical), key, type and envelope bytes.
struct Rendered {
    topic: &'static str,
    key: String,
    event_id: Uuid,
    event_type: &'static str,
    payload: Vec<u8>,
}

fn wrap<T: Event>(meta: EventMeta, key: String, data: T) -> Rendered {
    let envelope = Envelope::wrap(meta, data);
    Rendered {
        topic: T::TOPIC,
        key,
        event_id: envelope.id,
        event_type: T::TYPE,
        payload: envelope.to_json(),
    }
}

impl History {
    fn event_id(&self, seed: u64, ev: Ev) -> Uuid {
        let mut rng = derived(seed, u64::from(ev.reservation), u64::from(ev.index) + 1);
        uuid_v7(ev.at + self.shift, &mut rng)
    }

    /// A UUID v7 of the instant it was reserved, as seat makes them.
    fn reservation_id(&self, seed: u64, r: u32) -> Uuid {
        let booked = self.reservations[r as usize].steps[0].1;
        uuid_v7(booked + self.shift, &mut derived(seed, u64::from(r), 0x7E5))
    }

    fn customer_id(seed: u64, customer: u32) -> String {
        uuid_v4(&mut derived(seed, 0xC057, u64::from(customer))).to_string()
    }

    fn render(&self, seed: u64, ev: Ev) -> Rendered {
        let id = self.event_id(seed, ev);
        if ev.reservation == CATALOGUE {
            let seat = &self.seats[ev.index as usize];
            let meta = EventMeta {
                id,
                occurred_at: instant(ev.at + self.shift),
                source: "seat".to_owned(),
                correlation_id: seat.id.clone(),
                causation_id: "catalogue".to_owned(),
            };
            return wrap(
                meta,
                seat.id.clone(),
                pl::SeatDefined {
                    seat_id: seat.id.clone(),
                    zone: seat.zone.clone(),
                    kind: seat.kind.to_owned(),
                    hourly_price: money(seat.price),
                    enabled: seat.enabled,
                },
            );
        }
        let r = &self.reservations[ev.reservation as usize];
        let seat = &self.seats[r.seat as usize];
        let (step, at) = r.steps[ev.index as usize];
        let causation = if ev.index == 0 {
            format!(
                "req-{}",
                uuid_v4(&mut derived(seed, u64::from(ev.reservation), 0x4EC))
            )
        } else {
            let previous = Ev {
                at: r.steps[ev.index as usize - 1].1,
                reservation: ev.reservation,
                index: ev.index - 1,
            };
            self.event_id(seed, previous).to_string()
        };
        let source = match step {
            Step::BookingConfirmed
            | Step::BookingRejected
            | Step::SeatRegistered
            | Step::RegistrationCancelled { .. } => "registration",
            Step::PaymentCompleted | Step::PaymentDeclined | Step::PaymentRefunded => "payment",
            _ => "seat",
        };
        let reservation_id = self.reservation_id(seed, ev.reservation).to_string();
        let meta = EventMeta {
            id,
            occurred_at: instant(at + self.shift),
            source: source.to_owned(),
            correlation_id: reservation_id.clone(),
            causation_id: causation,
        };
        let mut ids = derived(seed, u64::from(ev.reservation), 0x1D5);
        let payment_id = uuid_v4(&mut ids).to_string();
        let registration_id = uuid_v4(&mut ids).to_string();
        let refund_id = uuid_v4(&mut ids).to_string();
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let entry_pass_code: String = (0..8)
            .map(|_| char::from(ALPHABET[ids.below(ALPHABET.len() as u64) as usize]))
            .collect();
        let starts_at = instant(r.starts + self.shift);
        let ends_at = instant(r.ends() + self.shift);
        let reference = pl::ReservationRef {
            reservation_id: reservation_id.clone(),
            seat_id: seat.id.clone(),
            customer_id: Self::customer_id(seed, r.customer),
            starts_at,
            ends_at,
        };
        let price = money(seat.price * i64::from(r.hours));
        let key = reservation_id.clone();
        match step {
            Step::Reserved => wrap(
                meta,
                key,
                pl::SeatReserved {
                    reservation: reference,
                    hours: r.hours,
                    price,
                    hold_expires_at: instant(r.steps[0].1 + HOLD + self.shift),
                },
            ),
            Step::BookingConfirmed => wrap(
                meta,
                key,
                pl::BookingConfirmed {
                    reservation_id,
                    confirmed_by: "auto-confirm".to_owned(),
                },
            ),
            Step::Confirmed => wrap(
                meta,
                key,
                pl::ReservationConfirmed {
                    reservation: reference,
                },
            ),
            Step::PaymentCompleted => wrap(
                meta,
                key,
                pl::PaymentCompleted {
                    reservation_id,
                    payment_id,
                    amount: price,
                },
            ),
            Step::Paid => wrap(
                meta,
                key,
                pl::ReservationPaid {
                    reservation: reference,
                    payment_id,
                    amount: price,
                },
            ),
            Step::SeatRegistered => wrap(
                meta,
                key,
                pl::SeatRegistered {
                    reservation_id,
                    registration_id,
                    seat_id: seat.id.clone(),
                    entry_pass_code,
                    starts_at,
                    ends_at,
                },
            ),
            Step::Registered => wrap(
                meta,
                key,
                pl::ReservationRegistered {
                    reservation: reference,
                    registration_id,
                },
            ),
            Step::Completed => wrap(
                meta,
                key,
                pl::ReservationCompleted {
                    reservation: reference,
                },
            ),
            Step::Cancelled { by_admin, was_paid } => wrap(
                meta,
                key,
                pl::ReservationCancelled {
                    reservation: reference,
                    cancelled_by: if by_admin {
                        pl::CancelledBy::Admin
                    } else {
                        pl::CancelledBy::Customer
                    },
                    was_paid,
                },
            ),
            Step::PaymentRefunded => wrap(
                meta,
                key,
                pl::PaymentRefunded {
                    reservation_id,
                    payment_id,
                    refund_id,
                    amount: price,
                },
            ),
            Step::RegistrationCancelled {
                registered,
                expired,
            } => wrap(
                meta,
                key,
                pl::RegistrationCancelled {
                    reservation_id,
                    registration_id: registered.then_some(registration_id),
                    reason: if expired {
                        "reservation expired".to_owned()
                    } else {
                        "reservation cancelled".to_owned()
                    },
                },
            ),
            Step::BookingRejected => wrap(
                meta,
                key,
                pl::BookingRejected {
                    reservation_id,
                    rejected_by: "admin".to_owned(),
                    reason: "the cafe is closed for cleaning then".to_owned(),
                },
            ),
            Step::Rejected => wrap(
                meta,
                key,
                pl::ReservationRejected {
                    reservation: reference,
                    reason: "the cafe is closed for cleaning then".to_owned(),
                },
            ),
            Step::PaymentDeclined => wrap(
                meta,
                key,
                pl::PaymentDeclined {
                    reservation_id,
                    payment_id,
                    reason: "card declined".to_owned(),
                },
            ),
            Step::PaymentFailed => wrap(
                meta,
                key,
                pl::ReservationPaymentFailed {
                    reservation: reference,
                    reason: "card declined".to_owned(),
                },
            ),
            Step::Expired { confirmed } => wrap(
                meta,
                key,
                pl::ReservationExpired {
                    reservation: reference,
                    expired_in: if confirmed { "CONFIRMED" } else { "REQUESTED" }.to_owned(),
                },
            ),
        }
    }

    /// The board at `at` (relative instant) as seat-view composes it.
    fn board_at(&self, at: i64) -> BTreeMap<String, String> {
        let mut strongest = vec![0u8; self.seats.len()];
        for (r, reservation) in self.reservations.iter().enumerate() {
            if self.kept[r] == 0 || !(reservation.starts <= at && at < reservation.ends()) {
                continue;
            }
            if let Some(status) = reservation.status_after(self.kept[r]) {
                let p = presence(status);
                let s = reservation.seat as usize;
                strongest[s] = strongest[s].max(p);
            }
        }
        self.seats
            .iter()
            .zip(strongest)
            .map(|(seat, p)| {
                let status = match (seat.enabled, p) {
                    (false, _) => "DISABLED",
                    (true, 2) => "OCCUPIED",
                    (true, 1) => "HELD",
                    _ => "FREE",
                };
                (seat.id.clone(), status.to_owned())
            })
            .collect()
    }

    fn samples(&self, seed: u64) -> (Vec<BoardSample>, Vec<TimelineSample>) {
        let first = self.events.first().map_or(0, |e| e.at);
        let last = self.events.last().map_or(0, |e| e.at);
        let mut rng = derived(seed, 0x5A3F, 1);
        // The present, a day ahead (bookings made for later), and instants across the history.
        let mut instants = vec![last, last + DAY];
        for _ in 0..8 {
            instants.push(rng.range(first, last));
        }
        let boards = instants
            .into_iter()
            .map(|at| BoardSample {
                at: instant(at + self.shift),
                seats: self.board_at(at),
            })
            .collect();
        let mut per_customer: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
        for (r, reservation) in self.reservations.iter().enumerate() {
            if let Some(status) = (self.kept[r] > 0)
                .then(|| reservation.status_after(self.kept[r]))
                .flatten()
            {
                per_customer
                    .entry(reservation.customer)
                    .or_default()
                    .insert(
                        self.reservation_id(seed, u32::try_from(r).unwrap_or(0))
                            .to_string(),
                        status.to_owned(),
                    );
            }
        }
        // seat-view lists at most 200 per request.
        let candidates: Vec<u32> = per_customer
            .iter()
            .filter(|(_, rs)| rs.len() <= 200)
            .map(|(c, _)| *c)
            .collect();
        let mut timelines = Vec::new();
        for _ in 0..candidates.len().min(20) {
            let c = candidates[rng.below(candidates.len() as u64) as usize];
            if timelines
                .iter()
                .any(|t: &TimelineSample| t.customer == Self::customer_id(seed, c))
            {
                continue;
            }
            timelines.push(TimelineSample {
                customer: Self::customer_id(seed, c),
                reservations: per_customer[&c].clone(),
            });
        }
        (boards, timelines)
    }
}

/// Counts acknowledgements and keeps the first failure.
#[derive(Debug, Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Default)]
struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.0.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.0.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Builds the history, produces it and writes the manifest.
pub async fn run(settings: &Settings) -> anyhow::Result<Manifest> {
    let built = Instant::now();
    let history = history(settings)?;
    eprintln!(
        "generate-events: {} events of {} reservations on {} seats for {} customers built in {:.1}s",
        history.events.len(),
        history.kept.iter().filter(|k| **k > 0).count(),
        history.seats.len(),
        history.customers,
        built.elapsed().as_secs_f64()
    );
    let kafka = &settings.kafka;
    let topics: Vec<String> = shared_events::topics::ALL
        .iter()
        .map(|t| kafka.topic(t))
        .collect();
    studycafe_messaging::topics::ensure_topics(kafka, &topics)
        .await
        .context("creating the topics")?;

    // The relay's settings (acks=all, idempotence as the stack has it, its compression), with
    // batching for throughput: the order per key is kept either way (idempotence, or one
    // request in flight).
    let mut config = kafka.producer();
    config
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", "300000")
        .set("compression.type", &settings.compression);
    let context = Counting::default();
    let deliveries = context.0.clone();
    let producer: ThreadedProducer<Counting> = config
        .create_with_context(context)
        .context("creating the producer")?;

    let started = Instant::now();
    let mut by_topic: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    let mut last_print = Instant::now();
    let mut last_acked = 0;
    let total = history.events.len() as u64;
    for (sent, ev) in history.events.iter().enumerate() {
        let rendered = history.render(settings.seed, *ev);
        let topic = kafka.topic(rendered.topic);
        let event_id = rendered.event_id.to_string();
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: "event-id",
                value: Some(event_id.as_bytes()),
            })
            .insert(Header {
                key: "event-type",
                value: Some(rendered.event_type.as_bytes()),
            });
        let mut record = BaseRecord::to(&topic)
            .key(&rendered.key)
            .payload(&rendered.payload)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => bail!("producing: {e}"),
            }
            if last_print.elapsed() >= Duration::from_secs(1) {
                last_acked = progress(&deliveries, sent as u64, total, started, last_acked);
                last_print = Instant::now();
            }
        }
        bytes += rendered.payload.len() as u64;
        *by_topic.entry(rendered.topic.to_owned()).or_default() += 1;
        *by_type.entry(rendered.event_type.to_owned()).or_default() += 1;
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_acked = progress(&deliveries, sent as u64 + 1, total, started, last_acked);
            last_print = Instant::now();
        }
        if deliveries.failed.load(Ordering::Relaxed) > 0 {
            break;
        }
    }
    while deliveries.ok.load(Ordering::Relaxed) + deliveries.failed.load(Ordering::Relaxed) < total
        && deliveries.failed.load(Ordering::Relaxed) == 0
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_acked = progress(&deliveries, total, total, started, last_acked);
            last_print = Instant::now();
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the producer")?;
    if deliveries.failed.load(Ordering::Relaxed) > 0 {
        let first = deliveries
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        bail!(
            "{} events were not acknowledged (first error: {})",
            deliveries.failed.load(Ordering::Relaxed),
            first.unwrap_or_default()
        );
    }
    let produce_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "generate-events: {total} events ({:.0} MB) acknowledged in {produce_secs:.1}s: {:.0}/s",
        bytes as f64 / 1e6,
        total as f64 / produce_secs
    );

    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for (r, reservation) in history.reservations.iter().enumerate() {
        if history.kept[r] > 0
            && let Some(status) = reservation.status_after(history.kept[r])
        {
            *statuses.entry(status.to_owned()).or_default() += 1;
        }
    }
    let (boards, timelines) = history.samples(settings.seed);
    let manifest = Manifest {
        prefix: kafka.topic_prefix.clone(),
        events: total,
        bytes,
        by_topic,
        by_type,
        seats: history.seats.len(),
        customers: history.customers,
        reservations: history.kept.iter().filter(|k| **k > 0).count(),
        statuses,
        seed: settings.seed,
        first_event_at: instant(history.events.first().map_or(0, |e| e.at) + history.shift),
        now: instant(history.events.last().map_or(0, |e| e.at) + history.shift),
        produce_secs,
        produce_rate: total as f64 / produce_secs,
        boards,
        timelines,
    };
    std::fs::write(&settings.manifest, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("writing {}", settings.manifest.display()))?;
    Ok(manifest)
}

fn progress(deliveries: &Deliveries, sent: u64, total: u64, started: Instant, last: u64) -> u64 {
    let acked = deliveries.ok.load(Ordering::Relaxed);
    eprintln!(
        "[generate-events] {:>6.1}s  {sent:>9}/{total} sent  {acked:>9} acknowledged  {:>7}/s now",
        started.elapsed().as_secs_f64(),
        acked - last
    );
    acked
}
