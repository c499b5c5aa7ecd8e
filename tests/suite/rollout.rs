//! Zero-downtime rollouts under `studycafe up`, proven under load: two seat and two payment
//! replicas, a mixed load of customers and a cafe admin through the gateway, and every service
//! rolled out in turn with `studycafe rollout` from "another terminal". Every request must get
//! its expected answer (no 5xx, no connection error; 409 only for a window the customer had
//! really just taken) and every accepted reservation must reach REGISTERED.
//!
//! Then a seat replica is SIGKILLed under the same load: the requests in flight on it may fail
//! (counted and printed), but no accepted reservation loses its outcome. Last, a rollout whose
//! new process cannot become ready fails and leaves the old one serving.
//!
//! The embedded stack by default; with `STUDYCAFE_E2E_STACK=production` the same through
//! PostgreSQL, MariaDB, Redis and Apache Kafka (scripts/test's production pass).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use studycafe_e2e::{siege::Tally, up::Up};
use studycafe_testkit::{engines, eventually, within};

/// Every service `up` can roll out, in the order they are rolled.
const ROLLED: [&str; 7] = [
    "identity",
    "payment",
    "seat",
    "registration",
    "seat-view",
    "notification",
    "gateway",
];
const CUSTOMERS: usize = 5;
/// Each customer's pause between two requests.
const PACE: Duration = Duration::from_millis(40);
/// Steps of a customer's cycle: one reservation, one attempt at the window it just took, and
/// reads.
const CYCLE: usize = 16;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// The floor: at least 50 requests/s for at least 30 s. The load keeps going until it
/// has made both (a count, not a clock: a slow machine makes it run longer, not fail).
const MIN_LOAD: Duration = Duration::from_secs(30);
const MIN_REQUESTS: u64 = 50 * 30;

/// The load's phases: requests are counted by the phase they began in.
const ROLLING: usize = 0;
const KILLING: usize = 1;

#[derive(Debug)]
struct Load {
    phase: AtomicUsize,
    stop: AtomicBool,
    /// Phase by phase.
    tallies: [Mutex<Tally>; 2],
    /// `(customer's token, reservation id)` of every 202.
    accepted: Mutex<Vec<(String, String)>>,
}

impl Load {
    fn record(&self, phase: usize, took: Duration, outcome: Result<(), String>) {
        self.tallies[phase].lock().unwrap().record(took, outcome);
    }
}

/// One request and whether it got `expected`; the failure's kind names the request.
async fn call(
    request: reqwest::RequestBuilder,
    what: &str,
    expected: StatusCode,
) -> (Result<(), String>, Option<Value>) {
    match request.send().await {
        Ok(response) if response.status() == expected => {
            (Ok(()), response.json::<Value>().await.ok())
        }
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            eprintln!("{what}: HTTP {status} (expected {expected}): {body}");
            (Err(format!("{what}: HTTP {status}")), None)
        }
        Err(e) if e.is_timeout() => (Err(format!("{what}: timeout")), None),
        Err(e) => {
            eprintln!("{what}: {e:?}");
            (Err(format!("{what}: connection error")), None)
        }
    }
}

/// A customer: reserves windows of its own seats in `zone` (seat `k % 3` of its three, `k / 3`
/// hours ahead of the others), tries once per cycle the window it has just taken (409), and reads
/// the board, its reservations, its latest reservation and the catalogue.
async fn customer(
    load: Arc<Load>,
    http: reqwest::Client,
    gateway: String,
    token: String,
    client: usize,
    zone: String,
) {
    let base = chrono::Utc::now() + chrono::Duration::hours(3);
    let mut taken: Option<(String, String)> = None;
    let mut latest: Option<String> = None;
    let mut k = 0usize;
    let mut step = 0usize;
    while !load.stop.load(Ordering::SeqCst) {
        let phase = load.phase.load(Ordering::SeqCst);
        let began = Instant::now();
        let (outcome, body) = match step % CYCLE {
            0 => {
                let seat = format!("{zone}-{:02}", 3 * client + k % 3 + 1);
                let starts = (base + chrono::Duration::hours((k / 3) as i64))
                    .format("%Y-%m-%dT%H:00:00Z")
                    .to_string();
                k += 1;
                let request = http
                    .post(format!("{gateway}/api/reservations"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                    .json(&json!({"seatId": seat, "startsAt": starts, "hours": 1, "paymentToken": "tok_approve"}));
                let answer = call(request, "reserve", StatusCode::ACCEPTED).await;
                // Only a window this customer holds is "taken": after a refused reserve, the
                // next try of it would rightly be accepted.
                taken = answer.0.is_ok().then_some((seat, starts));
                answer
            }
            8 if taken.is_some() => {
                let (seat, starts) = taken.clone().unwrap();
                let request = http
                    .post(format!("{gateway}/api/reservations"))
                    .bearer_auth(&token)
                    .json(&json!({"seatId": seat, "startsAt": starts, "hours": 1, "paymentToken": "tok_approve"}));
                call(request, "reserve a taken window", StatusCode::CONFLICT).await
            }
            n if n % 4 == 1 => {
                let request = http.get(format!("{gateway}/api/board"));
                call(request, "board", StatusCode::OK).await
            }
            n if n % 4 == 2 => {
                let request = http
                    .get(format!("{gateway}/api/my/reservations"))
                    .bearer_auth(&token);
                call(request, "my reservations", StatusCode::OK).await
            }
            n if n % 4 == 3 && latest.is_some() => {
                let id = latest.as_deref().unwrap();
                let request = http
                    .get(format!("{gateway}/api/reservations/{id}"))
                    .bearer_auth(&token);
                call(request, "reservation", StatusCode::OK).await
            }
            _ => {
                let request = http.get(format!("{gateway}/api/seats"));
                call(request, "seats", StatusCode::OK).await
            }
        };
        if step.is_multiple_of(CYCLE)
            && outcome.is_ok()
            && let Some(id) = body.as_ref().and_then(|b| b["reservationId"].as_str())
        {
            latest = Some(id.to_owned());
            load.accepted
                .lock()
                .unwrap()
                .push((token.clone(), id.to_owned()));
        }
        load.record(phase, began.elapsed(), outcome);
        step += 1;
        tokio::time::sleep(PACE).await;
    }
}

/// The cafe admin: lists pending bookings and confirms this load's (the production stack's
/// database may hold earlier runs' too).
async fn admin(load: Arc<Load>, http: reqwest::Client, gateway: String, token: String) {
    while !load.stop.load(Ordering::SeqCst) {
        let phase = load.phase.load(Ordering::SeqCst);
        let began = Instant::now();
        let request = http
            .get(format!(
                "{gateway}/api/admin/bookings?status=pending&limit=500"
            ))
            .bearer_auth(&token);
        let (outcome, body) = call(request, "pending bookings", StatusCode::OK).await;
        load.record(phase, began.elapsed(), outcome);
        let pending = ours(&load, pending_ids(body.as_ref()));
        for id in pending {
            let phase = load.phase.load(Ordering::SeqCst);
            let began = Instant::now();
            let request = http
                .post(format!("{gateway}/api/admin/bookings/{id}/confirm"))
                .bearer_auth(&token);
            let (outcome, _) = call(request, "confirm", StatusCode::OK).await;
            load.record(phase, began.elapsed(), outcome);
        }
        tokio::time::sleep(PACE * 5).await;
    }
}

/// The ids among `ids` of reservations this load made.
fn ours(load: &Load, ids: Vec<String>) -> Vec<String> {
    let accepted = load.accepted.lock().unwrap();
    ids.into_iter()
        .filter(|id| accepted.iter().any(|(_, ours)| ours == id))
        .collect()
}

fn pending_ids(body: Option<&Value>) -> Vec<String> {
    body.and_then(|b| b["bookings"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|b| b["reservationId"].as_str().map(str::to_owned))
        .collect()
}

/// A customer account: the demo ones, then new sign-ups.
async fn customer_token(http: &reqwest::Client, up: &Up, client: usize) -> String {
    match client {
        0 => up.token(http, "alice", "alice-studies").await,
        1 => up.token(http, "bob", "bob-studies").await,
        n => {
            let username = format!(
                "roller{n}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            );
            let password = format!("{username}-password");
            let response = http
                .post(format!("{}/api/users", up.gateway))
                .json(&json!({"username": username, "password": password, "displayName": username}))
                .send()
                .await
                .expect("gateway answers");
            assert_eq!(response.status(), 201, "sign-up of {username}");
            up.token(http, &username, &password).await
        }
    }
}

/// The default cafe plus a zone of this run's own (three random letters): the production
/// stack's databases keep earlier runs' reservations, whose windows must not collide with
/// this run's. Returns the zone's code.
fn catalogue(path: &std::path::Path) -> String {
    let letters = uuid::Uuid::new_v4();
    let zone: String = letters.as_bytes()[..3]
        .iter()
        .map(|b| char::from(b'A' + b % 26))
        .collect();
    let default = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../services/seat/default-catalogue.toml"
    ))
    .expect("seat's default catalogue");
    let own = format!(
        "\n[[zone]]\ncode = \"{zone}\"\nkind = \"open-desk\"\nhourly_price = 2000\nseats = {}\n",
        3 * CUSTOMERS
    );
    std::fs::write(path, default + &own).expect("write the catalogue");
    zone
}

/// `up`'s settings for this test: the replicas, the catalogue, the production engines when
/// asked for, and a rate limit this load (all from one address) stays under.
fn settings(catalogue: &std::path::Path) -> Vec<(&'static str, String)> {
    let mut settings = vec![
        ("STUDYCAFE_REPLICAS", "seat=2,payment=2".to_owned()),
        ("SEAT_CATALOGUE_FILE", catalogue.display().to_string()),
        ("GATEWAY_RATE_LIMIT_PER_SEC", "100000".to_owned()),
        ("GATEWAY_RATE_LIMIT_BURST", "100000".to_owned()),
        // A killed replica is noticed soon.
        ("STUDYCAFE_LIVENESS_PERIOD_SECS", "2".to_owned()),
    ];
    if engines::production_stack_requested() {
        settings.push(("STUDYCAFE_STACK", "production".to_owned()));
    }
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_every_service_under_load_answers_every_request_and_a_killed_replica_loses_no_outcome()
 {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let catalogue_file = dir.path().join("catalogue.toml");
    let zone = catalogue(&catalogue_file);
    let settings = settings(&catalogue_file);
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut up = Up::start_with(&settings);
    let gateway = up.gateway.clone();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    up.wait_ready(Duration::from_secs(180)).await;
    let log = up.process.log_tail(60);
    for replica in ["seat-2", "payment-2"] {
        assert!(log.contains(replica), "up lists {replica}:\n{log}");
    }

    let admin_token = up.token(&http, "admin", "admin-studies").await;
    let mut tokens = Vec::new();
    for client in 0..CUSTOMERS {
        tokens.push(customer_token(&http, &up, client).await);
    }
    let load = Arc::new(Load {
        phase: AtomicUsize::new(ROLLING),
        stop: AtomicBool::new(false),
        tallies: Default::default(),
        accepted: Mutex::new(Vec::new()),
    });
    let load_began = Instant::now();
    let mut clients = Vec::new();
    for (client, token) in tokens.iter().enumerate() {
        clients.push(tokio::spawn(customer(
            load.clone(),
            http.clone(),
            gateway.clone(),
            token.clone(),
            client,
            zone.clone(),
        )));
    }
    clients.push(tokio::spawn(admin(
        load.clone(),
        http.clone(),
        gateway.clone(),
        admin_token.clone(),
    )));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Every service in turn, as an operator would from a second terminal.
    for service in ROLLED {
        let started = Instant::now();
        let (ok, output) = up.rollout(service).await;
        println!(
            "studycafe rollout {service} ({:.1} s):\n{output}",
            started.elapsed().as_secs_f64()
        );
        assert!(
            ok,
            "rollout of {service} failed:\n{output}\nup:\n{}",
            up.process.log_tail(60)
        );
    }
    // Both terminals: `up` printed the same progress.
    let log = up.process.log_tail(400);
    assert!(
        log.contains("rollout: seat-2: successor ready"),
        "up's terminal shows the rollout:\n{log}"
    );
    tokio::time::sleep(MIN_LOAD.saturating_sub(load_began.elapsed())).await;
    within(Duration::from_secs(600), || async {
        (load.tallies[ROLLING].lock().unwrap().total() >= MIN_REQUESTS).then_some(())
    })
    .await
    .expect("the load goes on");
    let rolling_elapsed = load_began.elapsed();

    // A replica killed outright: what was in flight on it may fail, nothing accepted is lost.
    load.phase.store(KILLING, Ordering::SeqCst);
    let kill_began = Instant::now();
    let victim = up.pid_of("seat-2").expect("seat-2's pid file");
    kill(Pid::from_raw(victim), Signal::SIGKILL).expect("SIGKILL seat-2");
    within(Duration::from_secs(60), || async {
        up.process
            .log_tail(100)
            .contains("seat-2 ready again")
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("up did not restart seat-2:\n{}", up.process.log_tail(60)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    load.stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let kill_elapsed = kill_began.elapsed();

    // Every accepted reservation reaches its final state (the admin confirms what is left).
    let accepted = load.accepted.lock().unwrap().clone();
    eventually(
        Duration::from_secs(180),
        "every accepted reservation REGISTERED",
        || async {
            let pending = http
                .get(format!(
                    "{gateway}/api/admin/bookings?status=pending&limit=500"
                ))
                .bearer_auth(&admin_token)
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok();
            for id in ours(&load, pending_ids(pending.as_ref())) {
                let _ = http
                    .post(format!("{gateway}/api/admin/bookings/{id}/confirm"))
                    .bearer_auth(&admin_token)
                    .send()
                    .await;
            }
            let mut waiting = 0;
            let mut by_status = std::collections::BTreeMap::<String, usize>::new();
            for (token, id) in &accepted {
                let status = up.status(&http, token, id).await;
                if status.as_deref() != Some("REGISTERED") {
                    waiting += 1;
                    *by_status.entry(status.unwrap_or_default()).or_default() += 1;
                }
            }
            println!(
                "{waiting} of {} accepted reservations not yet REGISTERED: {by_status:?}",
                accepted.len()
            );
            (waiting == 0).then_some(())
        },
    )
    .await;

    println!(
        "== every service rolled out ({}) under load, seat and payment with two replicas each:",
        ROLLED.join(", ")
    );
    let rolling = std::mem::take(&mut *load.tallies[ROLLING].lock().unwrap());
    rolling.print(rolling_elapsed);
    println!("== then seat-2 SIGKILLed under the same load and restarted by up:");
    let killing = std::mem::take(&mut *load.tallies[KILLING].lock().unwrap());
    killing.print(kill_elapsed);
    println!(
        "{} requests in flight on the killed replica failed; {} reservations accepted, all REGISTERED",
        killing.failed,
        accepted.len()
    );
    assert_eq!(rolling.failed, 0, "every request answered as expected");
    assert!(!accepted.is_empty());

    // A successor that cannot become ready (its port is taken): the rollout fails, non-zero,
    // and the old process keeps serving.
    let seat = up.pid_of("seat").expect("seat's pid file");
    let blockers: Vec<std::net::TcpListener> = [0u16, 100]
        .iter()
        .filter_map(|offset| {
            let port: u16 = up.env["STUDYCAFE_SEAT_PORT"].parse().unwrap();
            std::net::TcpListener::bind(("127.0.0.1", port + offset)).ok()
        })
        .collect();
    assert_eq!(blockers.len(), 1, "one of seat's two ports is free");
    let (ok, output) = up.rollout("seat").await;
    println!("studycafe rollout seat, its successor's port taken:\n{output}");
    assert!(!ok, "the rollout fails:\n{output}");
    assert!(output.contains("the old one keeps serving"), "{output}");
    assert_eq!(up.pid_of("seat"), Some(seat), "the old seat still runs");
    let response = http
        .get(format!("{gateway}/api/reservations/{}", accepted[0].1))
        .bearer_auth(&accepted[0].0)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the suite still serves");
    drop(blockers);

    assert!(
        up.process.stop_with(Signal::SIGTERM),
        "up stops cleanly:\n{}",
        up.process.log_tail(30)
    );
    println!("the test took {:.0} s", began.elapsed().as_secs_f64());
}
