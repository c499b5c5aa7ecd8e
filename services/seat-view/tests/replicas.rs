//! Several seat-view replicas on ONE Redis (`TEST_REDIS_URL`, one key prefix), in one consumer
//! group on one broker: each consumes only some partitions, yet each serves the whole board and
//! streams every board change, whichever replica applied it.

mod support;

use std::collections::HashMap;

use serde_json::{Value, json};
use support::{Booking, Frames, Store, TestApp, hours_ahead, seat, spawn_app};

/// Reads `stream` until every id of `expected` came, each once; returns the frames' data by
/// event id.
async fn every_change(
    stream: &mut Frames,
    replica: &str,
    expected: &[String],
) -> HashMap<String, Value> {
    let mut seen: HashMap<String, Value> = HashMap::new();
    while expected.iter().any(|id| !seen.contains_key(id)) {
        let frame = stream
            .next_within(&format!(
                "every board change on replica {replica} (got {seen:?})"
            ))
            .await;
        assert_eq!(frame.event.as_deref(), Some("board-changed"), "{frame:?}");
        let id = frame.id.clone().expect("a change names its event");
        let data: Value = serde_json::from_str(&frame.data).unwrap();
        assert!(
            expected.contains(&id),
            "an unexpected change on {replica}: {frame:?}"
        );
        assert!(
            seen.insert(id, data).is_none(),
            "a change twice on {replica}: {frame:?}"
        );
    }
    seen
}

async fn status_on(app: &TestApp, r: &Booking, status: &str) {
    app.wait_for_board(&r.seat, r.during(), status).await;
}

/// Why this shows the fan-out: every event is applied by exactly one replica (the inbox claim
/// is shared), and if each replica streamed only what its own consumer applied, at least one of
/// the two streams would miss changes — whether the group split the partitions between them or
/// gave them all to one. Both streams get every change, once, so each hears of changes the
/// other replica consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_show_and_stream_every_change_whichever_consumed_it() {
    let mut one = spawn_app(Store::redis()).await;
    let mut two = one.replica().await;
    assert_ne!(one.base, two.base, "each replica has its own HTTP port");
    assert_eq!(
        one.generation.consumer_group(),
        two.generation.consumer_group()
    );
    let mut streams = [one.stream().await, two.stream().await];

    // Many keys (seat ids, reservation ids), so the events spread over the partitions.
    let mut expected = Vec::new();
    let mut changes = Vec::new();
    for n in 1..=8 {
        let id = format!("R-{n:02}");
        let defined = one.publish(&id, seat(&id, n != 8)).await;
        expected.push(defined.id.to_string());
        changes.push(json!({"seatId": id, "enabled": n != 8}));
    }
    let bookings: Vec<Booking> = (1..=4)
        .map(|n| {
            Booking::new(
                &format!("R-{n:02}"),
                &format!("cust-{n}"),
                hours_ahead(3),
                2,
            )
        })
        .collect();
    for r in &bookings {
        let reserved = one.publish(&r.id, r.reserved()).await;
        expected.push(reserved.id.to_string());
    }
    // The first goes on to be paid; the last is cancelled.
    let paid = one.publish(&bookings[0].id, bookings[0].paid()).await;
    expected.push(paid.id.to_string());
    let cancelled = one.publish(&bookings[3].id, bookings[3].cancelled()).await;
    expected.push(cancelled.id.to_string());

    let mut by_replica = Vec::new();
    for (stream, name) in streams.iter_mut().zip(["one", "two"]) {
        by_replica.push(every_change(stream, name, &expected).await);
    }
    // Both streams said the same thing about each change.
    assert_eq!(by_replica[0], by_replica[1]);
    let said = &by_replica[0];
    for (id, change) in expected.iter().zip(&changes) {
        assert_eq!(&said[id], change);
    }
    assert_eq!(said[&paid.id.to_string()]["reservationStatus"], "PAID");
    assert_eq!(said[&paid.id.to_string()]["reservationId"], bookings[0].id);
    assert_eq!(
        said[&cancelled.id.to_string()]["reservationStatus"],
        "CANCELLED"
    );

    // The board answered by either replica is the same whole board.
    for app in [&one, &two] {
        status_on(app, &bookings[0], "OCCUPIED").await;
        status_on(app, &bookings[1], "HELD").await;
        status_on(app, &bookings[2], "HELD").await;
        status_on(app, &bookings[3], "FREE").await;
        app.wait_for_board("R-08", bookings[0].during(), "DISABLED")
            .await;
    }
    let at = bookings[0].during();
    assert_eq!(one.board(at).await, two.board(at).await);

    two.stop().await;
    one.stop().await;
}
