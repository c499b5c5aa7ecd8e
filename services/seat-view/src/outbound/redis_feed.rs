//! Live board changes across replicas, through a Redis pub/sub channel.
//!
//! With Redis the consumer group splits the topics' partitions across the seat-view replicas,
//! so no replica's own consumer sees every change. The Redis store therefore PUBLISHes each
//! committed board change on `<prefix>:board-changes` from inside the very script that commits
//! it (never a change that did not commit, never one twice), and every replica runs a
//! [`BoardChannelRelay`] that subscribes to the channel and feeds its local
//! [`BroadcastFeed`], whichever replica applied the event.
//!
//! Pub/sub is fire-and-forget: while a replica is not subscribed (Redis restarting, network
//! trouble) it misses changes. The relay reconnects with backoff and then sends its watchers a
//! gap marker, which they get as a `resync` event (refetch the board), instead of leaving them
//! with a board that silently skipped changes. A subscribed connection only ever reads, so a
//! connection that died without a FIN/RST (a partition, a vanished host) would look like a
//! quiet channel forever: the relay PINGs it every [`PING_EVERY`] and resubscribes when no
//! answer comes within [`ANSWER_WITHIN`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use studycafe_platform::liveness::{Heartbeat, Heartbeats};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    domain::{BoardChange, ReservationId, ReservationStatus, SeatId, ports::BoardFeed},
    outbound::feed::BroadcastFeed,
};

/// The channel of a key prefix.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}:board-changes")
}

/// A board change on the channel (JSON; instants RFC 3339 with their full precision, so a
/// watcher on any replica sees exactly what the event said).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Wire {
    #[serde(rename_all = "camelCase")]
    Reservation {
        event_id: Uuid,
        seat_id: String,
        reservation_id: String,
        status: String,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
        occurred_at: DateTime<Utc>,
    },
    #[serde(rename_all = "camelCase")]
    Seat {
        event_id: Uuid,
        seat_id: String,
        enabled: bool,
    },
}

pub fn encode(change: &BoardChange) -> String {
    let wire = match change {
        BoardChange::Reservation {
            event_id,
            seat_id,
            reservation_id,
            status,
            starts_at,
            ends_at,
            occurred_at,
        } => Wire::Reservation {
            event_id: *event_id,
            seat_id: seat_id.as_str().to_owned(),
            reservation_id: reservation_id.to_string(),
            status: status.as_str().to_owned(),
            starts_at: *starts_at,
            ends_at: *ends_at,
            occurred_at: *occurred_at,
        },
        BoardChange::Seat {
            event_id,
            seat_id,
            enabled,
        } => Wire::Seat {
            event_id: *event_id,
            seat_id: seat_id.as_str().to_owned(),
            enabled: *enabled,
        },
    };
    serde_json::to_string(&wire).expect("a board change serializes")
}

pub fn decode(payload: &[u8]) -> anyhow::Result<BoardChange> {
    Ok(match serde_json::from_slice::<Wire>(payload)? {
        Wire::Reservation {
            event_id,
            seat_id,
            reservation_id,
            status,
            starts_at,
            ends_at,
            occurred_at,
        } => BoardChange::Reservation {
            event_id,
            seat_id: SeatId::parse(&seat_id)?,
            reservation_id: ReservationId::parse(&reservation_id)?,
            status: ReservationStatus::parse(&status)
                .ok_or_else(|| anyhow::anyhow!("status {status:?}"))?,
            starts_at,
            ends_at,
            occurred_at,
        },
        Wire::Seat {
            event_id,
            seat_id,
            enabled,
        } => BoardChange::Seat {
            event_id,
            seat_id: SeatId::parse(&seat_id)?,
            enabled,
        },
    })
}

/// The projection's feed when the store publishes for it: nothing to do locally, the change
/// comes back to every replica (this one included) through the channel.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishedByStore;

impl BoardFeed for PublishedByStore {
    fn publish(&self, _change: BoardChange) {}
}

/// The board feed's loop name in `/health/live`.
const BOARD_FEED: &str = "board feed";

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How often an idle subscription is checked (see the module docs).
pub const PING_EVERY: Duration = Duration::from_secs(10);
/// How long subscribing, or answering a check, may take before the connection is given up.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Subscribes to the board channel and feeds the local watchers (one per replica).
pub struct BoardChannelRelay {
    client: redis::Client,
    channel: String,
    feed: BroadcastFeed,
    first: Option<redis::aio::PubSub>,
    /// Busy while a change is handed to the watchers or a subscription is checked; waiting
    /// for messages and in resubscription backoffs.
    heartbeat: Heartbeat,
}

impl std::fmt::Debug for BoardChannelRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardChannelRelay")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

async fn subscribe(client: &redis::Client, channel: &str) -> anyhow::Result<redis::aio::PubSub> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(ANSWER_WITHIN, attempt).await {
        Ok(subscribed) => Ok(subscribed?),
        Err(_) => anyhow::bail!("no answer within {ANSWER_WITHIN:?}"),
    }
}

/// Why a subscription stopped relaying.
enum Ended {
    Shutdown,
    Lost(String),
}

impl BoardChannelRelay {
    /// Subscribes now, so changes committed once the service runs are not missed.
    pub async fn subscribe(url: &str, prefix: &str, feed: BroadcastFeed) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let channel = channel(prefix);
        let first = subscribe(&client, &channel).await?;
        Ok(Self {
            client,
            channel,
            feed,
            first: Some(first),
            heartbeat: Heartbeat::detached(BOARD_FEED),
        })
    }

    /// Reports this relay's progress to `heartbeats` as `board feed`.
    pub fn with_heartbeats(mut self, heartbeats: &Heartbeats) -> Self {
        self.heartbeat = heartbeats.register(BOARD_FEED);
        self
    }

    /// Relays until shutdown, resubscribing whenever the subscription is lost.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let _running = self.heartbeat.running();
        let mut backoff = MIN_BACKOFF;
        loop {
            self.heartbeat.waiting();
            let pubsub = match self.first.take() {
                Some(pubsub) => pubsub,
                None => {
                    let attempt = tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        attempt = subscribe(&self.client, &self.channel) => attempt,
                    };
                    match attempt {
                        Ok(pubsub) => {
                            tracing::info!(channel = %self.channel, "board channel resubscribed");
                            // Whatever was published while we were away is lost to us.
                            self.feed.gap();
                            backoff = MIN_BACKOFF;
                            pubsub
                        }
                        Err(error) => {
                            tracing::warn!(error = %format!("{error:#}"), channel = %self.channel, "board channel: subscribing failed; retrying");
                            tokio::select! {
                                () = shutdown.cancelled() => return Ok(()),
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            continue;
                        }
                    }
                }
            };
            match self.relay(pubsub, &shutdown).await {
                Ended::Shutdown => return Ok(()),
                Ended::Lost(why) => {
                    tracing::warn!(channel = %self.channel, why, "board channel lost; resubscribing");
                }
            }
        }
    }

    /// Feeds the watchers from one subscription until it is lost (or shutdown).
    async fn relay(&self, pubsub: redis::aio::PubSub, shutdown: &CancellationToken) -> Ended {
        let (mut sink, mut messages) = pubsub.split();
        let mut check = tokio::time::interval(PING_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.reset();
        loop {
            self.heartbeat.waiting();
            tokio::select! {
                () = shutdown.cancelled() => return Ended::Shutdown,
                message = messages.next() => {
                    let _busy = self.heartbeat.busy();
                    let Some(message) = message else {
                        return Ended::Lost("the connection closed".into());
                    };
                    match decode(message.get_payload_bytes()) {
                        Ok(change) => self.feed.publish(change),
                        // Another version's message, or garbage: not for our watchers.
                        Err(error) => tracing::warn!(%error, "board channel: undecodable message"),
                    }
                }
                _ = check.tick() => {
                    let _busy = self.heartbeat.busy();
                    // Messages arriving while the PING waits queue up in the connection's channel:
                    // the check delays them, it never loses one.
                    let answered = tokio::time::timeout(ANSWER_WITHIN, sink.ping::<redis::Value>());
                    match answered.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return Ended::Lost(error.to_string()),
                        Err(_) => return Ended::Lost(format!("no PING answer within {ANSWER_WITHIN:?}")),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_changes_survive_the_wire() {
        // Nanoseconds: the wire keeps an instant exactly as the event said it.
        let at = DateTime::from_timestamp(1_900_000_000, 123_456_789).unwrap();
        for change in [
            BoardChange::Reservation {
                event_id: Uuid::now_v7(),
                seat_id: SeatId::parse("A-01").unwrap(),
                reservation_id: ReservationId::from_uuid(Uuid::now_v7()),
                status: ReservationStatus::Paid,
                starts_at: at,
                ends_at: at + chrono::Duration::hours(2),
                occurred_at: at,
            },
            BoardChange::Seat {
                event_id: Uuid::now_v7(),
                seat_id: SeatId::parse("B-07").unwrap(),
                enabled: false,
            },
        ] {
            assert_eq!(decode(encode(&change).as_bytes()).unwrap(), change);
        }
        assert!(decode(b"{\"kind\":\"seat\"}").is_err());
    }
}
