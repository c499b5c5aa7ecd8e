//! A customer's reservations: the seat topic's status with what registration and payment said.

mod support;

use chrono::{Duration, Utc};
use serde_json::json;
use shared_events::{
    BookingConfirmed, PaymentCompleted, PaymentRefunded, RegistrationCancelled, SeatRegistered,
};
use support::{Booking, Store, assert_problem, hours_ahead, rfc3339, spawn_app};

async fn my_reservations_are_mine_newest_first_with_pass_payment_and_refund(store: Store) {
    let mut app = spawn_app(store).await;
    let t0 = Utc::now() - Duration::minutes(10);
    let t0 = t0 - Duration::nanoseconds(i64::from(t0.timestamp_subsec_nanos()));
    let older = Booking::new("A-01", "alice", hours_ahead(2), 2);
    let newer = Booking::new("A-02", "alice", hours_ahead(4), 1);
    let bobs = Booking::new("A-03", "bob", hours_ahead(2), 1);

    // Payment's news about `newer` arrives before the seat service's (another topic).
    app.publish_at(
        &newer.id,
        t0 + Duration::seconds(30),
        PaymentCompleted {
            reservation_id: newer.id.clone(),
            payment_id: "pay-n".into(),
            amount: newer.price(),
        },
    )
    .await;
    app.publish_at(&older.id, t0, older.reserved()).await;
    app.publish_at(&newer.id, t0 + Duration::seconds(10), newer.reserved())
        .await;
    app.publish_at(&bobs.id, t0 + Duration::seconds(20), bobs.reserved())
        .await;

    // The older one goes all the way, then is cancelled and refunded.
    let at = |s: i64| t0 + Duration::seconds(s);
    app.publish_at(
        &older.id,
        at(40),
        BookingConfirmed {
            reservation_id: older.id.clone(),
            confirmed_by: "admin".into(),
        },
    )
    .await;
    app.publish_at(&older.id, at(41), older.confirmed()).await;
    app.publish_at(&older.id, at(42), older.paid()).await;
    app.publish_at(
        &older.id,
        at(43),
        SeatRegistered {
            reservation_id: older.id.clone(),
            registration_id: "reg-o".into(),
            seat_id: older.seat.clone(),
            entry_pass_code: "482913".into(),
            starts_at: older.starts_at,
            ends_at: older.ends_at(),
        },
    )
    .await;
    app.publish_at(&older.id, at(44), older.registered()).await;

    let alice = app.keys.customer("alice");
    let registered = app
        .wait_for_mine(&alice, &older.id, "the entry pass", |r| {
            r["status"] == "REGISTERED" && r["entryPassCode"] == "482913"
        })
        .await;
    assert_eq!(registered["registrationId"], "reg-o");
    assert_eq!(registered["bookingDecision"], "CONFIRMED");

    app.publish_at(&older.id, at(50), older.cancelled()).await;
    app.publish_at(
        &older.id,
        at(51),
        PaymentRefunded {
            reservation_id: older.id.clone(),
            payment_id: format!("pay-{}", older.id),
            refund_id: "ref-o".into(),
            amount: older.price(),
        },
    )
    .await;
    app.publish_at(
        &older.id,
        at(52),
        RegistrationCancelled {
            reservation_id: older.id.clone(),
            registration_id: Some("reg-o".into()),
            reason: "reservation cancelled".into(),
        },
    )
    .await;
    let refunded = app
        .wait_for_mine(&alice, &older.id, "the refund", |r| {
            r["status"] == "CANCELLED"
                && r["refundStatus"] == "REFUNDED"
                && r["registrationStatus"] == "CANCELLED"
        })
        .await;
    assert_eq!(
        refunded,
        json!({
            "reservationId": older.id,
            "seatId": "A-01",
            "startsAt": rfc3339(older.starts_at),
            "endsAt": rfc3339(older.ends_at()),
            "hours": 2,
            "price": {"amount": 4000, "currency": "KRW"},
            "status": "CANCELLED",
            "holdExpiresAt": refunded["holdExpiresAt"].clone(),
            "reason": "cancelled by the customer",
            "bookingDecision": "CONFIRMED",
            "paymentStatus": "REFUNDED",
            "paymentId": format!("pay-{}", older.id),
            "refundStatus": "REFUNDED",
            "refundAmount": {"amount": 4000, "currency": "KRW"},
            "registrationStatus": "CANCELLED",
            "registrationId": "reg-o",
            "entryPassCode": "482913",
            "createdAt": rfc3339(t0),
            "updatedAt": rfc3339(at(52)),
        })
    );
    assert!(refunded["holdExpiresAt"].is_string());

    // Newest first; the early payment news is there; only the caller's own.
    let mine = app.mine(&alice, "").await;
    let ids: Vec<&str> = mine
        .iter()
        .map(|r| r["reservationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [newer.id.as_str(), older.id.as_str()]);
    assert_eq!(mine[0]["status"], "REQUESTED");
    assert_eq!(mine[0]["paymentStatus"], "PAID");
    assert_eq!(mine[0]["createdAt"], rfc3339(at(10)));
    assert_eq!(mine[0]["updatedAt"], rfc3339(at(30)));
    assert!(mine[0].get("entryPassCode").is_none());
    let limited = app.mine(&alice, "?limit=1").await;
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0]["reservationId"], newer.id);
    let bob = app.mine(&app.keys.customer("bob"), "?limit=200").await;
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0]["reservationId"], bobs.id);
    assert!(app.mine(&app.keys.admin("mallory"), "").await.is_empty());

    // Who is asking must be proven; the limit must make sense.
    let path = "/api/my/reservations";
    assert_problem(app.get(path, None).await, 401, "/problems/unauthorized").await;
    assert_problem(
        app.get(path, Some("not-a-jwt")).await,
        401,
        "/problems/unauthorized",
    )
    .await;
    let forged = app.keys.forged("alice");
    assert_problem(
        app.get(path, Some(&forged)).await,
        401,
        "/problems/unauthorized",
    )
    .await;
    for bad in ["0", "201", "-1", "ten"] {
        let response = app.get(&format!("{path}?limit={bad}"), Some(&alice)).await;
        let problem = assert_problem(response, 400, "/problems/invalid-field").await;
        assert_eq!(problem["field"], "limit");
    }
    app.stop().await;
}

on_every_store!(my_reservations_are_mine_newest_first_with_pass_payment_and_refund);
