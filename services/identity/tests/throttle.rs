//! Sign-in throttling: wrong passwords lock a username out for a while, on every replica.

#[macro_use]
mod support;

use std::time::Duration;

use studycafe_testkit::eventually;
use support::{Backend, TestApp, assert_oauth_error, spawn_app_on, spawn_replicas_on};

/// Three failures are free, the fourth locks the username out for 5 s (long enough that a slow
/// machine still asks again within it, short enough to wait for).
const THROTTLE: &[(&str, &str)] = &[
    ("IDENTITY_SIGN_IN_ALLOWED_FAILURES", "3"),
    ("IDENTITY_SIGN_IN_LOCKOUT_SECS", "5"),
    ("IDENTITY_SIGN_IN_MAX_LOCKOUT_SECS", "60"),
];

async fn wrong_password(app: &TestApp, username: &str) {
    assert_oauth_error(
        app.password_grant(username, "wrong-password").await,
        400,
        "invalid_grant",
    )
    .await;
}

/// Asserts the username is locked out: 429 with a `Retry-After` within the lockout.
async fn assert_locked_out(app: &TestApp, username: &str, password: &str) {
    let response = app.password_grant(username, password).await;
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "Retry-After {retry_after}");
    let body = assert_oauth_error(response, 429, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("too many failed sign-ins"),
        "{body}"
    );
}

async fn wrong_passwords_lock_the_username_out_until_the_lockout_ends(backend: Backend) {
    let app = spawn_app_on(backend, THROTTLE).await;
    app.sign_up_ok("minjun", "right-password").await;
    app.sign_up_ok("jiwoo", "other-password").await;
    for _ in 0..4 {
        wrong_password(&app, "minjun").await;
    }
    // Even the right password is refused now, and says when to come back.
    assert_locked_out(&app, "minjun", "right-password").await;
    assert_locked_out(&app, "MinJun", "right-password").await;
    // Another account is not affected.
    app.access_token("jiwoo", "other-password").await;

    // Once the lockout is over the right password works again ...
    eventually(Duration::from_secs(15), "the lockout to end", || async {
        let response = app.password_grant("minjun", "right-password").await;
        match response.status().as_u16() {
            200 => Some(()),
            429 => None,
            other => panic!("unexpected status {other}"),
        }
    })
    .await;
    // ... and the success forgot the failures: three more are free again.
    for _ in 0..3 {
        wrong_password(&app, "minjun").await;
    }
    app.access_token("minjun", "right-password").await;
}

async fn unknown_usernames_are_locked_out_alike(backend: Backend) {
    let app = spawn_app_on(backend, THROTTLE).await;
    for _ in 0..4 {
        wrong_password(&app, "ghost").await;
    }
    // The same answer a real account gets: a lockout does not tell that the name is free.
    assert_locked_out(&app, "ghost", "any-password").await;
    // Signing up under the name is still possible; the lockout holds for it until it ends.
    app.sign_up_ok("ghost", "ghost-password").await;
    assert_locked_out(&app, "ghost", "ghost-password").await;
}

async fn replicas_count_the_failures_together(backend: Backend) {
    let (first, second) = spawn_replicas_on(backend, THROTTLE).await;
    first.sign_up_ok("seoa", "right-password").await;
    // Two failures through each replica: four in all, so the username is locked out on both.
    for app in [&first, &second, &first, &second] {
        wrong_password(app, "seoa").await;
    }
    assert_locked_out(&first, "seoa", "right-password").await;
    assert_locked_out(&second, "seoa", "right-password").await;
}

on_every_backend!(
    wrong_passwords_lock_the_username_out_until_the_lockout_ends,
    unknown_usernames_are_locked_out_alike,
    replicas_count_the_failures_together,
);
