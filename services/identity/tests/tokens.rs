//! The token endpoint: `POST /auth/token` (RFC 6749).

#[macro_use]
mod support;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::Value;
use studycafe_platform::auth::Role;
use support::{
    Backend, assert_oauth_error, claims_of, kid_of, spawn_app, spawn_app_on, spawn_app_with,
    spawn_replicas_on,
};

#[tokio::test]
async fn password_grant_issues_a_token_other_services_accept() {
    let app = spawn_app_with(&[("IDENTITY_TOKEN_TTL_SECS", "900")]).await;
    let user = app.sign_up_ok("seoyeon", "quiet-desk-42").await;
    let response = app.password_grant("seoyeon", "quiet-desk-42").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();

    let caller = app.verifier().verify(token).await.expect("verifies");
    assert_eq!(caller.user_id, user["id"].as_str().unwrap());
    assert_eq!(caller.roles, vec![Role::Customer]);
    let claims = claims_of(token);
    assert_eq!(claims["iss"], "studycafe-identity");
    assert_eq!(claims["aud"], "studycafe");
    assert_eq!(claims["roles"], serde_json::json!(["customer"]));
    assert_eq!(claims["preferred_username"], "seoyeon");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(kid_of(token), app.published_kids().await[0]);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_invalid_grant() {
    let app = spawn_app().await;
    app.sign_up_ok("hayun", "right-password").await;
    let wrong = assert_oauth_error(
        app.password_grant("hayun", "wrong-password").await,
        400,
        "invalid_grant",
    )
    .await;
    let unknown = assert_oauth_error(
        app.password_grant("nobody", "right-password").await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(wrong, unknown, "nothing tells which usernames exist");
    // Inputs no account could have are refused the same way.
    for (username, password) in [("x", "right-password"), ("hayun", "short")] {
        let body = assert_oauth_error(
            app.password_grant(username, password).await,
            400,
            "invalid_grant",
        )
        .await;
        assert_eq!(body, wrong);
    }
}

async fn bootstrap_admin_and_demo_accounts(backend: Backend) {
    let app = spawn_app_on(
        backend,
        &[
            ("IDENTITY_ADMIN_USERNAME", "Manager"),
            ("IDENTITY_ADMIN_PASSWORD", "cafe-manager-pw"),
            ("IDENTITY_DEMO_ACCOUNTS", "true"),
        ],
    )
    .await;
    let admin = app.access_token("manager", "cafe-manager-pw").await;
    let caller = app.verifier().verify(&admin).await.unwrap();
    assert!(caller.is_admin());
    assert_eq!(claims_of(&admin)["roles"], serde_json::json!(["admin"]));

    for (username, password) in [("alice", "alice-studies"), ("bob", "bob-studies")] {
        let token = app.access_token(username, password).await;
        let caller = app.verifier().verify(&token).await.unwrap();
        assert_eq!(caller.roles, vec![Role::Customer], "{username}");
    }
    // The demo names are taken now.
    let response = app
        .sign_up(&serde_json::json!({"username": "alice", "password": "my-own-password", "displayName": "Alice 2"}))
        .await;
    assert_eq!(response.status(), 409);
}

async fn an_existing_account_becomes_admin_only_with_its_own_password(backend: Backend) {
    let mut app = spawn_app_on(backend, &[]).await;
    let boss = app.sign_up_ok("boss", "signed-up-password").await;

    // Someone signed up under the admin's name first: not made admin with their password.
    let err = app
        .build_again(&[
            ("IDENTITY_ADMIN_USERNAME", "boss"),
            ("IDENTITY_ADMIN_PASSWORD", "operator-password"),
        ])
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("IDENTITY_ADMIN_USERNAME"), "{message}");
    let token = app.access_token("boss", "signed-up-password").await;
    assert!(!app.verifier().verify(&token).await.unwrap().is_admin());

    // The operator who knows the account's password may promote it.
    app.restart_with(&[
        ("IDENTITY_ADMIN_USERNAME", "boss"),
        ("IDENTITY_ADMIN_PASSWORD", "signed-up-password"),
    ])
    .await;
    let token = app.access_token("boss", "signed-up-password").await;
    let caller = app.verifier().verify(&token).await.unwrap();
    assert!(caller.is_admin());
    assert!(caller.has(Role::Customer));
    assert_eq!(caller.user_id, boss["id"].as_str().unwrap());
}

#[tokio::test]
async fn without_the_flag_there_are_no_demo_accounts() {
    let app = spawn_app().await;
    assert_oauth_error(
        app.password_grant("alice", "alice-studies").await,
        400,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn client_credentials_via_basic_and_via_form() {
    let app = spawn_app().await;
    let url = format!("{}/auth/token", app.base);

    let basic = app
        .http
        .post(&url)
        .basic_auth("seat-service", Some("seat-s3cret-value"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    assert_eq!(basic.headers()["cache-control"], "no-store");
    let body: Value = basic.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let caller = app.verifier().verify(token).await.unwrap();
    assert_eq!(caller.user_id, "seat-service");
    assert_eq!(caller.roles, vec![Role::Service]);
    assert_eq!(claims_of(token)["roles"], serde_json::json!(["service"]));

    // A secret with ':' and ' ' in it, form-encoded inside Basic as RFC 6749 §2.3.1 says.
    let encoded = STANDARD.encode("payment-service:pay%3As3cret+value");
    let basic_encoded = app
        .http
        .post(&url)
        .header("authorization", format!("Basic {encoded}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic_encoded.status(), 200);

    let form = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "payment-service"),
            ("client_secret", "pay:s3cret value"),
        ])
        .await;
    assert_eq!(form.status(), 200);
    let body: Value = form.json().await.unwrap();
    let caller = app
        .verifier()
        .verify(body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(caller.user_id, "payment-service");
}

#[tokio::test]
async fn bad_clients_get_401_invalid_client() {
    let app = spawn_app().await;
    let url = format!("{}/auth/token", app.base);
    for (id, secret) in [
        ("seat-service", "wrong"),
        ("seat-service", "seat-s3cret-valuE"),
        ("stranger", "seat-s3cret-value"),
    ] {
        let response = app
            .http
            .post(&url)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"studycafe\""
        );
        assert_oauth_error(response, 401, "invalid_client").await;
    }
    let garbled = app
        .http
        .post(&url)
        .header("authorization", "Basic !!!not-base64")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(garbled, 401, "invalid_client").await;

    // Form credentials: 401 too, without a Basic challenge the client did not use.
    let form = app
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "seat-service"),
            ("client_secret", "wrong"),
        ])
        .await;
    assert!(form.headers().get("www-authenticate").is_none());
    assert_oauth_error(form, 401, "invalid_client").await;

    // No client authentication at all.
    let anonymous = app
        .token_form(&[("grant_type", "client_credentials")])
        .await;
    assert!(anonymous.headers().get("www-authenticate").is_some());
    assert_oauth_error(anonymous, 401, "invalid_client").await;

    // A password grant naming a client with the wrong secret is refused as well.
    app.sign_up_ok("minho", "minho-password").await;
    let response = app
        .http
        .post(&url)
        .basic_auth("seat-service", Some("wrong"))
        .form(&[
            ("grant_type", "password"),
            ("username", "minho"),
            ("password", "minho-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 401, "invalid_client").await;
}

#[tokio::test]
async fn malformed_token_requests_get_rfc_6749_errors() {
    let app = spawn_app().await;
    let url = format!("{}/auth/token", app.base);

    let unsupported = app
        .token_form(&[("grant_type", "authorization_code"), ("code", "x")])
        .await;
    assert_oauth_error(unsupported, 400, "unsupported_grant_type").await;

    for form in [
        vec![("username", "someone"), ("password", "long enough")],
        vec![("grant_type", ""), ("username", "someone")],
        vec![("grant_type", "password"), ("password", "long enough")],
        vec![("grant_type", "password"), ("username", "someone")],
        vec![
            ("grant_type", "password"),
            ("username", "someone"),
            ("password", ""),
        ],
        vec![
            ("grant_type", "password"),
            ("grant_type", "password"),
            ("username", "someone"),
            ("password", "long enough"),
        ],
        vec![("grant_type", "client_credentials"), ("client_secret", "x")],
    ] {
        let response = app.token_form(&form).await;
        let body = assert_oauth_error(response, 400, "invalid_request").await;
        assert!(!body.to_string().contains("long enough"), "{body}");
    }

    let both_methods = app
        .http
        .post(&url)
        .basic_auth("seat-service", Some("seat-s3cret-value"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "seat-service"),
            ("client_secret", "seat-s3cret-value"),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(both_methods, 400, "invalid_request").await;

    let json = app
        .http
        .post(&url)
        .json(&serde_json::json!({"grant_type": "password", "username": "a", "password": "b"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(json, 400, "invalid_request").await;

    let no_type = app
        .http
        .post(&url)
        .body("grant_type=password&username=someone&password=long+enough")
        .send()
        .await
        .unwrap();
    assert_oauth_error(no_type, 400, "invalid_request").await;
}

async fn two_replicas_starting_together_bootstrap_one_admin(backend: Backend) {
    let (first, second) = spawn_replicas_on(
        backend,
        &[
            ("IDENTITY_ADMIN_USERNAME", "manager"),
            ("IDENTITY_ADMIN_PASSWORD", "cafe-manager-pw"),
            ("IDENTITY_DEMO_ACCOUNTS", "true"),
        ],
    )
    .await;
    // One account each, whichever replica is asked: both see the same admin and demo users.
    let via_first = first.access_token("manager", "cafe-manager-pw").await;
    let via_second = second.access_token("manager", "cafe-manager-pw").await;
    assert_eq!(claims_of(&via_first)["sub"], claims_of(&via_second)["sub"]);
    assert!(
        first
            .verifier()
            .verify(&via_first)
            .await
            .unwrap()
            .is_admin()
    );
    let alice_first = first.access_token("alice", "alice-studies").await;
    let alice_second = second.access_token("alice", "alice-studies").await;
    assert_eq!(
        claims_of(&alice_first)["sub"],
        claims_of(&alice_second)["sub"]
    );
}

on_every_backend!(
    bootstrap_admin_and_demo_accounts,
    an_existing_account_becomes_admin_only_with_its_own_password,
    two_replicas_starting_together_bootstrap_one_admin,
);
