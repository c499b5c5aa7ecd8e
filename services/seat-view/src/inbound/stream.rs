//! `GET /api/board/stream`: the live board as server-sent events.
//!
//! Each watcher gets its own receiver of the [`BroadcastFeed`]; what it is sent was committed
//! before it was published. A watcher that falls behind the channel's buffer gets one
//! `resync` event (refetch the board) in place of the changes it missed, so it never shows a
//! board with a silent gap. Streams end when the service shuts down, so they never hold up the
//! HTTP server's graceful shutdown; watchers coming and going never touch the consumer.

use std::{convert::Infallible, time::Duration};

use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::SecondsFormat;
use futures::{Stream, StreamExt as _};
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use tokio_util::sync::CancellationToken;

use crate::{
    domain::BoardChange,
    outbound::feed::{BroadcastFeed, FeedItem},
};

/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a watcher is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveItem {
    Changed(BoardChange),
    /// Changes were dropped for this watcher (`missed` of them when known — a watcher that
    /// fell behind; unknown when the feed itself lost its source for a while): refetch.
    Resync {
        missed: Option<u64>,
    },
}

/// The changes a receiver sees, with lag turned into [`LiveItem::Resync`].
pub fn live_items(receiver: broadcast::Receiver<FeedItem>) -> impl Stream<Item = LiveItem> {
    BroadcastStream::new(receiver).map(|item| match item {
        Ok(FeedItem::Change(change)) => LiveItem::Changed(change),
        Ok(FeedItem::Gap) => LiveItem::Resync { missed: None },
        Err(BroadcastStreamRecvError::Lagged(missed)) => LiveItem::Resync {
            missed: Some(missed),
        },
    })
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn to_event(item: LiveItem) -> Event {
    match item {
        LiveItem::Changed(change) => {
            let id = change.event_id().to_string();
            let data = match change {
                BoardChange::Reservation {
                    seat_id,
                    reservation_id,
                    status,
                    starts_at,
                    ends_at,
                    occurred_at,
                    ..
                } => json!({
                    "seatId": seat_id.as_str(),
                    "reservationId": reservation_id.to_string(),
                    "reservationStatus": status.as_str(),
                    "startsAt": ts(starts_at),
                    "endsAt": ts(ends_at),
                    "occurredAt": ts(occurred_at),
                }),
                BoardChange::Seat {
                    seat_id, enabled, ..
                } => json!({"seatId": seat_id.as_str(), "enabled": enabled}),
            };
            Event::default()
                .event("board-changed")
                .id(id)
                .data(data.to_string())
        }
        LiveItem::Resync { missed } => Event::default()
            .event("resync")
            .data(json!({"missed": missed}).to_string()),
    }
}

/// Counts open streams (a gauge) for as long as it lives.
struct Watcher;

impl Watcher {
    fn new(total: usize) -> Self {
        metrics::gauge!("seat_view_board_watchers").increment(1.0);
        tracing::debug!(watchers = total, "board watcher connected");
        Self
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        metrics::gauge!("seat_view_board_watchers").decrement(1.0);
        tracing::debug!("board watcher gone");
    }
}

/// The SSE response for one watcher.
pub fn board_stream(
    feed: &BroadcastFeed,
    shutdown: CancellationToken,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    // Subscribed before the response starts: whatever commits after the headers went out is
    // delivered.
    let receiver = feed.subscribe();
    let watcher = Watcher::new(feed.watchers());
    let stream = live_items(receiver)
        .map(move |item| {
            let _alive = &watcher;
            Ok(to_event(item))
        })
        .take_until(shutdown.cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SeatId, ports::BoardFeed as _};

    fn seat_change(n: u128) -> BoardChange {
        BoardChange::Seat {
            event_id: uuid::Uuid::from_u128(n),
            seat_id: SeatId::parse("A-01").unwrap(),
            enabled: true,
        }
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_told_to_resync_instead_of_missing_changes_silently() {
        let feed = BroadcastFeed::new(2);
        let receiver = feed.subscribe();
        for n in 1..=5 {
            feed.publish(seat_change(n));
        }
        drop(feed);
        let items: Vec<LiveItem> = live_items(receiver).collect().await;
        assert_eq!(
            items,
            [
                LiveItem::Resync { missed: Some(3) },
                LiveItem::Changed(seat_change(4)),
                LiveItem::Changed(seat_change(5)),
            ]
        );
    }

    #[tokio::test]
    async fn a_gap_in_the_feed_is_a_resync_of_unknown_size() {
        let feed = BroadcastFeed::new(8);
        let receiver = feed.subscribe();
        feed.publish(seat_change(1));
        feed.gap();
        feed.publish(seat_change(2));
        drop(feed);
        let items: Vec<LiveItem> = live_items(receiver).collect().await;
        assert_eq!(
            items,
            [
                LiveItem::Changed(seat_change(1)),
                LiveItem::Resync { missed: None },
                LiveItem::Changed(seat_change(2)),
            ]
        );
    }
}
