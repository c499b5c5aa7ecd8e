//! Taking payment: seat's `POST /internal/payments` against the card simulator, with the
//! outcome published on the payment topic through the real broker.

#[macro_use]
mod support;

use futures::future::join_all;
use serde_json::Value;
use support::{Backend, assert_problem, count, new_reservation, pay_body, spawn_app_on};

async fn approved_declined_and_slow_payments_are_answered_and_published(backend: Backend) {
    let mut app = spawn_app_on(backend).await;

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

async fn twenty_concurrent_identical_calls_charge_once(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
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
    assert_eq!(
        app.simulator.charge_calls(),
        1,
        "the provider was asked once"
    );
    let events = app.payment_events(&reservation).await;
    assert_eq!(count(&events, "PaymentCompleted"), 1, "{events:?}");
    app.stop().await;
}

/// Two replicas on one database: each has its own in-process lock, so only the charge claim
/// in the payment row keeps the second from asking the provider while the first does.
async fn identical_calls_split_across_two_replicas_charge_once(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let replica = app.spawn_replica().await;
    let reservation = new_reservation();
    // Slow enough that every call, on either instance, is in flight while the first one is at
    // the provider.
    let body = pay_body(&reservation, "alice", 8000, "tok_slow_300");
    let seat = app.seat_token();
    let bases = [app.base.clone(), replica.base.clone()];
    let answers: Vec<Value> = join_all((0..20).map(|i| {
        let (app, base, seat, body) = (&app, &bases[i % 2], &seat, &body);
        async move {
            let response = app.pay_at(base, Some(seat), body).await;
            assert_eq!(response.status(), 200, "pay via {base}");
            response.json::<Value>().await.unwrap()
        }
    }))
    .await;
    let first = &answers[0]["paymentId"];
    assert!(first.is_string());
    for answer in &answers {
        assert_eq!(&answer["paymentId"], first);
        assert_eq!(answer["status"], "COMPLETED");
    }
    // The simulator answers repeats of one idempotency key without charging again, so count
    // the calls themselves: one instance asked, once.
    assert_eq!(
        app.simulator.charge_calls(),
        1,
        "the provider was asked once"
    );
    assert_eq!(app.simulator.charges_made(), 1);
    let payments = app
        .scalar(
            "SELECT COUNT(*) FROM payments WHERE reservation_id = ? AND status = 'COMPLETED'",
            &[&reservation],
        )
        .await;
    assert_eq!(payments, Some(1));
    let events = app.payment_events(&reservation).await;
    assert_eq!(count(&events, "PaymentCompleted"), 1, "{events:?}");
    replica.stop().await;
    app.stop().await;
}

/// `result` is the database's refusal, for one of the reasons `because` (SQLite's or MySQL's
/// wording).
fn assert_refused(what: &str, result: Result<u64, String>, because: &[&str]) {
    match result {
        Ok(rows) => panic!("{what}: allowed ({rows} rows)"),
        Err(e) => assert!(because.iter().any(|b| e.contains(b)), "{what}: {e}"),
    }
}

/// The rules hold in the database itself, whatever writes to it: a settled payment keeps its
/// outcome, only a completed payment is refunded, and at most once.
async fn the_database_refuses_what_the_rules_forbid(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let paid = new_reservation();
    let declined = new_reservation();
    let pending = new_reservation();
    app.pay_ok(&pay_body(&paid, "alice", 4000, "tok_approve"))
        .await;
    app.pay_ok(&pay_body(&declined, "alice", 4000, "tok_decline"))
        .await;
    app.set_outage(true);
    assert_eq!(
        app.pay(&pay_body(&pending, "alice", 4000, "tok_approve"))
            .await
            .status(),
        503
    );
    app.set_outage(false);

    const SETTLED: &[&str] = &["a settled payment cannot change"];
    for (what, sql, reservation, because) in [
        (
            "reopen a completed payment",
            "UPDATE payments SET status = 'PENDING' WHERE reservation_id = ?",
            &paid,
            SETTLED,
        ),
        (
            "change a completed payment's amount",
            "UPDATE payments SET amount = 1 WHERE reservation_id = ?",
            &paid,
            SETTLED,
        ),
        (
            "complete a declined payment",
            "UPDATE payments SET status = 'COMPLETED', provider_ref = 'x' WHERE reservation_id = ?",
            &declined,
            SETTLED,
        ),
        (
            "complete without a provider reference",
            "UPDATE payments SET status = 'COMPLETED' WHERE reservation_id = ?",
            &pending,
            &["CHECK constraint failed", "payments_completed_has_ref"],
        ),
    ] {
        assert_refused(what, app.execute(sql, &[reservation]).await, because);
    }

    let refund = "INSERT INTO refunds (refund_id, payment_id, reservation_id, charge_ref, amount,
           currency, status, attempts, next_attempt_at, cause, created_at, updated_at)
         SELECT ?, payment_id, reservation_id, 'ch', amount, currency, 'PENDING', 0,
           9000000000000, 'test', 0, 0
         FROM payments WHERE reservation_id = ?";
    for unpaid in [&declined, &pending] {
        assert_refused(
            "refund of an unpaid payment",
            app.execute(refund, &[&new_reservation(), unpaid]).await,
            &["only a completed payment can be refunded"],
        );
    }
    assert_eq!(
        app.execute(refund, &[&new_reservation(), &paid]).await,
        Ok(1)
    );
    assert_refused(
        "a second refund",
        app.execute(refund, &[&new_reservation(), &paid]).await,
        &["UNIQUE constraint failed", "Duplicate entry"],
    );

    let completed =
        "UPDATE refunds SET status = 'COMPLETED', provider_ref = ? WHERE reservation_id = ?";
    assert_eq!(app.execute(completed, &["rf_1", &paid]).await, Ok(1));
    assert_refused(
        "change a completed refund",
        app.execute(completed, &["rf_2", &paid]).await,
        &["a completed refund cannot change"],
    );

    // Nothing above changed what the service says.
    let view = app.payments_of(&paid).await;
    assert_eq!(view["payments"][0]["status"], "COMPLETED");
    assert_eq!(view["payments"][0]["amount"]["amount"], 4000);
    app.stop().await;
}

async fn an_unanswered_charge_stays_pending_and_a_retry_completes_it(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
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

async fn bad_requests_are_refused_and_change_nothing(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
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
    identical_calls_split_across_two_replicas_charge_once,
    the_database_refuses_what_the_rules_forbid,
);
