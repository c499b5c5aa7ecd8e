//! The cancellation storm (issue 17): clients that hang up must never wedge a service.
//!
//! Thousands of write requests — reserve, cancel, sign-up, token, the admin's confirm, reject
//! and policy through the gateway, and payment's internal pay directly with seat's service
//! token — each abandoned at a random moment 0–50 ms after it was sent: the client drops the
//! request and its connection, as a phone on a bad network does. Afterwards:
//! - every service is ready and ordinary requests are all served (each with a generous client
//!   timeout: this asserts service, not speed);
//! - each abandoned request either happened or did not, never half: a reservation's
//!   `Idempotency-Key` retry returns it (or makes it now), a sign-up either made an account its
//!   password opens or nothing, a payment's retry finds one payment;
//! - the invariants of PRODUCT.md hold: no two live reservations of a seat overlap; each
//!   reservation is charged, refunded and registered at most once, and a closed reservation
//!   that was charged is refunded;
//! - every reservation that exists had its events published, up to its current state.
//!
//! On the embedded stack by default; `STUDYCAFE_E2E_STACK=production` runs it on the engines
//! (scripts/test does both). The seed of the random schedule is printed, for a rerun.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use studycafe_e2e::{
    saga::{LIVE, Rng, last_event_of},
    stack::{Stack, StackOptions, User, Window, count_distinct},
};
use studycafe_testkit::kafka::Record;

/// Requests in the storm, and how many are in flight at once.
const STORM: usize = 3000;
const STORM_CONCURRENCY: usize = 64;
/// Each storm request is abandoned this long after it was sent, at most (uniform from 0).
const ABANDON_WITHIN_MS: u64 = 50;
/// The ordinary requests after the storm: served within this, or the test fails. Generous: a
/// wedged service hangs until its clients give up, a healthy one answers in milliseconds.
const SERVED_WITHIN: Duration = Duration::from_secs(20);

const SEATS: [&str; 12] = [
    "A-01", "A-02", "A-03", "A-04", "A-05", "A-06", "B-01", "B-02", "B-03", "B-04", "FB-01",
    "FB-02",
];
const CUSTOMERS: usize = 6;
const FAKE_PAYMENTS: usize = 60;

#[derive(Debug, Clone)]
struct ReserveAttempt {
    customer: usize,
    key: String,
    body: Value,
}

#[derive(Debug, Clone)]
enum Request {
    Reserve(ReserveAttempt),
    Cancel { customer: usize },
    Confirm,
    Reject,
    Policy(bool),
    SignUp { username: String, password: String },
    Token { customer: usize },
    Pay { index: usize },
}

/// What the storm learned and tried, for the checks after it.
#[derive(Debug, Default)]
struct Ledger {
    /// Reservations known to exist (answered 202), with their customer.
    reservations: Vec<(String, usize)>,
    reserve_attempts: Vec<ReserveAttempt>,
    sign_ups: Vec<(String, String)>,
    answered: HashMap<String, usize>,
    abandoned: usize,
}

struct Storm {
    stack: Arc<Stack>,
    customers: Vec<User>,
    service_token: String,
    fake_payments: Vec<(String, &'static str)>,
    /// Its own client: the stack's has a long timeout, and storm connections are throwaway.
    http: reqwest::Client,
    ledger: Mutex<Ledger>,
}

fn pay_body(reservation: &str, token: &str) -> Value {
    json!({
        "reservationId": reservation,
        "customerId": "storm-customer",
        "amount": {"amount": 4000, "currency": "KRW"},
        "paymentToken": token,
    })
}

impl Storm {
    fn known_reservation(&self, rng_pick: usize) -> Option<(String, usize)> {
        let ledger = self.ledger.lock().unwrap();
        (!ledger.reservations.is_empty())
            .then(|| ledger.reservations[rng_pick % ledger.reservations.len()].clone())
    }

    /// The HTTP request for `request`; `pick` chooses among known reservations.
    fn build(&self, request: &Request, pick: usize) -> Option<reqwest::RequestBuilder> {
        let api = |path: &str| self.stack.api(path);
        let admin = &self.stack.admin.token;
        Some(match request {
            Request::Reserve(attempt) => self
                .http
                .post(api("/api/reservations"))
                .bearer_auth(&self.customers[attempt.customer].token)
                .header("idempotency-key", &attempt.key)
                .json(&attempt.body),
            Request::Cancel { customer } => {
                let (id, owner) = self.known_reservation(pick)?;
                // Mostly the owner; sometimes a stranger (403) — also a path to survive.
                let who = if pick.is_multiple_of(5) {
                    *customer
                } else {
                    owner
                };
                self.http
                    .delete(api(&format!("/api/reservations/{id}")))
                    .bearer_auth(&self.customers[who].token)
            }
            Request::Confirm => {
                let (id, _) = self.known_reservation(pick)?;
                self.http
                    .post(api(&format!("/api/admin/bookings/{id}/confirm")))
                    .bearer_auth(admin)
            }
            Request::Reject => {
                let (id, _) = self.known_reservation(pick)?;
                self.http
                    .post(api(&format!("/api/admin/bookings/{id}/reject")))
                    .bearer_auth(admin)
                    .json(&json!({"reason": "storm"}))
            }
            Request::Policy(on) => self
                .http
                .put(api("/api/admin/policy"))
                .bearer_auth(admin)
                .json(&json!({"autoConfirm": on})),
            Request::SignUp { username, password } => self
                .http
                .post(api("/api/users"))
                .json(&json!({"username": username, "password": password, "displayName": "Storm"})),
            Request::Token { customer } => {
                let user = &self.customers[*customer];
                self.http.post(api("/auth/token")).form(&[
                    ("grant_type", "password"),
                    ("username", user.username.as_str()),
                    ("password", &password_of(&user.username)),
                ])
            }
            Request::Pay { index } => {
                let (id, token) = &self.fake_payments[*index];
                self.http
                    .post(format!("{}/internal/payments", self.stack.payment_url))
                    .bearer_auth(&self.service_token)
                    .json(&pay_body(id, token))
            }
        })
    }

    /// Sends `request` and abandons it after `abandon_after` (if it has not finished by then).
    async fn fire(&self, request: Request, pick: usize, abandon_after: Duration) {
        if let Request::Reserve(attempt) = &request {
            self.ledger
                .lock()
                .unwrap()
                .reserve_attempts
                .push(attempt.clone());
        }
        if let Request::SignUp { username, password } = &request {
            self.ledger
                .lock()
                .unwrap()
                .sign_ups
                .push((username.clone(), password.clone()));
        }
        let Some(builder) = self.build(&request, pick) else {
            return;
        };
        let answer = tokio::time::timeout(abandon_after, async {
            let response = builder.send().await.ok()?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Some((status, body))
        })
        .await;
        let mut ledger = self.ledger.lock().unwrap();
        match answer {
            Err(_) => ledger.abandoned += 1,
            Ok(None) => *ledger.answered.entry("broken".into()).or_default() += 1,
            Ok(Some((status, body))) => {
                *ledger
                    .answered
                    .entry(status.as_str().to_owned())
                    .or_default() += 1;
                if let (Request::Reserve(attempt), StatusCode::ACCEPTED) = (&request, status)
                    && let Some(id) = body["reservationId"].as_str()
                {
                    ledger.reservations.push((id.to_owned(), attempt.customer));
                }
            }
        }
    }
}

fn password_of(username: &str) -> String {
    format!("{username}-password")
}

/// A random request of the storm's mix.
fn random_request(rng: &mut Rng, i: usize, run: &str) -> Request {
    let customer = rng.below(CUSTOMERS);
    match rng.below(100) {
        0..=39 => {
            let window = Window::ahead(rng.below(24) as i64, 1 + rng.below(3) as u8);
            Request::Reserve(ReserveAttempt {
                customer,
                key: format!("{run}-{i}"),
                body: json!({
                    "seatId": SEATS[rng.below(SEATS.len())],
                    "startsAt": window.starts_at.to_rfc3339(),
                    "hours": window.hours,
                    "paymentToken": if rng.below(4) == 0 { "tok_slow_30" } else { "tok_approve" },
                }),
            })
        }
        40..=54 => Request::Cancel { customer },
        55..=64 => Request::Confirm,
        65..=69 => Request::Reject,
        70..=73 => Request::Policy(rng.below(2) == 0),
        74..=78 => {
            let username = format!("{run}-u{i}");
            Request::SignUp {
                password: password_of(&username),
                username,
            }
        }
        79..=83 => Request::Token { customer },
        _ => Request::Pay {
            index: rng.below(FAKE_PAYMENTS),
        },
    }
}

/// Sends an ordinary request (never abandoned) and asserts it was served with one of `ok`.
async fn served(
    stack: &Stack,
    request: reqwest::RequestBuilder,
    what: &str,
    ok: &[u16],
) -> (StatusCode, Value) {
    let (status, _, body) = served_with_headers(stack, request, what, ok).await;
    (status, body)
}

/// [`served`], with the answer's headers.
async fn served_with_headers(
    stack: &Stack,
    request: reqwest::RequestBuilder,
    what: &str,
    ok: &[u16],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let started = Instant::now();
    let response = tokio::time::timeout(SERVED_WITHIN, request.send())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{what}: no answer within {SERVED_WITHIN:?} after the storm\n{}",
                stack.logs()
            )
        })
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", stack.logs()));
    let status = response.status();
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        ok.contains(&status.as_u16()),
        "{what} after the storm: {status} {body} (after {:?})\n{}",
        started.elapsed(),
        stack.logs()
    );
    (status, headers, body)
}

/// A cancellation by `user`, served with 202.
async fn cancel_served(stack: &Stack, user: &User, id: &str, what: &str) {
    let request = stack
        .http
        .delete(stack.api(&format!("/api/reservations/{id}")))
        .bearer_auth(&user.token);
    served(stack, request, what, &[202]).await;
}

fn events_by_key(records: &[Record]) -> HashMap<String, Vec<Value>> {
    let mut by_key: HashMap<String, Vec<Value>> = HashMap::new();
    for record in records {
        if let Some(key) = &record.key {
            by_key.entry(key.clone()).or_default().push(record.json());
        }
    }
    by_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancellation_storm_wedges_nothing_and_loses_nothing() {
    let stack = Arc::new(Stack::start(StackOptions::default()).await);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("storm seed: {seed}");
    let mut rng = Rng(seed);
    let run = format!("storm{}", seed % 1_000_000);

    let mut customers = Vec::new();
    for i in 0..CUSTOMERS {
        customers.push(stack.customer(&format!("{run}-c{i}")).await);
    }
    let service_token = stack.service_token().await;
    let fake_payments: Vec<(String, &'static str)> = (0..FAKE_PAYMENTS)
        .map(|i| {
            let token = if i % 3 == 0 {
                "tok_slow_40"
            } else {
                "tok_approve"
            };
            (uuid::Uuid::now_v7().to_string(), token)
        })
        .collect();
    let storm = Arc::new(Storm {
        stack: stack.clone(),
        customers,
        service_token,
        fake_payments,
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        ledger: Mutex::new(Ledger::default()),
    });

    // A few reservations to cancel, confirm and reject from the first moment.
    for i in 0..24 {
        let customer = i % CUSTOMERS;
        let window = Window::ahead(30 + i as i64 * 2, 1);
        let id = stack
            .reserve_ok(
                &storm.customers[customer],
                SEATS[i % SEATS.len()],
                &window,
                "tok_approve",
            )
            .await;
        storm
            .ledger
            .lock()
            .unwrap()
            .reservations
            .push((id, customer));
    }

    // The storm.
    let schedule: Vec<(Request, usize, Duration)> = (0..STORM)
        .map(|i| {
            let request = random_request(&mut rng, i, &run);
            let pick = rng.below(1 << 20);
            let abandon = Duration::from_millis(rng.next_u64() % (ABANDON_WITHIN_MS + 1));
            (request, pick, abandon)
        })
        .collect();
    let started = Instant::now();
    futures::stream::iter(schedule)
        .for_each_concurrent(STORM_CONCURRENCY, |(request, pick, abandon)| {
            let storm = storm.clone();
            async move { storm.fire(request, pick, abandon).await }
        })
        .await;
    {
        let ledger = storm.ledger.lock().unwrap();
        eprintln!(
            "storm: {STORM} requests in {:?}; abandoned {}, answered {:?}",
            started.elapsed(),
            ledger.abandoned,
            ledger.answered
        );
        assert!(
            ledger.abandoned >= STORM / 4,
            "the storm must abandon requests for real ({} of {STORM})",
            ledger.abandoned
        );
    }

    // Every service is ready again (a wedged store fails readiness).
    for (name, base) in [
        ("identity", stack.identity_url.clone()),
        ("registration", stack.registration_url.clone()),
        ("seat", stack.seat_url.clone()),
        ("payment", stack.payment_url.clone()),
        ("seat-view", stack.seat_view_url.clone()),
        ("gateway", stack.url.clone()),
    ] {
        stack.wait_ready(name, &base).await;
    }

    // Each abandoned reservation happened or did not: its retry (same key, same body) replays
    // it, or makes it now, or finds the seat taken meanwhile.
    let attempts = storm.ledger.lock().unwrap().reserve_attempts.clone();
    let retried: Vec<(String, bool)> = futures::stream::iter(attempts)
        .map(|attempt| {
            let (stack, storm) = (stack.clone(), storm.clone());
            async move {
                let request = stack
                    .http
                    .post(stack.api("/api/reservations"))
                    .bearer_auth(&storm.customers[attempt.customer].token)
                    .header("idempotency-key", &attempt.key)
                    .json(&attempt.body);
                let (status, headers, body) =
                    served_with_headers(&stack, request, "an Idempotency-Key retry", &[202, 409])
                        .await;
                (status == StatusCode::ACCEPTED).then(|| {
                    (
                        body["reservationId"]
                            .as_str()
                            .expect("reservationId")
                            .to_owned(),
                        headers.contains_key("idempotent-replayed"),
                    )
                })
            }
        })
        .buffer_unordered(16)
        .filter_map(|found| async move { found })
        .collect()
        .await;
    eprintln!(
        "retries: {} reservations had happened during the storm (replayed), {} were made now",
        retried.iter().filter(|(_, replayed)| *replayed).count(),
        retried.iter().filter(|(_, replayed)| !*replayed).count()
    );

    // Each abandoned sign-up made an account its password opens, or nothing (a sign-up now
    // succeeds).
    let sign_ups = storm.ledger.lock().unwrap().sign_ups.clone();
    for (username, password) in &sign_ups {
        let token = stack.http.post(stack.api("/auth/token")).form(&[
            ("grant_type", "password"),
            ("username", username.as_str()),
            ("password", password.as_str()),
        ]);
        let (status, _) = served(
            &stack,
            token,
            "a sign-in after an abandoned sign-up",
            &[200, 400],
        )
        .await;
        if status == StatusCode::BAD_REQUEST {
            let sign_up = stack
                .http
                .post(stack.api("/api/users"))
                .json(&json!({"username": username, "password": password, "displayName": "Storm"}));
            served(
                &stack,
                sign_up,
                "a sign-up whose abandoned attempt left nothing",
                &[201],
            )
            .await;
        }
    }

    // Each abandoned payment was made once or not at all: its retry answers, one payment.
    for (id, token) in &storm.fake_payments {
        let pay = stack
            .http
            .post(format!("{}/internal/payments", stack.payment_url))
            .bearer_auth(&storm.service_token)
            .json(&pay_body(id, token));
        let (_, body) = served(&stack, pay, "a payment retry", &[200]).await;
        assert_eq!(body["status"], "COMPLETED", "{id}: {body}");
        let list = stack
            .http
            .get(stack.api(&format!("/api/payments?reservationId={id}")))
            .bearer_auth(&stack.admin.token);
        let (_, body) = served(&stack, list, "a payment lookup", &[200]).await;
        assert_eq!(
            body["payments"].as_array().map(Vec::len),
            Some(1),
            "{id} was charged once: {body}"
        );
    }

    // Ordinary traffic on every write route is served.
    stack.auto_confirm(false).await;
    let alice = &storm.customers[0];
    let window = Window::ahead(200, 2);
    let (_, body) = served(
        &stack,
        stack
            .http
            .post(stack.api("/api/reservations"))
            .bearer_auth(&alice.token)
            .json(&json!({"seatId": "B-10", "startsAt": window.starts_at.to_rfc3339(), "hours": 2, "paymentToken": "tok_approve"})),
        "a reservation",
        &[202],
    )
    .await;
    let confirmed = body["reservationId"].as_str().unwrap().to_owned();
    let window = Window::ahead(210, 1);
    let second = stack
        .reserve_ok(alice, "B-11", &window, "tok_approve")
        .await;
    let third = stack
        .reserve_ok(alice, "B-12", &Window::ahead(220, 1), "tok_approve")
        .await;
    // Registration learns of a reservation through its event: the cafe decides on bookings
    // that exist.
    for id in [&confirmed, &second] {
        stack
            .eventually(&format!("the booking of {id}"), || async {
                let (status, _) = stack
                    .get(&stack.admin, &format!("/api/admin/bookings/{id}"))
                    .await;
                (status == 200).then_some(())
            })
            .await;
    }
    for (path, body, what) in [
        (
            format!("/api/admin/bookings/{confirmed}/confirm"),
            None,
            "a confirmation",
        ),
        (
            format!("/api/admin/bookings/{second}/reject"),
            Some(json!({"reason": "after the storm"})),
            "a rejection",
        ),
    ] {
        let mut request = stack
            .http
            .post(stack.api(&path))
            .bearer_auth(&stack.admin.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        served(&stack, request, what, &[200]).await;
    }
    cancel_served(&stack, alice, &third, "a cancellation").await;
    let newcomer = format!("{run}-after");
    served(
        &stack,
        stack.http.post(stack.api("/api/users")).json(
            &json!({"username": newcomer, "password": password_of(&newcomer), "displayName": "After"}),
        ),
        "a sign-up",
        &[201],
    )
    .await;
    stack.sign_in(&newcomer, &password_of(&newcomer)).await;
    stack.wait_for_status(&confirmed, "REGISTERED").await;
    // Paid, registered, then cancelled: refunded.
    cancel_served(
        &stack,
        alice,
        &confirmed,
        "a cancellation of a paid reservation",
    )
    .await;

    // The invariants, on every reservation that exists: what the storm saw answered, what the
    // retries found, and the ordinary ones.
    let mut reservations: HashSet<String> = storm
        .ledger
        .lock()
        .unwrap()
        .reservations
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    reservations.extend(retried.into_iter().map(|(id, _)| id));
    reservations.extend([confirmed.clone(), second, third]);
    eprintln!("{} reservations exist after the storm", reservations.len());

    // Let the saga settle before judging it: every reservation's last seat event is the one
    // of its current state (which also proves every event up to it was published).
    let seat_topic = shared_events::topics::SEAT;
    let states: HashMap<String, Value> = stack
        .eventually("the events of every reservation published", || {
            let (stack, reservations) = (stack.clone(), reservations.clone());
            async move {
                let events = events_by_key(&stack.events_of(seat_topic).await);
                let mut states = HashMap::new();
                for id in &reservations {
                    let (status, body) = stack
                        .get(&stack.admin, &format!("/api/reservations/{id}"))
                        .await;
                    assert_eq!(status, 200, "{id} exists: {body}");
                    let current = body["status"].as_str().unwrap_or_default().to_owned();
                    let announced = events.get(id)?;
                    if announced.first()?["type"] != "SeatReserved"
                        || announced.last()?["type"] != last_event_of(&current)
                    {
                        return None;
                    }
                    states.insert(id.clone(), body);
                }
                Some(states)
            }
        })
        .await;

    // No two live reservations of one seat overlap.
    let live: Vec<&Value> = states
        .values()
        .filter(|r| LIVE.contains(&r["status"].as_str().unwrap_or_default()))
        .collect();
    for (i, a) in live.iter().enumerate() {
        for b in &live[i + 1..] {
            let overlap = a["seatId"] == b["seatId"]
                && a["startsAt"].as_str() < b["endsAt"].as_str()
                && b["startsAt"].as_str() < a["endsAt"].as_str();
            assert!(!overlap, "two live reservations overlap:\n{a}\n{b}");
        }
    }

    // Charged, refunded and registered at most once each; a charged reservation that closed
    // is refunded (eventually: the refund worker runs on its own).
    let fakes = storm.fake_payments.clone();
    let closed_and_charged: Vec<String> = stack
        .eventually("every closed, charged reservation refunded", || {
            let (stack, states, fakes) = (stack.clone(), &states, &fakes);
            async move {
                let payments = stack.events_of(shared_events::topics::PAYMENT).await;
                let registrations = stack.events_of(shared_events::topics::REGISTRATION).await;
                let mut owed = Vec::new();
                for (id, state) in states {
                    let charged = count_distinct(&payments, id, "PaymentCompleted");
                    let refunded = count_distinct(&payments, id, "PaymentRefunded");
                    let registered = count_distinct(&registrations, id, "SeatRegistered");
                    assert!(charged <= 1, "{id} charged {charged} times");
                    assert!(refunded <= 1, "{id} refunded {refunded} times");
                    assert!(registered <= 1, "{id} registered {registered} times");
                    let status = state["status"].as_str().unwrap_or_default();
                    let closed = !LIVE.contains(&status) && status != "COMPLETED";
                    if charged == 1 && closed {
                        if refunded == 0 {
                            return None;
                        }
                        owed.push(id.clone());
                    }
                }
                for (id, _) in fakes {
                    assert_eq!(
                        count_distinct(&payments, id, "PaymentCompleted"),
                        1,
                        "the abandoned payment {id} completed once"
                    );
                }
                Some(owed)
            }
        })
        .await;
    eprintln!(
        "{} reservations closed after being charged, each refunded once",
        closed_and_charged.len()
    );
    assert!(
        closed_and_charged.contains(&confirmed),
        "the paid reservation cancelled after the storm was refunded"
    );
}
