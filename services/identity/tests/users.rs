//! Sign-up: `POST /api/users`.

#[macro_use]
mod support;

use serde_json::{Value, json};
use support::{Backend, assert_oauth_error, assert_problem, spawn_app_on};

async fn sign_up_creates_a_customer_who_can_sign_in(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let response = app
        .sign_up(&json!({"username": "Kim.Minji", "password": "study-hard-2025", "displayName": "  Minji Kim "}))
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert_eq!(location, format!("/api/users/{id}"));
    assert_eq!(body["username"], "kim.minji", "stored lowercase");
    assert_eq!(body["displayName"], "Minji Kim", "trimmed");
    assert_eq!(body["roles"], json!(["customer"]));
    assert!(body.get("password").is_none());

    // Any case of the name signs in as the same account.
    let token = app.access_token("KIM.minji", "study-hard-2025").await;
    assert_eq!(support::claims_of(&token)["sub"], id);
}

async fn invalid_sign_ups_name_the_field_and_write_nothing(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let long = "x".repeat(129);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "short username",
            json!({"username": "ab", "password": "long enough", "displayName": "A"}),
            "username",
        ),
        (
            "long username",
            json!({"username": "a".repeat(33), "password": "long enough", "displayName": "A"}),
            "username",
        ),
        (
            "bad character",
            json!({"username": "new user", "password": "long enough", "displayName": "A"}),
            "username",
        ),
        (
            "non-ascii",
            json!({"username": "민지", "password": "long enough", "displayName": "A"}),
            "username",
        ),
        (
            "short password",
            json!({"username": "newuser", "password": "1234567", "displayName": "A"}),
            "password",
        ),
        (
            "long password",
            json!({"username": "newuser", "password": long, "displayName": "A"}),
            "password",
        ),
        (
            "blank display name",
            json!({"username": "newuser", "password": "long enough", "displayName": "   "}),
            "displayName",
        ),
        (
            "long display name",
            json!({"username": "newuser", "password": "long enough", "displayName": "가".repeat(65)}),
            "displayName",
        ),
    ];
    for (case, body, field) in cases {
        let problem =
            assert_problem(app.sign_up(&body).await, 422, "/problems/invalid-field").await;
        assert_eq!(problem["field"], field, "{case}: {problem}");
    }
    // None of them created `newuser`: it cannot sign in, and the name is still free.
    assert_oauth_error(
        app.password_grant("newuser", "long enough").await,
        400,
        "invalid_grant",
    )
    .await;
    app.sign_up_ok("newuser", "long enough").await;
}

async fn malformed_bodies_are_400_and_write_nothing(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let url = format!("{}/api/users", app.base);
    let syntax = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"username": "newuser", "password": "#)
        .send()
        .await
        .unwrap();
    assert_problem(syntax, 400, "/problems/malformed-request").await;
    for body in [
        json!({"username": "newuser", "password": "long enough"}),
        json!({"username": "newuser", "password": "long enough", "displayName": "A", "roles": ["admin"]}),
        json!({"username": "newuser", "password": 12345678, "displayName": "A"}),
    ] {
        assert_problem(app.sign_up(&body).await, 400, "/problems/malformed-request").await;
    }
    let form = app
        .http
        .post(&url)
        .form(&[
            ("username", "newuser"),
            ("password", "long enough"),
            ("displayName", "A"),
        ])
        .send()
        .await
        .unwrap();
    assert_problem(form, 415, "/problems/unsupported-media-type").await;
    // The name is still free, and the account made now is a plain customer.
    let user = app.sign_up_ok("newuser", "long enough").await;
    assert_eq!(user["roles"], json!(["customer"]));
}

async fn a_taken_username_is_409_whatever_its_case(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    app.sign_up_ok("jiwoo", "first-password").await;
    for name in ["jiwoo", "JiWoo", " JIWOO "] {
        let response = app
            .sign_up(&json!({"username": name, "password": "second-password", "displayName": "Imposter"}))
            .await;
        let problem = assert_problem(response, 409, "/problems/username-taken").await;
        assert_eq!(problem["username"], "jiwoo");
    }
    // The first account keeps its password.
    app.access_token("jiwoo", "first-password").await;
    assert_oauth_error(
        app.password_grant("jiwoo", "second-password").await,
        400,
        "invalid_grant",
    )
    .await;
}

async fn concurrent_sign_ups_for_one_name_have_one_winner(backend: Backend) {
    let app = spawn_app_on(backend, &[]).await;
    let bodies: Vec<Value> = (0..4)
        .map(|i| json!({"username": "racer", "password": format!("password-{i}"), "displayName": "Racer"}))
        .collect();
    let attempts = bodies.iter().map(|body| app.sign_up(body));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        3,
        "{statuses:?}"
    );
}

on_every_backend!(
    sign_up_creates_a_customer_who_can_sign_in,
    invalid_sign_ups_name_the_field_and_write_nothing,
    malformed_bodies_are_400_and_write_nothing,
    a_taken_username_is_409_whatever_its_case,
    concurrent_sign_ups_for_one_name_have_one_winner,
);
