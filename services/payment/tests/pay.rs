//! Taking payment: seat's `POST /internal/payments` against the card simulator, with the
//! outcome published on the payment topic through the real broker.

#[macro_use]
mod support;

use futures::future::join_all;
use serde_json::Value;
use support::{Db, assert_problem, count, new_reservation, pay_body, spawn_app};

async fn approved_declined_and_slow_payments_are_answered_and_published(db: Db) {
    let mut app = spawn_app(db).await;

    let approved = new_reservation();
    let answer = app
        .pay_ok(&pay_body(&approved, "alice", 4000, "tok_approve"))
        .await;
    assert_eq!(answer["status"], "COMPLETED");
    assert_eq!(answer["reservationId"], approved.as_str());
    assert_eq!(answer["amount"]["amount"], 4000);
    assert_eq!(answer["amount"]["currency"], "KRW");
    assert!(answer.get("reason").is_none());
    let payment_id = answer["paymentId"].as_str().unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&payment_id)
            .unwrap()
            .get_version_num(),
        7
    );

    // The same request again (seat retrying after a lost answer): the same payment, no charge.
    let again = app
        .pay_ok(&pay_body(&approved, "alice", 4000, "tok_approve"))
        .await;
    assert_eq!(again["paymentId"], payment_id.as_str());
    assert_eq!(again["status"], "COMPLETED");
    assert_eq!(app.simulator.charges_made(), 1);

    let declined = new_reservation();
    let answer = app
        .pay_ok(&pay_body(&declined, "bob", 6000, "tok_decline"))
        .await;
    assert_eq!(answer["status"], "DECLINED");
    assert_eq!(answer["reason"], "card declined");
    let answer = app
        .pay_ok(&pay_body(&new_reservation(), "bob", 6000, "tok_mystery"))
        .await;
    assert_eq!(answer["reason"], "unknown payment token");

    let slow = new_reservation();
    let answer = app
        .pay_ok(&pay_body(&slow, "carol", 2000, "tok_slow_300"))
        .await;
    assert_eq!(answer["status"], "COMPLETED");
    assert_eq!(app.simulator.charges_made(), 2);

    // Published once each, keyed and correlated by the reservation id.
    let events = app.payment_events(&approved).await;
    assert_eq!(count(&events, "PaymentCompleted"), 1, "{events:?}");
    assert_eq!(events.len(), count(&events, "PaymentCompleted"));
    let completed = &events[0].1;
    assert_eq!(completed["source"], "payment");
    assert_eq!(completed["correlationId"], approved.as_str());
    assert_eq!(completed["data"]["paymentId"], payment_id.as_str());
    assert_eq!(completed["data"]["reservationId"], approved.as_str());
    assert_eq!(completed["data"]["amount"]["amount"], 4000);
    assert!(completed["data"].get("paymentToken").is_none());

    let events = app.payment_events(&declined).await;
    assert_eq!(count(&events, "PaymentDeclined"), 1, "{events:?}");
    assert_eq!(events[0].1["data"]["reason"], "card declined");
    assert_eq!(
        count(&app.payment_events(&slow).await, "PaymentCompleted"),
        1
    );

    // The simulator's counters are exported.
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("payment_simulator_charges_total"),
        "{metrics}"
    );
    app.stop().await;
}

async fn twenty_concurrent_identical_calls_charge_once(db: Db) {
    let mut app = spawn_app(db).await;
    let reservation = new_reservation();
    // Slow enough that all twenty are in flight while the first is at the provider.
    let body = pay_body(&reservation, "alice", 8000, "tok_slow_200");
    let answers: Vec<Value> = join_all((0..20).map(|_| app.pay_ok(&body))).await;
    let first = &answers[0]["paymentId"];
    assert!(first.is_string());
    for answer in &answers {
        assert_eq!(&answer["paymentId"], first);
        assert_eq!(answer["status"], "COMPLETED");
    }
    assert_eq!(app.simulator.charges_made(), 1);
    let events = app.payment_events(&reservation).await;
    assert_eq!(count(&events, "PaymentCompleted"), 1, "{events:?}");
    app.stop().await;
}

async fn an_unanswered_charge_stays_pending_and_a_retry_completes_it(db: Db) {
    let mut app = spawn_app(db).await;
    let alice = app.keys.customer("alice");

    // tok_error: the provider never answers. 503 + Retry-After, PENDING, nothing charged.
    let broken = new_reservation();
    let body = pay_body(&broken, "alice", 4000, "tok_error");
    for _ in 0..2 {
        let response = app.pay(&body).await;
        assert_eq!(response.headers()["retry-after"], "1");
        let problem = assert_problem(response, 503, "/problems/provider-unavailable").await;
        assert_eq!(problem["paymentStatus"], "PENDING");
        assert_eq!(app.simulator.charges_made(), 0);
        let view: Value = app
            .payments(Some(&alice), &format!("?reservationId={broken}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(view["payments"][0]["status"], "PENDING", "{view}");
    }

    // A provider outage during an approvable charge: PENDING until a retry gets through.
    let reservation = new_reservation();
    let body = pay_body(&reservation, "alice", 4000, "tok_approve");
    app.set_outage(true);
    let response = app.pay(&body).await;
    let problem = assert_problem(response, 503, "/problems/provider-unavailable").await;
    let pending_id = problem["paymentId"].as_str().unwrap().to_owned();
    assert_eq!(
        app.payments_of(&reservation).await["payments"][0]["status"],
        "PENDING"
    );
    assert_eq!(app.simulator.charges_made(), 0);
    app.set_outage(false);
    let answer = app.pay_ok(&body).await;
    assert_eq!(answer["status"], "COMPLETED");
    assert_eq!(answer["paymentId"], pending_id.as_str());
    assert_eq!(app.simulator.charges_made(), 1);

    let events = app.payment_events(&reservation).await;
    assert_eq!(count(&events, "PaymentCompleted"), 1, "{events:?}");
    assert!(app.payment_events(&broken).await.is_empty());
    app.stop().await;
}

async fn bad_requests_are_refused_and_change_nothing(db: Db) {
    let mut app = spawn_app(db).await;
    let reservation = new_reservation();
    let good = pay_body(&reservation, "alice", 4000, "tok_approve");

    // Who may call: seat's service token only.
    let alice = app.keys.customer("alice");
    let admin = app.keys.admin("root");
    assert_problem(app.pay_as(None, &good).await, 401, "/problems/unauthorized").await;
    let forged = app.keys.forged("seat-service");
    assert_problem(
        app.pay_as(Some(&forged), &good).await,
        401,
        "/problems/unauthorized",
    )
    .await;
    assert_problem(
        app.pay_as(Some(&alice), &good).await,
        403,
        "/problems/forbidden",
    )
    .await;
    assert_problem(
        app.pay_as(Some(&admin), &good).await,
        403,
        "/problems/forbidden",
    )
    .await;

    // Malformed (400) and invalid (422) bodies.
    let response = app
        .http
        .post(format!("{}/internal/payments", app.base))
        .bearer_auth(app.seat_token())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "/problems/malformed-request").await;
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("amount");
    assert_problem(app.pay(&missing).await, 400, "/problems/malformed-request").await;

    let invalid = [
        (
            pay_body("not-a-uuid", "alice", 4000, "tok_approve"),
            "reservationId",
        ),
        (
            pay_body(&reservation, " ", 4000, "tok_approve"),
            "customerId",
        ),
        (pay_body(&reservation, "alice", 0, "tok_approve"), "amount"),
        (
            pay_body(&reservation, "alice", -4000, "tok_approve"),
            "amount",
        ),
        (
            pay_body(&reservation, "alice", 4000, "tok approve!"),
            "paymentToken",
        ),
    ];
    for (body, field) in invalid {
        let problem = assert_problem(app.pay(&body).await, 422, "/problems/invalid-value").await;
        assert_eq!(problem["field"], field);
    }
    let mut dollars = good.clone();
    dollars["amount"]["currency"] = "USD".into();
    let problem = assert_problem(app.pay(&dollars).await, 422, "/problems/invalid-value").await;
    assert_eq!(problem["field"], "amount");

    // None of that recorded or charged anything.
    assert!(app.payments_of(&reservation).await.is_null());
    assert_eq!(app.simulator.charges_made(), 0);

    // The same reservation again with another amount or customer is a conflict.
    app.pay_ok(&good).await;
    let other_amount = pay_body(&reservation, "alice", 5000, "tok_approve");
    assert_problem(
        app.pay(&other_amount).await,
        409,
        "/problems/payment-conflict",
    )
    .await;
    let other_customer = pay_body(&reservation, "mallory", 4000, "tok_approve");
    assert_problem(
        app.pay(&other_customer).await,
        409,
        "/problems/payment-conflict",
    )
    .await;
    assert_eq!(app.simulator.charges_made(), 1);
    app.stop().await;
}

on_every_backend!(
    approved_declined_and_slow_payments_are_answered_and_published,
    twenty_concurrent_identical_calls_charge_once,
    an_unanswered_charge_stays_pending_and_a_retry_completes_it,
    bad_requests_are_refused_and_change_nothing,
);
