//! The Redis adapter of [`ViewStore`] (production): `SEAT_VIEW_DATABASE_URL=redis://…`.
//!
//! Keys, all under the configured prefix `P` (`SEAT_VIEW_REDIS_PREFIX`) and, except the
//! generation, under the generation `N` they belong to — `P:{gN}:…`, one hash tag so a
//! generation's keys share a cluster slot and one script may touch them all:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:generation` | string | the current generation (absent = 1) |
//! | `P:{gN}:seats` | hash | seat id → seat definition (JSON) |
//! | `P:{gN}:r:<reservation id>` | hash | `seat` → the seat topic's part (JSON), `details` → registration's and payment's part (JSON) |
//! | `P:{gN}:board` | sorted set | reservation ids that can show on the board, scored by window end (µs) |
//! | `P:{gN}:board:facts` | hash | reservation id → seat, status, window (JSON) for the board |
//! | `P:{gN}:c:<customer id>` | sorted set | the customer's reservation ids, scored by creation (µs) |
//! | `P:{gN}:inbox:<event id>` | string | the event was applied (expires after [`INBOX_TTL`]) |
//!
//! `board(at)` reads only the reservations whose window ends after `at` (a range of the board
//! index) and drops those not started yet: for the present that is what is booked from now on,
//! never every reservation ever made. Released reservations leave the index.
//!
//! Atomicity: each consumed event is ONE Lua script ([`APPLY`]) that checks the inbox claim,
//! checks that the document it read-modified is unchanged (compare-and-set: the domain's
//! `evolve` rules run here in Rust, not in Lua), then writes the claim, the document, the
//! indexes and — for a board change — PUBLISHes it on the board channel
//! (`outbound::redis_feed`). Redis runs a script alone and all its checks come before its first
//! write, so a crash never leaves half an event or a claim without its change. A changed
//! document (another replica applied a concurrent event of the same reservation, e.g. during a
//! rebalance) makes the script write nothing; the change is recomputed and retried.
//!
//! The board channel is `P:board-changes`. Redis pub/sub ignores the database number of the
//! URL, so two deployments on one Redis server need different prefixes, not just different
//! `/db`s. Redis must not evict keys (`maxmemory-policy noeviction`; checked and warned about
//! at start-up), and should persist with an append-only file: with `appendfsync everysec` a
//! Redis crash may lose the last second of applied events (their offsets already committed),
//! which `--rebuild` recovers.
//!
//! Inbox entries expire after seven days: a redelivery later than that (far beyond any
//! consumer-group rebalance or producer retry) would be applied again.
//!
//! Rebuild (`start_over`) moves `P:generation` on by one (atomically), so the new generation
//! starts from an empty keyspace by construction, then UNLINKs the older generations' keys in
//! SCAN batches. A crash during that cleanup only leaves garbage the next rebuild removes.
//! Replicas still running the old generation keep writing its keys until restarted.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use redis::{AsyncCommands as _, aio::ConnectionManager};
use serde::{Deserialize, Serialize};

use crate::{
    domain::{
        BoardChange, BoardFacts, BoardPresence, BookingDecision, ConsumedChange, CustomerId,
        ExternalRef, Generation, Money, Occupancy, PageLimit, PaymentStatus, RegistrationStatus,
        Reservation, ReservationDetails, ReservationId, ReservationRef, ReservationStatus,
        SeatDefinition, SeatId, SeatKind, TimelineEntry, ViewChange, Window,
        ports::{Applied, StoreError, ViewStore},
    },
    outbound::redis_feed,
};

/// How long an applied event's id is remembered.
pub const INBOX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a compare-and-set that lost a race is recomputed before giving up (the consumer
/// then retries the event later).
const CAS_ATTEMPTS: usize = 16;

/// How many keys one cleanup batch scans and unlinks.
const CLEANUP_BATCH: usize = 500;

/// Claim + compare-and-set + apply + publish, atomically. See the module docs.
///
/// KEYS: 1 inbox claim, 2 document hash, 3 board index, 4 board facts, 5 customer timeline,
///       6 the customer timeline the reservation was in before (same as 5 unless it moved).
/// ARGV: 1 inbox TTL (s), 2 document field, 3 expected value ('' = absent, '*' = no check),
///       4 new value, 5 board op ('' | 'add' | 'rem'), 6 reservation id, 7 board score,
///       8 board fact, 9 timeline score ('' = none), 10 channel, 11 payload ('' = none).
/// Returns 1 applied, 0 already applied, -1 the document changed since it was read.
const APPLY: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] ~= '*' then
  local current = redis.call('HGET', KEYS[2], ARGV[2])
  if current == false then current = '' end
  if current ~= ARGV[3] then return -1 end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
if ARGV[5] == 'add' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
  redis.call('HSET', KEYS[4], ARGV[6], ARGV[8])
elseif ARGV[5] == 'rem' then
  redis.call('ZREM', KEYS[3], ARGV[6])
  redis.call('HDEL', KEYS[4], ARGV[6])
end
if ARGV[9] ~= '' then
  if KEYS[6] ~= KEYS[5] then redis.call('ZREM', KEYS[6], ARGV[6]) end
  redis.call('ZADD', KEYS[5], ARGV[9], ARGV[6])
end
if ARGV[11] ~= '' then redis.call('PUBLISH', ARGV[10], ARGV[11]) end
return 1
";

/// The next generation (a missing counter is generation 1).
const NEXT_GENERATION: &str = r"
local next = tonumber(redis.call('GET', KEYS[1]) or '1') + 1
redis.call('SET', KEYS[1], next)
return next
";

#[derive(Clone)]
pub struct RedisViews {
    connection: ConnectionManager,
    prefix: String,
    apply: Arc<redis::Script>,
    /// The generation this process reads and writes: pinned when opened (or rebuilt), so a
    /// replica still consuming an older generation never writes into a newer one's keys.
    pinned: Arc<AtomicU32>,
}

impl std::fmt::Debug for RedisViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisViews")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn instant(value: i64) -> anyhow::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(value).ok_or_else(|| anyhow::anyhow!("instant {value}"))
}

fn external(what: &'static str, value: Option<&str>) -> anyhow::Result<Option<ExternalRef>> {
    Ok(value.map(|v| ExternalRef::parse(what, v)).transpose()?)
}

fn money(value: Option<i64>) -> anyhow::Result<Option<Money>> {
    Ok(value.map(Money::krw).transpose()?)
}

fn wire<T>(
    what: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<Option<T>> {
    value
        .map(|v| parse(v).ok_or_else(|| anyhow::anyhow!("{what} {v:?}")))
        .transpose()
}

/// A seat as stored in `P:{gN}:seats`.
#[derive(Debug, Serialize, Deserialize)]
struct SeatDoc {
    zone: String,
    kind: String,
    hourly_price: i64,
    enabled: bool,
}

impl SeatDoc {
    fn of(seat: &SeatDefinition) -> Self {
        Self {
            zone: seat.zone.clone(),
            kind: seat.kind.as_str().to_owned(),
            hourly_price: seat.hourly_price.won(),
            enabled: seat.enabled,
        }
    }

    fn into_seat(self, id: &str) -> anyhow::Result<SeatDefinition> {
        Ok(SeatDefinition {
            id: SeatId::parse(id)?,
            zone: self.zone,
            kind: SeatKind::parse(&self.kind)?,
            hourly_price: Money::krw(self.hourly_price)?,
            enabled: self.enabled,
        })
    }
}

/// The seat topic's part of a reservation (`seat` field of its hash).
#[derive(Debug, Serialize, Deserialize)]
struct ReservationDoc {
    id: String,
    seat: String,
    customer: String,
    starts_at: i64,
    ends_at: i64,
    hours: u8,
    price: Option<i64>,
    hold_expires_at: Option<i64>,
    status: String,
    reason: Option<String>,
    payment_id: Option<String>,
    registration_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl ReservationDoc {
    fn of(r: &Reservation) -> Self {
        Self {
            id: r.reference.id.to_string(),
            seat: r.reference.seat_id.as_str().to_owned(),
            customer: r.reference.customer_id.as_str().to_owned(),
            starts_at: micros(r.reference.window.starts_at()),
            ends_at: micros(r.reference.window.ends_at()),
            hours: r.hours,
            price: r.price.map(|p| p.won()),
            hold_expires_at: r.hold_expires_at.map(micros),
            status: r.status.as_str().to_owned(),
            reason: r.reason.clone(),
            payment_id: r.payment_id.as_ref().map(|p| p.as_str().to_owned()),
            registration_id: r.registration_id.as_ref().map(|p| p.as_str().to_owned()),
            created_at: micros(r.created_at),
            updated_at: micros(r.updated_at),
        }
    }

    fn into_reservation(self) -> anyhow::Result<Reservation> {
        Ok(Reservation {
            reference: ReservationRef {
                id: ReservationId::parse(&self.id)?,
                seat_id: SeatId::parse(&self.seat)?,
                customer_id: CustomerId::parse(&self.customer)?,
                window: Window::new(instant(self.starts_at)?, instant(self.ends_at)?)?,
            },
            hours: self.hours,
            price: money(self.price)?,
            hold_expires_at: self.hold_expires_at.map(instant).transpose()?,
            status: ReservationStatus::parse(&self.status)
                .ok_or_else(|| anyhow::anyhow!("status {:?}", self.status))?,
            reason: self.reason,
            payment_id: external("payment_id", self.payment_id.as_deref())?,
            registration_id: external("registration_id", self.registration_id.as_deref())?,
            created_at: instant(self.created_at)?,
            updated_at: instant(self.updated_at)?,
        })
    }
}

/// Registration's and payment's part of a reservation (`details` field of its hash).
#[derive(Debug, Serialize, Deserialize)]
struct DetailsDoc {
    id: String,
    booking: Option<String>,
    registration_status: Option<String>,
    registration_id: Option<String>,
    entry_pass_code: Option<String>,
    payment_status: Option<String>,
    payment_id: Option<String>,
    refund_id: Option<String>,
    refund_amount: Option<i64>,
    updated_at: i64,
}

impl DetailsDoc {
    fn of(d: &ReservationDetails) -> Self {
        let text = |r: &Option<ExternalRef>| r.as_ref().map(|r| r.as_str().to_owned());
        Self {
            id: d.reservation_id.to_string(),
            booking: d.booking.map(|b| b.as_str().to_owned()),
            registration_status: d.registration_status.map(|s| s.as_str().to_owned()),
            registration_id: text(&d.registration_id),
            entry_pass_code: text(&d.entry_pass_code),
            payment_status: d.payment_status.map(|s| s.as_str().to_owned()),
            payment_id: text(&d.payment_id),
            refund_id: text(&d.refund_id),
            refund_amount: d.refund_amount.map(|m| m.won()),
            updated_at: micros(d.updated_at),
        }
    }

    fn into_details(self) -> anyhow::Result<ReservationDetails> {
        Ok(ReservationDetails {
            reservation_id: ReservationId::parse(&self.id)?,
            booking: wire("booking", self.booking.as_deref(), BookingDecision::parse)?,
            registration_status: wire(
                "registration_status",
                self.registration_status.as_deref(),
                RegistrationStatus::parse,
            )?,
            registration_id: external("registration_id", self.registration_id.as_deref())?,
            entry_pass_code: external("entry_pass_code", self.entry_pass_code.as_deref())?,
            payment_status: wire(
                "payment_status",
                self.payment_status.as_deref(),
                PaymentStatus::parse,
            )?,
            payment_id: external("payment_id", self.payment_id.as_deref())?,
            refund_id: external("refund_id", self.refund_id.as_deref())?,
            refund_amount: money(self.refund_amount)?,
            updated_at: instant(self.updated_at)?,
        })
    }
}

/// What the board needs of a reservation (`P:{gN}:board:facts`).
#[derive(Debug, Serialize, Deserialize)]
struct BoardFact {
    seat: String,
    status: String,
    starts_at: i64,
    ends_at: i64,
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("documents serialize")
}

fn parse<T: for<'de> Deserialize<'de>>(raw: &str) -> anyhow::Result<T> {
    Ok(serde_json::from_str(raw)?)
}

const SEAT_FIELD: &str = "seat";
const DETAILS_FIELD: &str = "details";

/// One script invocation's keys and arguments.
struct Invocation {
    document: String,
    field: String,
    expected: String,
    value: String,
    board_op: &'static str,
    member: String,
    board_score: i64,
    board_fact: String,
    customer: String,
    previous_customer: String,
    timeline_score: String,
    payload: String,
}

impl RedisViews {
    /// Connects (the connection manager reconnects by itself after Redis restarts) and checks
    /// that Redis answers. There is no schema: keys are created as events arrive.
    pub async fn open(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_max_delay(Duration::from_secs(2));
        let mut connection = ConnectionManager::new_with_config(client, config).await?;
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        let views = Self {
            connection,
            prefix: prefix.to_owned(),
            apply: Arc::new(redis::Script::new(APPLY)),
            pinned: Arc::new(AtomicU32::new(1)),
        };
        let stored = views.stored_generation().await?;
        views.pinned.store(stored, Ordering::SeqCst);
        views.check_eviction_policy().await;
        Ok(views)
    }

    /// Warns when Redis may evict keys under memory pressure: an evicted inbox entry lets a
    /// redelivered event apply twice, an evicted view loses it. Only `noeviction` is safe.
    /// Managed Redis often disables CONFIG; then nothing can be said.
    async fn check_eviction_policy(&self) {
        let mut connection = self.connection.clone();
        let policy: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut connection)
            .await;
        match policy.as_deref() {
            Ok([_, policy]) if policy == "noeviction" => {}
            Ok([_, policy]) => tracing::warn!(
                policy,
                "Redis may evict the views' keys (inbox entries, views) under memory pressure; \
                 set maxmemory-policy noeviction"
            ),
            Ok(_) | Err(_) => tracing::debug!("Redis eviction policy unknown (CONFIG GET refused)"),
        }
    }

    fn generation_key(&self) -> String {
        format!("{}:generation", self.prefix)
    }

    async fn stored_generation(&self) -> redis::RedisResult<u32> {
        let mut connection = self.connection.clone();
        let value: Option<u32> = connection.get(self.generation_key()).await?;
        Ok(value.unwrap_or(1).max(1))
    }

    /// The key space of a generation: `P:{gN}`.
    fn space(&self, generation: u32) -> String {
        format!("{}:{{g{generation}}}", self.prefix)
    }

    /// The key space of the pinned generation.
    fn pinned_space(&self) -> String {
        self.space(self.pinned.load(Ordering::SeqCst))
    }

    async fn run(
        &self,
        space: &str,
        event_id: uuid::Uuid,
        call: &Invocation,
    ) -> redis::RedisResult<i64> {
        let mut connection = self.connection.clone();
        // EVALSHA, falling back to EVAL (and caching the script) when Redis does not know it.
        self.apply
            .key(format!("{space}:inbox:{event_id}"))
            .key(&call.document)
            .key(format!("{space}:board"))
            .key(format!("{space}:board:facts"))
            .key(&call.customer)
            .key(&call.previous_customer)
            .arg(INBOX_TTL.as_secs())
            .arg(&call.field)
            .arg(&call.expected)
            .arg(&call.value)
            .arg(call.board_op)
            .arg(&call.member)
            .arg(call.board_score)
            .arg(&call.board_fact)
            .arg(&call.timeline_score)
            .arg(redis_feed::channel(&self.prefix))
            .arg(&call.payload)
            .invoke_async(&mut connection)
            .await
    }

    async fn read_field(&self, key: &str, field: &str) -> redis::RedisResult<Option<String>> {
        let mut connection = self.connection.clone();
        connection.hget(key, field).await
    }

    /// The script call for `consumed`, given the document as it was read.
    fn invocation(
        &self,
        space: &str,
        consumed: &ConsumedChange,
        current: Option<&str>,
    ) -> anyhow::Result<Invocation> {
        let payload = BoardChange::of(consumed)
            .map(|c| redis_feed::encode(&c))
            .unwrap_or_default();
        let none = format!("{space}:none");
        let mut call = Invocation {
            document: String::new(),
            field: String::new(),
            expected: current.unwrap_or_default().to_owned(),
            value: String::new(),
            board_op: "",
            member: String::new(),
            board_score: 0,
            board_fact: String::new(),
            customer: none.clone(),
            previous_customer: none,
            timeline_score: String::new(),
            payload,
        };
        match &consumed.change {
            ViewChange::Seat(seat) => {
                // The latest definition wins: nothing read, nothing to compare.
                call.document = format!("{space}:seats");
                call.field = seat.id.as_str().to_owned();
                call.expected = "*".to_owned();
                call.value = json(&SeatDoc::of(seat));
            }
            ViewChange::Reservation(change) => {
                let existing = current
                    .map(|raw| parse::<ReservationDoc>(raw)?.into_reservation())
                    .transpose()?;
                let previous_customer = existing.as_ref().map(|r| r.reference.customer_id.clone());
                let next = Reservation::evolve(existing, change);
                let id = next.reference.id.to_string();
                call.document = format!("{space}:r:{id}");
                call.field = SEAT_FIELD.to_owned();
                call.value = json(&ReservationDoc::of(&next));
                if next.status.presence() == BoardPresence::None {
                    call.board_op = "rem";
                } else {
                    call.board_op = "add";
                    call.board_score = micros(next.reference.window.ends_at());
                    call.board_fact = json(&BoardFact {
                        seat: next.reference.seat_id.as_str().to_owned(),
                        status: next.status.as_str().to_owned(),
                        starts_at: micros(next.reference.window.starts_at()),
                        ends_at: micros(next.reference.window.ends_at()),
                    });
                }
                call.member = id;
                call.customer = format!("{space}:c:{}", next.reference.customer_id.as_str());
                call.previous_customer = previous_customer.map_or_else(
                    || call.customer.clone(),
                    |c| format!("{space}:c:{}", c.as_str()),
                );
                call.timeline_score = micros(next.created_at).to_string();
            }
            ViewChange::Detail(update) => {
                let existing = current
                    .map(|raw| parse::<DetailsDoc>(raw)?.into_details())
                    .transpose()?;
                let next = ReservationDetails::evolve(existing, update);
                call.document = format!("{space}:r:{}", update.reservation_id);
                call.field = DETAILS_FIELD.to_owned();
                call.value = json(&DetailsDoc::of(&next));
            }
        }
        Ok(call)
    }

    async fn apply_in(&self, consumed: &ConsumedChange) -> anyhow::Result<Applied> {
        let space = self.pinned_space();
        let target = match &consumed.change {
            ViewChange::Seat(_) => None,
            ViewChange::Reservation(change) => {
                Some((format!("{space}:r:{}", change.reference.id), SEAT_FIELD))
            }
            ViewChange::Detail(update) => Some((
                format!("{space}:r:{}", update.reservation_id),
                DETAILS_FIELD,
            )),
        };
        for _ in 0..CAS_ATTEMPTS {
            let current = match &target {
                Some((key, field)) => self.read_field(key, field).await?,
                None => None,
            };
            let call = self.invocation(&space, consumed, current.as_deref())?;
            match self.run(&space, consumed.event_id, &call).await? {
                1 => return Ok(Applied::Applied),
                0 => return Ok(Applied::AlreadyApplied),
                _ => {
                    tracing::debug!(event_id = %consumed.event_id, "view document changed meanwhile; recomputing")
                }
            }
        }
        anyhow::bail!(
            "the view document of event {} kept changing",
            consumed.event_id
        )
    }

    async fn board_in(&self, at: DateTime<Utc>) -> anyhow::Result<BoardFacts> {
        let space = self.pinned_space();
        let mut connection = self.connection.clone();
        let seats: Vec<(String, String)> = connection.hgetall(format!("{space}:seats")).await?;
        let mut seats = seats
            .into_iter()
            .map(|(id, raw)| parse::<SeatDoc>(&raw)?.into_seat(&id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        seats.sort_by(|a, b| a.id.cmp(&b.id));
        let at_micros = micros(at);
        // Windows are half-open: a reservation ending exactly at `at` no longer covers it.
        let ids: Vec<String> = connection
            .zrangebyscore(format!("{space}:board"), format!("({at_micros}"), "+inf")
            .await?;
        let mut covering = Vec::new();
        if !ids.is_empty() {
            let facts: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(format!("{space}:board:facts"))
                .arg(&ids)
                .query_async(&mut connection)
                .await?;
            // A fact gone between the two reads was released meanwhile: skip it.
            for raw in facts.into_iter().flatten() {
                let fact: BoardFact = parse(&raw)?;
                if fact.starts_at <= at_micros && at_micros < fact.ends_at {
                    covering.push(Occupancy {
                        seat_id: SeatId::parse(&fact.seat)?,
                        status: ReservationStatus::parse(&fact.status)
                            .ok_or_else(|| anyhow::anyhow!("status {:?}", fact.status))?,
                        ends_at: instant(fact.ends_at)?,
                    });
                }
            }
        }
        Ok(BoardFacts { seats, covering })
    }

    async fn reservations_in(
        &self,
        customer: &CustomerId,
        limit: PageLimit,
    ) -> anyhow::Result<Vec<TimelineEntry>> {
        let space = self.pinned_space();
        let mut connection = self.connection.clone();
        // Score (creation) descending, then member (id) descending: newest first.
        let ids: Vec<String> = connection
            .zrevrange(
                format!("{space}:c:{}", customer.as_str()),
                0,
                isize::try_from(limit.get()).unwrap_or(isize::MAX) - 1,
            )
            .await?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(format!("{space}:r:{id}"))
                .arg(SEAT_FIELD)
                .arg(DETAILS_FIELD);
        }
        let docs: Vec<(Option<String>, Option<String>)> = if ids.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut connection).await?
        };
        let mut entries = Vec::with_capacity(docs.len());
        for (seat, details) in docs {
            let Some(seat) = seat else { continue };
            entries.push(TimelineEntry {
                reservation: parse::<ReservationDoc>(&seat)?.into_reservation()?,
                details: details
                    .map(|raw| parse::<DetailsDoc>(&raw)?.into_details())
                    .transpose()?,
            });
        }
        Ok(entries)
    }

    async fn start_over_in(&self) -> anyhow::Result<Generation> {
        let mut connection = self.connection.clone();
        let next: u32 = redis::Script::new(NEXT_GENERATION)
            .key(self.generation_key())
            .invoke_async(&mut connection)
            .await?;
        // Every older generation's keys go (and any leftovers of an interrupted cleanup).
        let keep = format!("{}:", self.space(next));
        let pattern = format!("{}:{{g*", self.prefix);
        let mut cursor: u64 = 0;
        let mut removed = 0usize;
        loop {
            let (next_cursor, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(CLEANUP_BATCH)
                .query_async(&mut connection)
                .await?;
            let stale: Vec<&String> = keys.iter().filter(|k| !k.starts_with(&keep)).collect();
            if !stale.is_empty() {
                let _: i64 = redis::cmd("UNLINK")
                    .arg(&stale)
                    .query_async(&mut connection)
                    .await?;
                removed += stale.len();
            }
            cursor = next_cursor;
            if cursor == 0 {
                break;
            }
        }
        self.pinned.store(next, Ordering::SeqCst);
        tracing::info!(generation = next, removed, "older view generations removed");
        Ok(Generation::new(next))
    }
}

impl ViewStore for RedisViews {
    async fn apply(&self, consumed: &ConsumedChange) -> Result<Applied, StoreError> {
        self.apply_in(consumed).await.map_err(store_error)
    }

    async fn board_at(&self, at: DateTime<Utc>) -> Result<BoardFacts, StoreError> {
        self.board_in(at).await.map_err(store_error)
    }

    async fn reservations_of(
        &self,
        customer: &CustomerId,
        limit: PageLimit,
    ) -> Result<Vec<TimelineEntry>, StoreError> {
        self.reservations_in(customer, limit)
            .await
            .map_err(store_error)
    }

    async fn generation(&self) -> Result<Generation, StoreError> {
        let stored = self.stored_generation().await.map_err(store_error)?;
        self.pinned.store(stored, Ordering::SeqCst);
        Ok(Generation::new(stored))
    }

    async fn start_over(&self) -> Result<Generation, StoreError> {
        self.start_over_in().await.map_err(store_error)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}
