//! The live board stream (server-sent events) over real HTTP.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Booking, Frames, Store, hours_ahead, rfc3339, seat, spawn_app_with};

async fn the_stream_announces_committed_board_changes_and_ends_on_shutdown(store: Store) {
    // A long grace period: if an open stream held the graceful shutdown, stopping would take it.
    let mut app = spawn_app_with(store, &[("SEAT_VIEW_SHUTDOWN_GRACE_MS", "120000")]).await;
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

on_every_store!(the_stream_announces_committed_board_changes_and_ends_on_shutdown);
