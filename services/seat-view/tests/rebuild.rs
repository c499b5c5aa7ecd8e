//! Rebuilding the views from scratch by replaying the topics.

mod support;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use shared_events::{PaymentCompleted, PaymentDeclined, SeatRegistered};
use support::{Booking, Store, TestApp, WAIT, hours_ahead, seat, spawn_app};

/// Everything the views show: the board at each instant, then each customer's reservations.
async fn snapshot(app: &TestApp, instants: &[DateTime<Utc>], customers: &[&str]) -> Vec<Value> {
    let mut views = Vec::new();
    for at in instants {
        views.push(app.board(*at).await);
    }
    for token in customers {
        views.push(Value::Array(app.mine(token, "").await));
    }
    views
}

async fn a_rebuild_replays_the_topics_into_the_same_views(store: Store) {
    let mut app = spawn_app(store).await;
    assert_eq!(app.generation.consumer_group(), "seat-view");
    for n in 1..=6 {
        let id = format!("D-{n:02}");
        app.publish(&id, seat(&id, n != 6)).await;
    }
    let registered = Booking::new("D-01", "alice", hours_ahead(2), 2);
    let held = Booking::new("D-02", "alice", hours_ahead(2), 1);
    let cancelled = Booking::new("D-03", "bob", hours_ahead(3), 1);
    let declined = Booking::new("D-04", "bob", hours_ahead(2), 3);
    app.publish(&registered.id, registered.reserved()).await;
    app.publish(&registered.id, registered.confirmed()).await;
    app.publish(&registered.id, registered.paid()).await;
    app.publish(
        &registered.id,
        PaymentCompleted {
            reservation_id: registered.id.clone(),
            payment_id: format!("pay-{}", registered.id),
            amount: registered.price(),
        },
    )
    .await;
    app.publish(
        &registered.id,
        SeatRegistered {
            reservation_id: registered.id.clone(),
            registration_id: "reg-1".into(),
            seat_id: "D-01".into(),
            entry_pass_code: "777111".into(),
            starts_at: registered.starts_at,
            ends_at: registered.ends_at(),
        },
    )
    .await;
    app.publish(&registered.id, registered.registered()).await;
    app.publish(&held.id, held.reserved()).await;
    app.publish(&cancelled.id, cancelled.reserved()).await;
    app.publish(&cancelled.id, cancelled.cancelled()).await;
    app.publish(&declined.id, declined.reserved()).await;
    app.publish(
        &declined.id,
        PaymentDeclined {
            reservation_id: declined.id.clone(),
            payment_id: "pay-d".into(),
            reason: "card declined".into(),
        },
    )
    .await;

    let alice = app.keys.customer("alice");
    let bob = app.keys.customer("bob");
    app.wait_for_mine(&alice, &registered.id, "registered with a pass", |r| {
        r["status"] == "REGISTERED" && r["entryPassCode"] == "777111"
    })
    .await;
    app.wait_for_mine(&bob, &cancelled.id, "cancelled", |r| {
        r["status"] == "CANCELLED"
    })
    .await;
    app.wait_for_mine(&bob, &declined.id, "declined", |r| {
        r["paymentStatus"] == "DECLINED"
    })
    .await;
    app.wait_for_mine(&alice, &held.id, "held", |r| r["status"] == "REQUESTED")
        .await;
    app.wait_for_board("D-06", registered.during(), "DISABLED")
        .await;

    let instants: Vec<DateTime<Utc>> = vec![
        registered.during(),
        cancelled.during(),
        registered.starts_at - Duration::hours(1),
    ];
    let before = snapshot(&app, &instants, &[&alice, &bob]).await;
    assert_eq!(before[0]["seats"].as_array().unwrap().len(), 6);
    assert_eq!(before[0]["seats"][0]["status"], "OCCUPIED");
    assert_eq!(before[0]["seats"][1]["status"], "HELD");

    // Something the topics never said: a rebuild must wipe it.
    app.stop().await;
    app.plant_stray_seat().await;

    app.start(true).await;
    assert_eq!(app.generation.consumer_group(), "seat-view.g2");
    if let Store::Redis { prefix, .. } = &app.store {
        // The first generation's keys (views, indexes, inbox) are gone, not just unused.
        assert_eq!(
            app.redis_keys(&format!("{prefix}:{{g1}}*")).await,
            Vec::<String>::new()
        );
        assert!(
            !app.redis_keys(&format!("{prefix}:generation"))
                .await
                .is_empty()
        );
    }
    studycafe_testkit::eventually(WAIT, "the same views, replayed from the topics", || async {
        let after = snapshot(&app, &instants, &[&alice, &bob]).await;
        (after == before).then_some(())
    })
    .await;

    // A plain restart keeps the generation, and the views.
    app.stop().await;
    app.start(false).await;
    assert_eq!(app.generation.consumer_group(), "seat-view.g2");
    assert_eq!(snapshot(&app, &instants, &[&alice, &bob]).await, before);
    app.stop().await;
}

on_every_store!(a_rebuild_replays_the_topics_into_the_same_views);
