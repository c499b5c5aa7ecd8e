//! The live board stream (server-sent events) over real HTTP.

mod support;

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use support::{Booking, WAIT, hours_ahead, rfc3339, seat, spawn_app_with};

/// Reads SSE frames off a response body.
struct Frames {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

#[derive(Debug)]
struct Frame {
    event: Option<String>,
    id: Option<String>,
    data: String,
}

impl Frames {
    fn new(response: reqwest::Response) -> Self {
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped); None when the stream ended.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame {
                    event: None,
                    id: None,
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        frame.event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        frame.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        frame.data.push_str(v.trim());
                    }
                }
                if frame.event.is_some() || !frame.data.is_empty() {
                    return Some(frame);
                }
            }
            let chunk = self.body.next().await?.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    async fn next_within(&mut self, what: &str) -> Frame {
        tokio::time::timeout(WAIT, self.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} on the stream"))
            .unwrap_or_else(|| panic!("the stream ended before {what}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_announces_committed_board_changes_and_ends_on_shutdown() {
    // A long grace period: if an open stream held the graceful shutdown, stopping would take it.
    let mut app = spawn_app_with(&[("SEAT_VIEW_SHUTDOWN_GRACE_MS", "120000")]).await;
    let response = app
        .http
        .get(format!("{}/api/board/stream", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut frames = Frames::new(response);

    let defined = app.publish("C-01", seat("C-01", true)).await;
    let frame = frames.next_within("the SeatDefined change").await;
    assert_eq!(frame.event.as_deref(), Some("board-changed"));
    assert_eq!(frame.id, Some(defined.id.to_string()));
    let data: Value = serde_json::from_str(&frame.data).unwrap();
    assert_eq!(data, json!({"seatId": "C-01", "enabled": true}));

    let r = Booking::new("C-01", "erin", hours_ahead(2), 3);
    let reserved = app.publish(&r.id, r.reserved()).await;
    let frame = frames.next_within("the new reservation").await;
    assert_eq!(frame.event.as_deref(), Some("board-changed"));
    assert_eq!(frame.id, Some(reserved.id.to_string()));
    let data: Value = serde_json::from_str(&frame.data).unwrap();
    assert_eq!(
        data,
        json!({
            "seatId": "C-01",
            "reservationId": r.id,
            "reservationStatus": "REQUESTED",
            "startsAt": rfc3339(r.starts_at),
            "endsAt": rfc3339(r.ends_at()),
            "occurredAt": rfc3339(reserved.occurred_at),
        })
    );
    // The change was committed before it was announced: the board already shows it.
    assert_eq!(app.seat_at("C-01", r.during()).await["status"], "HELD");

    // A second watcher joining and leaving does not disturb the first.
    let other = app
        .http
        .get(format!("{}/api/board/stream", app.base))
        .send()
        .await
        .unwrap();
    drop(other);
    app.publish(&r.id, r.cancelled()).await;
    let frame = frames.next_within("the cancellation").await;
    let data: Value = serde_json::from_str(&frame.data).unwrap();
    assert_eq!(data["reservationStatus"], "CANCELLED");

    // Shutdown ends the open stream instead of waiting out the grace period. The bound is
    // far below the grace period, and far above what a clean stop takes.
    tokio::time::timeout(Duration::from_secs(60), app.stop())
        .await
        .expect("an open stream held up the shutdown");
    assert!(frames.next().await.is_none(), "the stream ended");
}
