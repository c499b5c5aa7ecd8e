//! Self-healing under `studycafe up`: under a light load through the gateway, the seat service
//! is made to hang (SIGSTOP). Its liveness probe times out, `up` kills and restarts it after
//! the failure threshold, and the suite serves again with no manual step: a new reservation
//! reaches REGISTERED. The load's availability is printed the way siege prints it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::{Value, json};
use studycafe_e2e::{siege::Tally, up::Up};
use studycafe_testkit::{eventually, within};

/// The probe settings of this test: a hung service is killed after about three seconds.
const PROBE: [(&str, &str); 3] = [
    ("STUDYCAFE_LIVENESS_PERIOD_SECS", "1"),
    ("STUDYCAFE_LIVENESS_TIMEOUT_SECS", "1"),
    ("STUDYCAFE_LIVENESS_FAILURE_THRESHOLD", "3"),
];

const CLIENTS: usize = 4;
/// Each client's pause between two requests (a light load: a few dozen requests a second).
const PACE: Duration = Duration::from_millis(100);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A reservation of `seat`, `hours_ahead` hours from now; its id.
async fn reserve(
    http: &reqwest::Client,
    gateway: &str,
    token: &str,
    seat: &str,
    hours_ahead: i64,
) -> String {
    let starts = (chrono::Utc::now() + chrono::Duration::hours(hours_ahead))
        .format("%Y-%m-%dT%H:00:00Z")
        .to_string();
    let response = http
        .post(format!("{gateway}/api/reservations"))
        .bearer_auth(token)
        .json(
            &json!({"seatId": seat, "startsAt": starts, "hours": 1, "paymentToken": "tok_approve"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    body["reservationId"].as_str().unwrap().to_owned()
}

/// Confirms `id` as the admin and waits for REGISTERED.
async fn confirm_until_registered(
    http: &reqwest::Client,
    up: &Up,
    admin: &str,
    customer: &str,
    id: &str,
) {
    let confirm = format!("{}/api/admin/bookings/{id}/confirm", up.gateway);
    eventually(
        Duration::from_secs(90),
        "the admin's confirmation",
        || async {
            let response = http.post(&confirm).bearer_auth(admin).send().await.ok()?;
            (response.status() == 200).then_some(())
        },
    )
    .await;
    eventually(Duration::from_secs(90), "REGISTERED", || async {
        (up.status(http, customer, id).await.as_deref() == Some("REGISTERED")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_service_is_restarted_by_its_liveness_probe_and_the_suite_serves_again() {
    let mut up = Up::start_with(&PROBE);
    let gateway = up.gateway.clone();

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    up.wait_ready(Duration::from_secs(120)).await;

    let alice = up.token(&http, "alice", "alice-studies").await;
    let bob = up.token(&http, "bob", "bob-studies").await;
    let admin = up.token(&http, "admin", "admin-studies").await;
    let before = reserve(&http, &gateway, &alice, "A-01", 3).await;
    confirm_until_registered(&http, &up, &admin, &alice, &before).await;

    // The load: each client alternates the seat board (seat-view) and its reservation
    // (seat), both through the gateway.
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop_load = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, gateway, tally, stop_load) = (
            http.clone(),
            gateway.clone(),
            tally.clone(),
            stop_load.clone(),
        );
        let token = if client % 2 == 0 { &alice } else { &bob }.clone();
        let own = if client % 2 == 0 {
            format!("{gateway}/api/reservations/{before}")
        } else {
            format!("{gateway}/api/my/reservations")
        };
        clients.push(tokio::spawn(async move {
            let urls = [format!("{gateway}/api/board"), own];
            let mut n = 0usize;
            while !stop_load.load(Ordering::SeqCst) {
                let url = &urls[n % urls.len()];
                n += 1;
                let began = Instant::now();
                let outcome = match http.get(url).bearer_auth(&token).send().await {
                    Ok(response) if response.status().is_success() => Ok(()),
                    Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
                    Err(e) if e.is_timeout() => Err("timeout".to_owned()),
                    Err(_) => Err("connection error".to_owned()),
                };
                tally.lock().unwrap().record(began.elapsed(), outcome);
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Hang seat. Nobody sends SIGCONT: only the supervisor can bring it back.
    let hung = up.pid_of("seat").expect("seat's pid file");
    kill(Pid::from_raw(hung), Signal::SIGSTOP).expect("SIGSTOP seat");
    let hung_at = Instant::now();
    let log = within(Duration::from_secs(90), || async {
        let log = up.process.log_tail(200);
        (log.contains("seat failed its liveness probe 3 times in a row")
            && log.contains("seat ready again"))
        .then_some(log)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "up did not restart the hung seat:\n{}",
            up.process.log_tail(60)
        )
    });
    let healed_after = hung_at.elapsed();
    let restarted = up.pid_of("seat").expect("seat runs again");
    assert_ne!(restarted, hung, "a new seat process");
    assert!(log.contains("restart #1"), "the restart is counted:\n{log}");
    for line in log.lines().filter(|l| l.contains("seat ")) {
        println!("up | {line}");
    }

    // Serving again, under the same load: a new reservation goes all the way.
    let after = reserve(&http, &gateway, &bob, "A-02", 4).await;
    confirm_until_registered(&http, &up, &admin, &bob, &after).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_load.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "seat hung (SIGSTOP) under load; restarted by up's liveness probe {:.1} s later",
        healed_after.as_secs_f64()
    );
    let tally = tally.lock().unwrap();
    tally.print(elapsed);
    assert!(tally.ok > 0, "the load was served");

    assert!(
        up.process.stop_with(Signal::SIGTERM),
        "up stops cleanly:\n{}",
        up.process.log_tail(30)
    );
    let stopped = up.process.log_tail(40);
    assert!(
        stopped.contains("restarted once"),
        "the summary counts the restart:\n{stopped}"
    );
}
