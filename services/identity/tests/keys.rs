//! Signing keys: persistence, rotation with `add-key`, broken key files, the JWKS.

#[macro_use]
mod support;

use std::os::unix::fs::PermissionsExt as _;

use support::{Backend, kid_of, spawn_app, spawn_app_on};

async fn keys_and_accounts_persist_across_a_restart(backend: Backend) {
    let mut app = spawn_app_on(
        backend,
        &[
            ("IDENTITY_ADMIN_USERNAME", "manager"),
            ("IDENTITY_ADMIN_PASSWORD", "first-admin-password"),
        ],
    )
    .await;
    let kids = app.published_kids().await;
    assert_eq!(kids.len(), 1);
    let file = app.keys_dir.join(format!("{}.pem", kids[0]));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner may read a signing key");
    app.sign_up_ok("yuna", "yuna-password").await;
    let token = app.access_token("yuna", "yuna-password").await;

    // Restarted with another admin password: the admin keeps the one it has.
    app.restart_with(&[
        ("IDENTITY_ADMIN_USERNAME", "manager"),
        ("IDENTITY_ADMIN_PASSWORD", "second-admin-password"),
    ])
    .await;
    assert_eq!(
        app.published_kids().await,
        kids,
        "same key after the restart"
    );
    let caller = app
        .verifier()
        .verify(&token)
        .await
        .expect("old token still verifies");
    assert_eq!(caller.roles, vec![studycafe_platform::auth::Role::Customer]);
    let fresh = app.access_token("yuna", "yuna-password").await;
    assert_eq!(kid_of(&fresh), kids[0]);
    app.access_token("manager", "first-admin-password").await;
    assert_eq!(
        app.password_grant("manager", "second-admin-password")
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn add_key_rotates_without_a_restart() {
    let app = spawn_app().await;
    app.sign_up_ok("doyun", "doyun-password").await;
    let before = app.access_token("doyun", "doyun-password").await;
    let old_kid = kid_of(&before);

    let new_kid = identity_service::add_key(&app.keys_dir).unwrap();
    assert!(new_kid > old_kid, "{new_kid} sorts after {old_kid}");

    let response = app
        .http
        .get(format!("{}/.well-known/jwks.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=60");
    let jwks: serde_json::Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{jwks}");
    for key in keys {
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["alg"], "EdDSA");
        assert!(key.get("d").is_none(), "no private half in the JWKS");
    }
    assert_eq!(
        app.published_kids().await,
        vec![new_kid.clone(), old_kid.clone()]
    );

    let after = app.access_token("doyun", "doyun-password").await;
    assert_eq!(kid_of(&after), new_kid, "the newest key signs");
    let verifier = app.verifier();
    verifier
        .verify(&before)
        .await
        .expect("a token from before still verifies");
    verifier
        .verify(&after)
        .await
        .expect("the new token verifies");
}

#[tokio::test]
async fn the_add_key_command_prints_the_new_kid() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"))
        .arg("add-key")
        .env("IDENTITY_KEYS_DIR", &keys_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let kid = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(kid.starts_with("key-"), "{kid}");
    assert!(keys_dir.join(format!("{kid}.pem")).is_file());

    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"))
        .arg("remove-everything")
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

#[tokio::test]
async fn a_broken_key_file_is_named_at_start_and_survived_at_rescan() {
    let app = spawn_app().await;
    app.sign_up_ok("sua", "sua-password").await;
    let kids = app.published_kids().await;
    let broken = app.keys_dir.join("key-20990101T000000Z.pem");
    std::fs::write(&broken, "-----BEGIN PRIVATE KEY-----\nnot a key\n").unwrap();

    // The running service reports it and keeps the keys it has.
    assert_eq!(app.published_kids().await, kids);
    let token = app.access_token("sua", "sua-password").await;
    assert_eq!(kid_of(&token), kids[0]);
    app.verifier().verify(&token).await.unwrap();

    // A new start refuses, naming the file.
    let err = app.build_again(&[]).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("key-20990101T000000Z.pem"), "{message}");
}

#[tokio::test]
async fn ops_endpoints() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready"] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    app.sign_up_ok("metric", "metric-password").await;
    app.access_token("metric", "metric-password").await;
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
        metrics.contains("identity_tokens_issued_total"),
        "{metrics}"
    );
    let response = app
        .http
        .get(format!("{}/health/live", app.base))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("x-request-id"));
}

on_every_backend!(keys_and_accounts_persist_across_a_restart,);
