//! Reading payments (`GET /api/payments`) and the operational endpoints.

#[macro_use]
mod support;

use serde_json::Value;
use support::{Backend, assert_problem, new_reservation, pay_body, spawn_app_on};

async fn payments_are_shown_to_their_owner_and_admins_only(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let reservation = new_reservation();
    let paid = app
        .pay_ok(&pay_body(&reservation, "alice", 4000, "tok_approve"))
        .await;
    let query = format!("?reservationId={reservation}");

    let alice = app.keys.customer("alice");
    let response = app.payments(Some(&alice), &query).await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["reservationId"], reservation.as_str());
    let payments = view["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    let payment = &payments[0];
    assert_eq!(payment["paymentId"], paid["paymentId"]);
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["amount"]["amount"], 4000);
    assert_eq!(payment["amount"]["currency"], "KRW");
    assert!(payment.get("reason").is_none());
    assert_eq!(payment["refunds"], serde_json::json!([]));
    for field in ["createdAt", "updatedAt"] {
        let at = payment[field].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(at).unwrap();
    }
    assert!(
        payment.get("paymentToken").is_none(),
        "the token is never shown"
    );

    let admin = app.keys.admin("root");
    let view: Value = app
        .payments(Some(&admin), &query)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["payments"][0]["paymentId"], paid["paymentId"]);

    // A declined payment shows why.
    let declined = new_reservation();
    app.pay_ok(&pay_body(&declined, "alice", 4000, "tok_decline"))
        .await;
    let view: Value = app
        .payments(Some(&alice), &format!("?reservationId={declined}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["payments"][0]["status"], "DECLINED");
    assert_eq!(view["payments"][0]["reason"], "card declined");

    let bob = app.keys.customer("bob");
    assert_problem(
        app.payments(Some(&bob), &query).await,
        403,
        "/problems/forbidden",
    )
    .await;
    let seat = app.seat_token();
    assert_problem(
        app.payments(Some(&seat), &query).await,
        403,
        "/problems/forbidden",
    )
    .await;
    assert_problem(
        app.payments(None, &query).await,
        401,
        "/problems/unauthorized",
    )
    .await;
    let forged = app.keys.forged("alice");
    assert_problem(
        app.payments(Some(&forged), &query).await,
        401,
        "/problems/unauthorized",
    )
    .await;

    let unknown = format!("?reservationId={}", new_reservation());
    assert_problem(
        app.payments(Some(&alice), &unknown).await,
        404,
        "/problems/not-found",
    )
    .await;
    assert_problem(
        app.payments(Some(&admin), &unknown).await,
        404,
        "/problems/not-found",
    )
    .await;
    for bad in ["", "?reservationId=", "?reservationId=nope", "?other=1"] {
        let problem = assert_problem(
            app.payments(Some(&alice), bad).await,
            400,
            "/problems/invalid-field",
        )
        .await;
        assert_eq!(problem["field"], "reservationId", "{bad}");
    }
    app.stop().await;
}

async fn health_readiness_and_metrics(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    for path in ["/health/live", "/health/ready"] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    app.pay_ok(&pay_body(&new_reservation(), "alice", 1000, "tok_approve"))
        .await;
    let response = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("payment_simulator_charges_total"), "{text}");
    assert!(text.contains("payments_completed_total"), "{text}");
    // Every answer carries a request id.
    let response = app
        .http
        .get(format!("{}/health/live", app.base))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    app.stop().await;
}

on_every_backend!(
    payments_are_shown_to_their_owner_and_admins_only,
    health_readiness_and_metrics,
);
