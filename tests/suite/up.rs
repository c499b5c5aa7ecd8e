//! `studycafe up` as a new user runs it: the whole suite from one command, the demo accounts,
//! a reservation through the gateway all the way to REGISTERED, a clean stop on Ctrl-C, and a
//! restart on the same data.

use std::time::Duration;

use serde_json::{Value, json};
use shared_events::topics;
use studycafe_e2e::up::Up;
use studycafe_testkit::{eventually, executable, kafka};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_runs_the_suite_and_a_reservation_goes_all_the_way_through_it() {
    let mut up = Up::start();
    up.wait_ready(Duration::from_secs(90)).await;
    let summary = eventually(Duration::from_secs(10), "the summary", || async {
        let log = up.process.log_tail(60);
        log.contains("Ctrl-C").then_some(log)
    })
    .await;
    assert!(summary.contains(&up.gateway), "{summary}");
    assert!(
        summary.contains(&format!("127.0.0.1:{}", up.env["STUDYCAFE_SEAT_GRPC_PORT"])),
        "the gRPC port:\n{summary}"
    );
    for service in [
        "identity",
        "payment",
        "seat",
        "registration",
        "seat-view",
        "notification",
        "gateway",
    ] {
        assert!(summary.contains(service), "lists {service}:\n{summary}");
    }

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let alice = up.token(&http, "alice", "alice-studies").await;
    let admin = up.token(&http, "admin", "admin-studies").await;
    let starts = (chrono::Utc::now() + chrono::Duration::hours(2))
        .format("%Y-%m-%dT%H:00:00Z")
        .to_string();
    let response = http
        .post(format!("{}/api/reservations", up.gateway))
        .bearer_auth(&alice)
        .json(&json!({"seatId": "A-01", "startsAt": starts, "hours": 2, "paymentToken": "tok_approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["reservationId"].as_str().unwrap().to_owned();

    let records = kafka::read_topic(&up.brokers, topics::SEAT, 41, Duration::from_secs(60)).await;
    let reserved = records
        .iter()
        .find(|r| r.json()["type"] == "SeatReserved")
        .expect("SeatReserved on the seat topic");
    assert_eq!(reserved.key.as_deref(), Some(id.as_str()));

    // The cafe confirms; payment and registration follow by themselves.
    let confirm = format!("{}/api/admin/bookings/{id}/confirm", up.gateway);
    eventually(
        Duration::from_secs(60),
        "the admin's confirmation",
        || async {
            let response = http.post(&confirm).bearer_auth(&admin).send().await.ok()?;
            (response.status() == 200).then_some(())
        },
    )
    .await;
    eventually(Duration::from_secs(60), "REGISTERED", || async {
        (up.status(&http, &alice, &id).await.as_deref() == Some("REGISTERED")).then_some(())
    })
    .await;

    // Ctrl-C: everything stops, cleanly.
    assert!(
        up.process.stop_with(nix::sys::signal::Signal::SIGINT),
        "up exits 0 on Ctrl-C:\n{}",
        up.process.log_tail(30)
    );
    for url in [&up.seat, &up.gateway] {
        assert!(
            std::net::TcpStream::connect(url.trim_start_matches("http://")).is_err(),
            "{url} stopped with it"
        );
    }

    // Again, on the same data: the accounts, keys and the reservation are all still there.
    up.restart();
    up.wait_ready(Duration::from_secs(90)).await;
    let alice = up.token(&http, "alice", "alice-studies").await;
    assert_eq!(
        up.status(&http, &alice, &id).await.as_deref(),
        Some("REGISTERED")
    );

    // seat's gRPC API on its own port, through the documented client.
    let grpc = format!("127.0.0.1:{}", up.env["STUDYCAFE_SEAT_GRPC_PORT"]);
    let seat_grpc = |args: &[&str]| {
        let output = std::process::Command::new(executable("studycafe"))
            .args(["seat-grpc", "--addr", &grpc, "--token", &alice])
            .args(args)
            .output()
            .expect("studycafe seat-grpc runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = seat_grpc(&["get", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    let view: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(view["status"], "REGISTERED", "{stdout}");
    let (code, stdout, stderr) = seat_grpc(&["list"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(&id), "{stdout}");
    let (code, _, stderr) = seat_grpc(&[
        "reserve",
        "--seat",
        "A-01",
        "--starts-at",
        &starts,
        "--hours",
        "2",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("AlreadyExists") && stderr.contains("SEAT_TAKEN"),
        "{stderr}"
    );
    assert!(up.process.stop_with(nix::sys::signal::Signal::SIGTERM));
}
