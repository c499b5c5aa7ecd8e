//! The seat board over HTTP, fed by real events on a real broker.

mod support;

use serde_json::{Value, json};
use shared_events::topics;
use studycafe_testkit::kafka;
use support::{Booking, Store, WAIT, assert_problem, hours_ahead, rfc3339, seat, spawn_app};

async fn the_board_shows_each_seat_as_the_saga_moves(store: Store) {
    let mut app = spawn_app(store).await;
    for (id, enabled) in [("A-02", true), ("A-01", true), ("A-16", false)] {
        app.publish(id, seat(id, enabled)).await;
    }
    let a = Booking::new("A-01", "alice", hours_ahead(3), 2);
    let free = app.wait_for_board("A-01", a.during(), "FREE").await;
    assert_eq!(
        free,
        json!({"seatId": "A-01", "zone": "A", "kind": "open-desk",
               "hourlyPrice": {"amount": 2000, "currency": "KRW"}, "status": "FREE"})
    );
    app.wait_for_board("A-16", a.during(), "DISABLED").await;
    // Keyed by seat id, the three definitions may sit on different partitions.
    app.wait_for_board("A-02", a.during(), "FREE").await;
    let board = app.board(a.during()).await;
    assert_eq!(board["at"], rfc3339(a.during()));
    let ids: Vec<&str> = board["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seatId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["A-01", "A-02", "A-16"], "sorted by seat id");

    // Reserved: HELD inside the window (until its end), FREE outside it.
    app.publish(&a.id, a.reserved()).await;
    let held = app.wait_for_board("A-01", a.during(), "HELD").await;
    assert_eq!(held["until"], rfc3339(a.ends_at()));
    let before = a.starts_at - chrono::Duration::minutes(1);
    assert_eq!(app.seat_at("A-01", before).await["status"], "FREE");
    assert_eq!(app.seat_at("A-01", a.ends_at()).await["status"], "FREE");
    assert_eq!(app.seat_at("A-01", a.starts_at).await["status"], "HELD");
    assert_eq!(app.seat_at("A-02", a.during()).await["status"], "FREE");
    let text = serde_json::to_string(&app.board(a.during()).await).unwrap();
    assert!(!text.contains("alice"), "the board never names customers");

    app.publish(&a.id, a.confirmed()).await;
    app.publish(&a.id, a.paid()).await;
    let occupied = app.wait_for_board("A-01", a.during(), "OCCUPIED").await;
    assert_eq!(occupied["until"], rfc3339(a.ends_at()));
    app.publish(&a.id, a.registered()).await;
    app.publish(&a.id, a.cancelled()).await;
    app.wait_for_board("A-01", a.during(), "FREE").await;

    // An unpaid hold that runs out frees the seat.
    let b = Booking::new("A-02", "bob", hours_ahead(5), 1);
    app.publish(&b.id, b.reserved()).await;
    app.wait_for_board("A-02", b.during(), "HELD").await;
    app.publish(&b.id, b.expired()).await;
    app.wait_for_board("A-02", b.during(), "FREE").await;

    // A seat taken out of service shows DISABLED, whatever is booked on it.
    let c = Booking::new("A-01", "carol", hours_ahead(8), 1);
    app.publish(&c.id, c.reserved()).await;
    app.publish(&c.id, c.paid()).await;
    app.wait_for_board("A-01", c.during(), "OCCUPIED").await;
    app.publish("A-01", seat("A-01", false)).await;
    let disabled = app.wait_for_board("A-01", c.during(), "DISABLED").await;
    assert!(disabled.get("until").is_none());

    // `at` defaults to now; a bad one is a 400 and nothing else.
    let now: Value = app.get("/api/board", None).await.json().await.unwrap();
    assert_eq!(now["seats"].as_array().unwrap().len(), 3);
    assert!(now["at"].as_str().is_some_and(|at| at.ends_with('Z')));
    // An offset typed straight into the URL (its `+` arrives as a space) still works.
    let local = a
        .during()
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap());
    let typed = format!("/api/board?at={}", local.to_rfc3339());
    assert!(typed.contains("+09:00"));
    let response = app.get(&typed, None).await;
    assert_eq!(response.status(), 200);
    let typed: Value = response.json().await.unwrap();
    assert_eq!(typed["at"], rfc3339(a.during()));
    for bad in ["tomorrow", "2030-01-01", "2030-01-01T10:00:00"] {
        let response = app
            .http
            .get(format!("{}/api/board", app.base))
            .query(&[("at", bad)])
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400, "/problems/invalid-field").await;
        assert_eq!(problem["field"], "at");
    }
    app.stop().await;
}

async fn a_redelivered_event_has_one_effect_and_a_malformed_one_is_dead_lettered(store: Store) {
    let mut app = spawn_app(store).await;
    app.publish("B-01", seat("B-01", true)).await;
    let r = Booking::new("B-01", "dave", hours_ahead(4), 2);
    let reserved = app.publish(&r.id, r.reserved()).await;
    app.wait_for_board("B-01", r.during(), "HELD").await;
    app.publish(&r.id, r.cancelled()).await;
    app.wait_for_board("B-01", r.during(), "FREE").await;

    // The SeatReserved again (a producer retry): applied again it would hold the seat.
    app.redeliver(&r.id, &reserved).await;
    // A malformed event on the same partition: rejected to the dead-letter topic.
    let mut broken = seat("B-02", true);
    broken.seat_id = " ".into();
    let poison = app.publish(&r.id, broken).await;
    // Then a marker on the same partition: once it shows, everything before it was handled.
    app.publish(&r.id, seat("Z-09", true)).await;
    app.wait_for_board("Z-09", r.during(), "FREE").await;

    assert_eq!(app.seat_at("B-01", r.during()).await["status"], "FREE");
    let dave = app.keys.customer("dave");
    let mine = app.mine(&dave, "").await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["status"], "CANCELLED");
    let board = app.board(r.during()).await;
    assert_eq!(board["seats"].as_array().unwrap().len(), 2, "{board}");

    let dlq = topics::dead_letter("seat-view");
    let dead = kafka::read_topic(&app.broker.brokers(), &dlq, 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].json()["id"], poison.id.to_string());
    assert!(dead[0].headers["dlq-error"].contains("seat id"));
    app.stop().await;
}

on_every_store!(
    the_board_shows_each_seat_as_the_saga_moves,
    a_redelivered_event_has_one_effect_and_a_malformed_one_is_dead_lettered
);
