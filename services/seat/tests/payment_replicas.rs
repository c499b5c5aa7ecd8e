//! Seat's payment client over several payment replicas (`SEAT_PAYMENT_URL` with several base
//! URLs), against real local listeners: a stopped replica costs nothing (the call goes to the
//! other one), a call that reached a replica which then died is not sent again (the timers'
//! next attempt will be, idempotent by reservation id).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, routing::post};
use seat_service::{
    domain::{
        CustomerId, Money, PaymentToken, ReservationId,
        ports::{PaymentOutcome, PaymentRequest, Payments as _},
    },
    outbound::payments::HttpPayments,
};
use serde_json::json;
use studycafe_platform::{
    balancer::{CheckSettings, Replicas},
    breaker::{BreakerSettings, CircuitBreaker},
    client_credentials::{ClientCredentials, ServiceToken},
};
use tokio::{io::AsyncReadExt as _, net::TcpListener};

async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Identity's token endpoint, as far as seat's client needs it.
async fn token_endpoint() -> String {
    let app = Router::new().route(
        "/auth/token",
        post(|| async {
            Json(json!({"access_token": "seat-token", "token_type": "Bearer", "expires_in": 3600}))
        }),
    );
    format!("{}/auth/token", serve(app).await)
}

/// A payment replica that approves every payment and counts them.
async fn approving_payment() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = Router::new().route(
        "/internal/payments",
        post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Json(json!({"paymentId": "p-1", "status": "COMPLETED"}))
            }
        }),
    );
    (serve(app).await, calls)
}

/// A port nothing listens on: a stopped replica.
async fn stopped_payment() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// A replica that reads a whole request head, counts it and closes the connection without
/// answering: it died while taking the payment.
async fn dying_payment() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buffer = [0u8; 4096];
                while !data.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buffer[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (url, calls)
}

async fn client(urls: &[&str]) -> HttpPayments {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    HttpPayments::over(
        &Replicas::parse("SEAT_PAYMENT_URL", &urls.join(",")).unwrap(),
        CheckSettings::default(),
        ServiceToken::new(
            ClientCredentials {
                token_url: token_endpoint().await,
                client_id: "seat-service".into(),
                client_secret: "secret".into(),
            },
            http.clone(),
        ),
        CircuitBreaker::new("payment", BreakerSettings::default()),
        http,
        Duration::from_secs(5),
    )
}

fn request() -> PaymentRequest {
    PaymentRequest {
        reservation_id: ReservationId::parse("0198c0de-0000-7000-8000-0000000000a1").unwrap(),
        customer_id: CustomerId::parse("alice").unwrap(),
        amount: Money::krw(6000).unwrap(),
        token: PaymentToken::parse("tok_visa").unwrap(),
    }
}

#[tokio::test]
async fn with_one_payment_replica_stopped_every_payment_goes_to_the_other() {
    let stopped = stopped_payment().await;
    let (live, calls) = approving_payment().await;
    // The stopped one first: the first call goes to it.
    let payments = client(&[&stopped, &live]).await;
    for _ in 0..4 {
        let outcome = payments.pay(request()).await.expect("paid");
        assert!(
            matches!(outcome, PaymentOutcome::Approved { .. }),
            "{outcome:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4, "each payment sent once");
    assert_eq!(payments.balancer().in_rotation(), [live.as_str()]);
}

#[tokio::test]
async fn a_payment_that_reached_a_replica_which_then_died_is_not_sent_again() {
    let (dying, died_on) = dying_payment().await;
    let (live, calls) = approving_payment().await;
    let payments = client(&[&dying, &live]).await;
    let err = payments.pay(request()).await.unwrap_err();
    assert_eq!(died_on.load(Ordering::SeqCst), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "resent: {err:?}");
    // The timers' next attempt goes to the live replica.
    payments
        .pay(request())
        .await
        .expect("paid on the next attempt");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
