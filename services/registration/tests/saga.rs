//! The registration service in the saga: events taken off the real broker, decisions made
//! over HTTP, and what it publishes read back off the broker.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use shared_events::{Envelope, EventMeta, ReservationRejected, topics};
use studycafe_testkit::kafka;
use support::{
    Backend, TestEnv, assert_problem, new_reservation_id, of_type, payment_completed, read_all,
    reference, reservation_cancelled, reservation_expired, seat_reserved,
};

const CODE_ALPHABET: &str = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";

async fn confirmed_paid_registered_then_cancelled_each_exactly_once(backend: Backend) {
    let env = TestEnv::start_on(backend).await;
    let mut app = env.spawn(&[]).await;
    let admin = env.admin();
    let id = new_reservation_id();

    let reserved = env.publish(&id, seat_reserved(&id, "A-01")).await;
    let booking = app.wait_for_status(&admin, &id, "PENDING").await;
    assert_eq!(booking["seatId"], "A-01");
    assert_eq!(booking["customerId"], "alice");
    assert_eq!(booking["startsAt"], "2030-01-02T09:00:00Z");
    assert_eq!(booking["endsAt"], "2030-01-02T11:00:00Z");
    assert_eq!(booking["price"], json!({"amount": 6000, "currency": "KRW"}));
    assert!(booking.get("decidedBy").is_none());
    let pending: Value = app
        .get(&admin, "/api/admin/bookings?status=pending")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["bookings"][0]["reservationId"], id.as_str());
    // The same SeatReserved again (a redelivery) opens nothing new.
    env.publish_again(&reserved).await;

    let response = app
        .post(&admin, &format!("/api/admin/bookings/{id}/confirm"), None)
        .await;
    assert_eq!(response.status(), 200);
    let confirmed: Value = response.json().await.unwrap();
    assert_eq!(confirmed["status"], "CONFIRMED");
    assert_eq!(confirmed["decidedBy"], "root");

    // Twice is a conflict that names the current status, and changes nothing.
    let again = app
        .post(&admin, &format!("/api/admin/bookings/{id}/confirm"), None)
        .await;
    let problem = assert_problem(again, 409, "/problems/illegal-state-change").await;
    assert_eq!(problem["currentStatus"], "CONFIRMED");
    assert!(
        problem["detail"].as_str().unwrap().contains("CONFIRMED"),
        "{problem}"
    );

    let events = env.published_about(&id, 1).await;
    assert_eq!(events[0]["type"], "BookingConfirmed");
    assert_eq!(events[0]["source"], "registration");
    assert_eq!(events[0]["data"]["confirmedBy"], "root");

    // Paid: registered with an entry pass; the same PaymentCompleted twice registers once.
    let paid = env.publish(&id, payment_completed(&id)).await;
    env.publish_again(&paid).await;
    let registered = app.wait_for_status(&admin, &id, "REGISTERED").await;
    let code = registered["entryPassCode"].as_str().unwrap();
    assert_eq!(code.len(), 8);
    assert!(code.chars().all(|c| CODE_ALPHABET.contains(c)), "{code}");
    let registration_id = registered["registrationId"].as_str().unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&registration_id)
            .unwrap()
            .get_version_num(),
        7
    );

    let events = env.published_about(&id, 2).await;
    let seat_registered = of_type(&events, "SeatRegistered");
    assert_eq!(seat_registered.len(), 1, "{events:?}");
    let data = &seat_registered[0]["data"];
    assert_eq!(data["reservationId"], id.as_str());
    assert_eq!(data["registrationId"], registration_id.as_str());
    assert_eq!(data["seatId"], "A-01");
    assert_eq!(data["entryPassCode"], code);
    assert_eq!(data["startsAt"], "2030-01-02T09:00:00Z");
    assert_eq!(data["endsAt"], "2030-01-02T11:00:00Z");
    assert_eq!(seat_registered[0]["causationId"], paid.id.to_string());

    // The customer cancels the registered reservation: the registration is cancelled.
    env.publish(&id, reservation_cancelled(&id, "A-01")).await;
    let cancelled = app.wait_for_status(&admin, &id, "CANCELLED").await;
    assert_eq!(
        cancelled["registrationId"],
        registration_id.as_str(),
        "the record of the registration stays"
    );
    let events = env.published_about(&id, 3).await;
    let registration_cancelled = of_type(&events, "RegistrationCancelled");
    assert_eq!(registration_cancelled.len(), 1);
    assert_eq!(
        registration_cancelled[0]["data"]["registrationId"],
        registration_id.as_str()
    );
    assert_eq!(
        registration_cancelled[0]["data"]["reason"],
        "reservation cancelled by the customer"
    );

    // Late news about the closed booking changes nothing.
    env.publish(&id, payment_completed(&id)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let types: Vec<Value> = env
        .published_about(&id, 3)
        .await
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            "BookingConfirmed",
            "SeatRegistered",
            "RegistrationCancelled"
        ]
    );
    let all: Value = app
        .get(&admin, "/api/admin/bookings")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["bookings"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn rejections_closed_bookings_and_strange_news(backend: Backend) {
    let env = TestEnv::start_on(backend).await;
    let mut app = env.spawn(&[]).await;
    let admin = env.admin();

    // Rejected by an admin, with a reason.
    let rejected = new_reservation_id();
    env.publish(&rejected, seat_reserved(&rejected, "B-01"))
        .await;
    app.wait_for_status(&admin, &rejected, "PENDING").await;
    let response = app
        .post(
            &admin,
            &format!("/api/admin/bookings/{rejected}/reject"),
            Some(json!({"reason": "  closed for cleaning "})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "REJECTED");
    assert_eq!(body["reason"], "closed for cleaning");
    let events = env.published_about(&rejected, 1).await;
    assert_eq!(events[0]["type"], "BookingRejected");
    assert_eq!(events[0]["data"]["rejectedBy"], "root");
    assert_eq!(events[0]["data"]["reason"], "closed for cleaning");
    // A rejected booking can be neither confirmed nor rejected again.
    let response = app
        .post(
            &admin,
            &format!("/api/admin/bookings/{rejected}/confirm"),
            None,
        )
        .await;
    let problem = assert_problem(response, 409, "/problems/illegal-state-change").await;
    assert!(problem["detail"].as_str().unwrap().contains("REJECTED"));

    // A pending booking whose reservation expired is cancelled without a registration.
    let expired = new_reservation_id();
    env.publish(&expired, seat_reserved(&expired, "B-02")).await;
    app.wait_for_status(&admin, &expired, "PENDING").await;
    env.publish(&expired, reservation_expired(&expired, "B-02"))
        .await;
    let cancelled = app.wait_for_status(&admin, &expired, "CANCELLED").await;
    assert!(cancelled.get("registrationId").is_none());
    let events = env.published_about(&expired, 1).await;
    assert_eq!(events[0]["type"], "RegistrationCancelled");
    assert_eq!(events[0]["data"]["registrationId"], Value::Null);
    assert_eq!(
        events[0]["data"]["reason"],
        "reservation expired before it was paid"
    );

    // So is a pending booking whose reservation the customer cancelled.
    let withdrawn = new_reservation_id();
    env.publish(&withdrawn, seat_reserved(&withdrawn, "B-04"))
        .await;
    app.wait_for_status(&admin, &withdrawn, "PENDING").await;
    env.publish(&withdrawn, reservation_cancelled(&withdrawn, "B-04"))
        .await;
    app.wait_for_status(&admin, &withdrawn, "CANCELLED").await;
    let events = env.published_about(&withdrawn, 1).await;
    assert_eq!(events[0]["type"], "RegistrationCancelled");
    assert_eq!(events[0]["data"]["registrationId"], Value::Null);
    assert_eq!(
        events[0]["data"]["reason"],
        "reservation cancelled by the customer"
    );

    // News for closed bookings: nothing (payment refunds a late charge on its own).
    env.publish(&rejected, payment_completed(&rejected)).await;
    env.publish(&rejected, reservation_cancelled(&rejected, "B-01"))
        .await;
    // News about reservations never seen: acknowledged, and never a booking.
    let ghost = new_reservation_id();
    env.publish(&ghost, payment_completed(&ghost)).await;
    env.publish(&ghost, reservation_cancelled(&ghost, "B-03"))
        .await;
    env.publish(
        &ghost,
        ReservationRejected {
            reservation: reference(&ghost, "B-03"),
            reason: "registration decided this itself".into(),
        },
    )
    .await;
    // A malformed SeatReserved (its window ends before it starts) goes to the dead-letter
    // topic instead of blocking the partition.
    let mut bad = seat_reserved(&ghost, "B-03");
    std::mem::swap(&mut bad.reservation.starts_at, &mut bad.reservation.ends_at);
    let poison = Envelope::wrap(
        EventMeta::new("test", ghost.as_str(), "test", chrono::Utc::now()),
        bad,
    );
    kafka::produce(&env.brokers(), topics::SEAT, &ghost, &poison.to_json()).await;

    // Behind all of that on the same partitions, a normal reservation still gets through.
    env.publish(&ghost, seat_reserved(&ghost, "B-03")).await;
    app.wait_for_status(&admin, &ghost, "PENDING").await;
    studycafe_testkit::eventually(support::WAIT, "the poison message dead-lettered", || {
        let brokers = env.brokers();
        let poison_id = poison.id.to_string();
        async move {
            read_all(&brokers, &topics::dead_letter("registration"))
                .await
                .iter()
                .any(|e| e["id"] == poison_id.as_str())
                .then_some(())
        }
    })
    .await;

    let booking = app.booking(&admin, &rejected).await.unwrap();
    assert_eq!(booking["status"], "REJECTED");
    assert_eq!(env.published_about(&rejected, 1).await.len(), 1);
    assert_eq!(
        app.booking(&admin, &ghost).await.unwrap()["status"],
        "PENDING",
        "follow-up news did not create or move it"
    );
    assert!(env.published_about(&ghost, 0).await.is_empty());
    app.stop().await;
}

async fn auto_confirm_policy_confirms_new_bookings_and_survives_restarts(backend: Backend) {
    let env = TestEnv::start_on(backend).await;
    let mut app = env.spawn(&[]).await;
    let admin = env.admin();

    let policy: Value = app
        .get(&admin, "/api/admin/policy")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(policy, json!({"cafeId": "main", "autoConfirm": false}));

    let before = new_reservation_id();
    env.publish(&before, seat_reserved(&before, "C-01")).await;
    app.wait_for_status(&admin, &before, "PENDING").await;

    let response = app
        .http
        .put(app.url("/api/admin/policy"))
        .bearer_auth(&admin)
        .json(&json!({"autoConfirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let policy: Value = response.json().await.unwrap();
    assert_eq!(policy["cafeId"], "main");
    assert_eq!(policy["autoConfirm"], true);
    assert_eq!(policy["updatedBy"], "root");
    assert!(policy["updatedAt"].is_string());

    let after = new_reservation_id();
    env.publish(&after, seat_reserved(&after, "C-02")).await;
    let booking = app.wait_for_status(&admin, &after, "CONFIRMED").await;
    assert_eq!(booking["decidedBy"], "auto-confirm");
    let events = env.published_about(&after, 1).await;
    assert_eq!(events[0]["type"], "BookingConfirmed");
    assert_eq!(events[0]["data"]["confirmedBy"], "auto-confirm");
    // The policy applies to new bookings only.
    assert_eq!(
        app.booking(&admin, &before).await.unwrap()["status"],
        "PENDING"
    );

    // An admin's choice outlives a restart with a configuration that says otherwise.
    app.stop().await;
    let mut app = env.spawn(&[("REGISTRATION_AUTO_CONFIRM", "false")]).await;
    let policy: Value = app
        .get(&admin, "/api/admin/policy")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(policy["autoConfirm"], true);
    assert_eq!(policy["updatedBy"], "root");
    app.stop().await;
}

async fn the_configured_policy_applies_until_an_admin_decides(backend: Backend) {
    let env = TestEnv::start_on(backend).await;
    let mut app = env
        .spawn(&[
            ("REGISTRATION_AUTO_CONFIRM", "true"),
            ("REGISTRATION_CAFE_ID", "gangnam"),
        ])
        .await;
    let admin = env.admin();
    let policy: Value = app
        .get(&admin, "/api/admin/policy")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(policy, json!({"cafeId": "gangnam", "autoConfirm": true}));
    let id = new_reservation_id();
    env.publish(&id, seat_reserved(&id, "D-01")).await;
    app.wait_for_status(&admin, &id, "CONFIRMED").await;
    // Nobody decided yet, so the configuration may change its mind.
    app.stop().await;
    let mut app = env.spawn(&[("REGISTRATION_CAFE_ID", "gangnam")]).await;
    let policy: Value = app
        .get(&admin, "/api/admin/policy")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(policy["autoConfirm"], false);
    app.stop().await;
}

on_every_backend!(
    confirmed_paid_registered_then_cancelled_each_exactly_once,
    rejections_closed_bookings_and_strange_news,
    auto_confirm_policy_confirms_new_bookings_and_survives_restarts,
    the_configured_policy_applies_until_an_admin_decides,
);
