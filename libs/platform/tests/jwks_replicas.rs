//! `AUTH_JWKS_URL` naming several identity replicas: the keys are fetched from the first that
//! answers, so a stopped replica does not leave a fresh process unable to verify tokens.

use axum::{Json, Router, routing::get};
use studycafe_platform::{
    auth::{AuthConfig, AuthError, JwtVerifier},
    config::Env,
    signing::{AccessClaims, SigningKey, jwks},
};
use tokio::net::TcpListener;

/// A port nothing listens on: a stopped identity replica.
async fn stopped() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    drop(listener);
    url
}

/// An identity replica publishing `key`.
async fn publishing(key: &SigningKey) -> String {
    let set = jwks([key]);
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || async move { Json(set) }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn verifier(urls: &str) -> std::sync::Arc<JwtVerifier> {
    let config = AuthConfig::from_env(&Env::from_pairs([("AUTH_JWKS_URL", urls)])).unwrap();
    JwtVerifier::new(config)
}

fn token(key: &SigningKey) -> String {
    key.sign(&AccessClaims::new(
        "studycafe-identity",
        "studycafe",
        "alice",
        &["customer"],
        chrono::Duration::minutes(5),
    ))
    .unwrap()
}

#[tokio::test]
async fn keys_come_from_the_first_identity_replica_that_answers() {
    let key = SigningKey::generate("k1");
    let urls = format!("{},{}", stopped().await, publishing(&key).await);
    let caller = verifier(&urls).verify(&token(&key)).await.unwrap();
    assert_eq!(caller.user_id, "alice");
}

#[tokio::test]
async fn with_every_identity_replica_down_the_keys_are_unavailable_naming_each() {
    let key = SigningKey::generate("k1");
    let (one, two) = (stopped().await, stopped().await);
    let err = verifier(&format!("{one},{two}"))
        .verify(&token(&key))
        .await
        .unwrap_err();
    let AuthError::KeysUnavailable(why) = err else {
        panic!("{err:?}")
    };
    assert!(why.contains(&one) && why.contains(&two), "{why}");
}
