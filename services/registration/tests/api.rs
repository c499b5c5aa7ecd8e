//! The admin API's edges: who may call it, and what bad input gets (and that it changes
//! nothing).

#[macro_use]
mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Backend, TestEnv, assert_problem, new_reservation_id, seat_reserved};

async fn only_admins_get_in_and_bad_input_changes_nothing(backend: Backend) {
    let env = TestEnv::start_on(backend).await;
    let mut app = env.spawn(&[]).await;
    let admin = env.admin();
    let id = new_reservation_id();
    env.publish(&id, seat_reserved(&id, "E-01")).await;
    app.wait_for_status(&admin, &id, "PENDING").await;

    let routes = [
        (Method::GET, "/api/admin/bookings".to_owned(), None),
        (Method::GET, format!("/api/admin/bookings/{id}"), None),
        (
            Method::POST,
            format!("/api/admin/bookings/{id}/confirm"),
            None,
        ),
        (
            Method::POST,
            format!("/api/admin/bookings/{id}/reject"),
            Some(json!({"reason": "no"})),
        ),
        (Method::GET, "/api/admin/policy".to_owned(), None),
        (
            Method::PUT,
            "/api/admin/policy".to_owned(),
            Some(json!({"autoConfirm": true})),
        ),
    ];
    let customer = env.keys.customer("alice");
    let forged = env.keys.forged("root");
    for (method, path, body) in &routes {
        let request = |token: Option<&str>| {
            let mut request = app.http.request(method.clone(), app.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            request.send()
        };
        let response = request(None).await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path} without a token");
        assert!(response.headers().contains_key("www-authenticate"));
        assert_problem(
            request(Some(&forged)).await.unwrap(),
            401,
            "/problems/unauthorized",
        )
        .await;
        assert_problem(
            request(Some("not.a.token")).await.unwrap(),
            401,
            "/problems/unauthorized",
        )
        .await;
        assert_problem(
            request(Some(&customer)).await.unwrap(),
            403,
            "/problems/forbidden",
        )
        .await;
    }

    // Listing: a status that does not exist, a limit that makes no sense.
    for query in ["status=paid", "status=", "limit=0", "limit=ten", "limit=-1"] {
        let response = app
            .get(&admin, &format!("/api/admin/bookings?{query}"))
            .await;
        assert_problem(response, 400, "/problems/invalid-field").await;
    }
    for (query, want) in [
        ("status=PENDING", 1),
        ("status=confirmed", 0),
        ("limit=1000", 1),
    ] {
        let body: Value = app
            .get(&admin, &format!("/api/admin/bookings?{query}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["bookings"].as_array().unwrap().len(), want, "{query}");
    }

    // Ids: malformed is 400, well-formed but unknown is 404.
    for path in [
        "/api/admin/bookings/nope",
        "/api/admin/bookings/nope/confirm",
    ] {
        let response = if path.ends_with("confirm") {
            app.post(&admin, path, None).await
        } else {
            app.get(&admin, path).await
        };
        assert_problem(response, 400, "/problems/invalid-field").await;
    }
    let unknown = new_reservation_id();
    assert_problem(
        app.get(&admin, &format!("/api/admin/bookings/{unknown}"))
            .await,
        404,
        "/problems/not-found",
    )
    .await;
    assert_problem(
        app.post(
            &admin,
            &format!("/api/admin/bookings/{unknown}/confirm"),
            None,
        )
        .await,
        404,
        "/problems/not-found",
    )
    .await;

    // Rejections need a reason of 1 to 200 characters.
    let reject = format!("/api/admin/bookings/{id}/reject");
    for body in [
        Some(json!({})),
        Some(json!({"reason": ""})),
        Some(json!({"reason": "   "})),
        Some(json!({"reason": "x".repeat(201)})),
        None,
    ] {
        let response = app.post(&admin, &reject, body.clone()).await;
        let problem = assert_problem(response, 422, "/problems/invalid-reason").await;
        assert_eq!(problem["field"], "reason", "{body:?}");
    }
    let response = app
        .http
        .post(app.url(&reject))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400, "/problems/malformed-request").await;

    // The policy takes exactly a boolean.
    for body in [
        json!({}),
        json!({"autoConfirm": "yes"}),
        json!({"autoConfirm": true, "x": 1}),
    ] {
        let response = app
            .http
            .put(app.url("/api/admin/policy"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "/problems/malformed-request").await;
    }

    // None of that changed anything: the booking waits, nothing was published, the policy is
    // as configured.
    let booking = app.booking(&admin, &id).await.unwrap();
    assert_eq!(booking["status"], "PENDING");
    assert!(booking.get("reason").is_none());
    let policy: Value = app
        .get(&admin, "/api/admin/policy")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(policy["autoConfirm"], false);
    assert!(env.published().await.is_empty());

    // The ops routes are there and open.
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    app.stop().await;
}

async fn bookings_are_listed_newest_first(backend: Backend) {
    let env = TestEnv::start_on(backend).await;
    let mut app = env.spawn(&[]).await;
    let admin = env.admin();
    let mut ids = Vec::new();
    for seat in ["F-01", "F-02", "F-03"] {
        let id = new_reservation_id();
        env.publish(&id, seat_reserved(&id, seat)).await;
        // One at a time, so their arrival order is known.
        app.wait_for_status(&admin, &id, "PENDING").await;
        ids.push(id);
    }
    app.post(
        &admin,
        &format!("/api/admin/bookings/{}/confirm", ids[1]),
        None,
    )
    .await;
    let all: Value = app
        .get(&admin, "/api/admin/bookings")
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = all["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reservationId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [&ids[2], &ids[1], &ids[0]]);
    let two: Value = app
        .get(&admin, "/api/admin/bookings?limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(two["bookings"].as_array().unwrap().len(), 2);
    let pending: Value = app
        .get(&admin, "/api/admin/bookings?status=pending")
        .await
        .json()
        .await
        .unwrap();
    let pending: Vec<&str> = pending["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reservationId"].as_str().unwrap())
        .collect();
    assert_eq!(pending, [&ids[2], &ids[0]]);
    app.stop().await;
}

on_every_backend!(
    only_admins_get_in_and_bad_input_changes_nothing,
    bookings_are_listed_newest_first,
);
