//! seat → payment over HTTP: `POST /internal/payments`.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Json, Router, routing::post};
use pact_consumer::prelude::*;
use pact_models::{provider_states::ProviderState, v4::http_parts::HttpRequest};
use pact_verifier::callback_executors::{ProviderStateExecutor, RequestFilterExecutor};
use seat_service::{
    domain::{
        CustomerId, Money, PaymentToken, ReservationId,
        ports::{PaymentOutcome, PaymentRequest, Payments as _},
    },
    outbound::payments::HttpPayments,
};
use serde_json::{Value, json};
use studycafe_platform::{
    breaker::{BreakerSettings, CircuitBreaker},
    client_credentials::{ClientCredentials, ServiceToken},
    config::Env,
};
use studycafe_testkit::TestKeys;
use tokio_util::sync::CancellationToken;

use crate::support::{PACTS, pact_file, verify};

const APPROVED: &str = "0198c0de-0000-7000-8000-0000000000a1";
const DECLINED: &str = "0198c0de-0000-7000-8000-0000000000d1";
const ALREADY_PAID: &str = "0198c0de-0000-7000-8000-0000000000b1";
const UNAUTHORISED: &str = "0198c0de-0000-7000-8000-0000000000c1";
/// The token seat's client gets from the stand-in token endpoint of the consumer test; the
/// provider verification swaps it for a real service token.
const SEAT_TOKEN: &str = "seat-service-token";
const BAD_TOKEN: &str = "not-a-token-payment-trusts";

fn pay_body(reservation: &str, token: &str) -> JsonPattern {
    json_pattern!({
        "reservationId": reservation,
        "customerId": like!("alice"),
        "amount": { "amount": like!(6000), "currency": "KRW" },
        "paymentToken": token,
    })
}

/// A stand-in for identity's token endpoint (client credentials), handing out `token`.
async fn token_endpoint(token: &'static str) -> String {
    let app = Router::new().route(
        "/auth/token",
        post(move || async move {
            Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/auth/token")
}

async fn seat_client(payment_url: &str, token: &'static str) -> HttpPayments {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    HttpPayments::new(
        payment_url,
        ServiceToken::new(
            ClientCredentials {
                token_url: token_endpoint(token).await,
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

fn request(reservation: &str, token: &str) -> PaymentRequest {
    PaymentRequest {
        reservation_id: ReservationId::parse(reservation).unwrap(),
        customer_id: CustomerId::parse("alice").unwrap(),
        amount: Money::krw(6000).unwrap(),
        token: PaymentToken::parse(token).unwrap(),
    }
}

/// One interaction of seat's pact: its mock server, seat's real client against it, and what
/// the client made of the answer. The mock server checks the request when it is dropped and
/// merges the interaction into `seat-payment.json`. (Pact's mock server runs its own runtime,
/// which must not be dropped inside another: the client gets a runtime of its own here.)
fn interaction(
    description: &str,
    state: &str,
    reservation: &'static str,
    card: &'static str,
    bearer: &'static str,
    response: impl FnOnce(&mut pact_consumer::builders::ResponseBuilder),
) -> Result<PaymentOutcome, String> {
    let mut builder = PactBuilder::new("seat", "payment");
    builder
        .with_output_dir(crate::support::pacts_dir())
        .interaction(description, "", |mut i| {
            i.given(state);
            i.request
                .post()
                .path("/internal/payments")
                .header("authorization", format!("Bearer {bearer}"))
                .content_type("application/json")
                .json_body(pay_body(reservation, card));
            response(&mut i.response);
            i
        });
    let server = builder.start_mock_server(None, None);
    let url = server.url().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async {
        let client = seat_client(url.trim_end_matches('/'), bearer).await;
        client
            .pay(request(reservation, card))
            .await
            .map_err(|e| e.to_string())
    });
    drop(runtime);
    drop(server);
    outcome
}

/// What seat reads of an approved charge: its id and status.
fn completed(response: &mut pact_consumer::builders::ResponseBuilder, payment_id: &str) {
    response
        .ok()
        .content_type("application/json")
        .json_body(json_pattern!({
            "paymentId": like!(payment_id),
            "status": "COMPLETED",
        }));
}

#[test]
fn consumer_seat_states_what_it_needs_from_payment() {
    let _writing = PACTS.blocking_write();
    let _ = std::fs::remove_file(pact_file("seat", "payment"));

    let approved = interaction(
        "a charge the card approves",
        "the card approves",
        APPROVED,
        "tok_approve",
        SEAT_TOKEN,
        |r| completed(r, "0198c0de-0000-7000-8000-00000000aaaa"),
    );
    assert_eq!(
        approved,
        Ok(PaymentOutcome::Approved {
            payment_id: "0198c0de-0000-7000-8000-00000000aaaa".into()
        })
    );

    let declined = interaction(
        "a charge the card declines",
        "the card declines",
        DECLINED,
        "tok_decline",
        SEAT_TOKEN,
        |r| {
            r.ok()
                .content_type("application/json")
                .json_body(json_pattern!({
                    "paymentId": like!("0198c0de-0000-7000-8000-00000000dddd"),
                    "status": "DECLINED",
                    "reason": like!("card declined"),
                }));
        },
    );
    assert_eq!(
        declined,
        Ok(PaymentOutcome::Declined {
            reason: "card declined".into()
        })
    );

    // Seat asks again after a timeout: the same reservation is answered from payment's records.
    let again = interaction(
        "a charge of a reservation already paid",
        "the reservation is already paid",
        ALREADY_PAID,
        "tok_approve",
        SEAT_TOKEN,
        |r| completed(r, "0198c0de-0000-7000-8000-00000000bbbb"),
    );
    assert!(
        matches!(again, Ok(PaymentOutcome::Approved { .. })),
        "{again:?}"
    );

    let refused = interaction(
        "a charge with credentials payment does not accept",
        "seat's credentials are not accepted",
        UNAUTHORISED,
        "tok_approve",
        BAD_TOKEN,
        |r| {
            r.status(401)
                .content_type("application/problem+json")
                .json_body(json_pattern!({
                    "type": "/problems/unauthorized",
                    "status": 401,
                }));
        },
    );
    // Not payment's fault: seat keeps the reservation waiting and tries later.
    let refused = refused.expect_err("a 401 is no answer");
    assert!(refused.contains("refused seat's credentials"), "{refused}");
}

/// The real payment service, in-process: SQLite in a temporary directory, the card
/// simulator, tokens checked against test keys. Kafka is not needed to take payments (events
/// wait in the outbox), so it points nowhere.
struct PaymentService {
    addr: SocketAddr,
    keys: Arc<TestKeys>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl PaymentService {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(TestKeys::new());
        let db = format!("sqlite://{}", dir.path().join("payment.db").display());
        let jwks = keys.jwks_file().display().to_string();
        let env = Env::from_pairs([
            ("PAYMENT_HTTP_ADDR", "127.0.0.1:0"),
            ("PAYMENT_DATABASE_URL", db.as_str()),
            ("KAFKA_BROKERS", "127.0.0.1:9"),
            ("AUTH_JWKS_FILE", jwks.as_str()),
        ]);
        let config = payment_service::PaymentConfig::from_env(&env).unwrap();
        let shutdown = CancellationToken::new();
        let app = payment_service::App::build(config, shutdown.clone())
            .await
            .unwrap();
        let addr = app.local_addr();
        tokio::spawn(app.run());
        Self {
            addr,
            keys,
            shutdown,
            _dir: dir,
        }
    }
}

impl Drop for PaymentService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Swaps seat's stand-in token for a real service token (what identity would issue); any
/// other credentials go as the pact has them.
#[derive(Debug)]
struct RealServiceToken(String);

impl RequestFilterExecutor for RealServiceToken {
    fn call(self: Arc<Self>, request: &HttpRequest) -> HttpRequest {
        let mut request = request.clone();
        if let Some(headers) = request.headers.as_mut() {
            for (name, values) in headers.iter_mut() {
                if name.eq_ignore_ascii_case("authorization")
                    && values.first().map(String::as_str) == Some(&format!("Bearer {SEAT_TOKEN}"))
                {
                    *values = vec![format!("Bearer {}", self.0)];
                }
            }
        }
        request
    }

    fn call_non_http(
        &self,
        body: &pact_models::bodies::OptionalBody,
        metadata: &HashMap<String, either::Either<Value, bytes::Bytes>>,
    ) -> (
        pact_models::bodies::OptionalBody,
        HashMap<String, either::Either<Value, bytes::Bytes>>,
    ) {
        (body.clone(), metadata.clone())
    }
}

/// Provider states, set up through payment's own API.
#[derive(Debug)]
struct PaymentStates {
    url: String,
    token: String,
}

#[async_trait::async_trait]
impl ProviderStateExecutor for PaymentStates {
    async fn call(
        self: Arc<Self>,
        _interaction_id: Option<String>,
        state: &ProviderState,
        setup: bool,
        _client: Option<&reqwest_pact::Client>,
    ) -> anyhow::Result<HashMap<String, Value>> {
        if setup && state.name == "the reservation is already paid" {
            let response = reqwest::Client::new()
                .post(format!("{}/internal/payments", self.url))
                .bearer_auth(&self.token)
                .json(&json!({
                    "reservationId": ALREADY_PAID,
                    "customerId": "alice",
                    "amount": {"amount": 6000, "currency": "KRW"},
                    "paymentToken": "tok_approve",
                }))
                .send()
                .await?;
            anyhow::ensure!(
                response.status() == 200,
                "paying first: {}",
                response.status()
            );
        }
        // "the card approves" / "declines": the simulator decides by the request's token;
        // "credentials not accepted": the pact's token is one payment never issued.
        Ok(HashMap::new())
    }

    fn teardown(&self) -> bool {
        false
    }
}

async fn verify_payment_at(port: u16, payment: &PaymentService) -> Result<(), String> {
    let token = payment.keys.token("seat-service", &["service"]);
    verify(
        "payment",
        port,
        vec![pact_file("seat", "payment")],
        Some(Arc::new(RealServiceToken(token.clone()))),
        Arc::new(PaymentStates {
            url: format!("http://{}", payment.addr),
            token,
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_payment_honours_seats_pact() {
    let payment = PaymentService::start().await;
    let result = verify_payment_at(payment.addr.port(), &payment).await;
    assert!(result.is_ok(), "{}", result.unwrap_err());
}

/// A payment that renamed `paymentId` in its answer (a copy of the real answer, changed on its
/// way back): the verification must fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_payment_breaking_a_response_field_fails_the_verification() {
    let payment = PaymentService::start().await;
    let upstream = format!("http://{}", payment.addr);
    let proxy = Router::new().fallback(move |request: axum::extract::Request| {
        let upstream = upstream.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let mut forward = reqwest::Client::new()
                .request(parts.method.clone(), format!("{upstream}{}", parts.uri))
                .body(body);
            for (name, value) in &parts.headers {
                if name != "host" && name != "content-length" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.send().await.unwrap();
            let status = answer.status();
            let content_type = answer.headers().get("content-type").cloned();
            let mut json: Value = answer.json().await.unwrap_or(Value::Null);
            if let Some(id) = json.as_object_mut().and_then(|o| o.remove("paymentId")) {
                json["id"] = id;
            }
            let mut response =
                axum::response::Response::new(axum::body::Body::from(json.to_string()));
            *response.status_mut() = status;
            if let Some(content_type) = content_type {
                response.headers_mut().insert("content-type", content_type);
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, proxy).await });

    let result = verify_payment_at(port, &payment).await;
    let report = result.expect_err("a renamed paymentId must fail seat's pact");
    assert!(report.contains("paymentId"), "{report}");
}
