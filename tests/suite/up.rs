//! `studycafe up` as a new user runs it: the whole suite from one command, a reservation
//! through it, its event on the topic, a clean stop on Ctrl-C, and a restart after a power cut.

use std::{collections::HashMap, process::Command, time::Duration};

use serde_json::{Value, json};
use shared_events::topics;
use studycafe_testkit::{ServiceProcess, eventually, executable, free_port, kafka, within};

struct Up {
    process: ServiceProcess,
    data: tempfile::TempDir,
    seat: String,
    brokers: String,
}

impl Up {
    fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let broker_port = free_port();
        let seat_port = free_port();
        let env = HashMap::from([
            (
                "STUDYCAFE_DATA_DIR".to_owned(),
                data.path().display().to_string(),
            ),
            ("STUDYCAFE_BROKER_PORT".to_owned(), broker_port.to_string()),
            ("STUDYCAFE_SEAT_PORT".to_owned(), seat_port.to_string()),
        ]);
        let process = ServiceProcess::start_with_args(
            "up",
            executable("studycafe"),
            &["up"],
            env,
            data.path(),
        );
        Self {
            process,
            data,
            seat: format!("http://127.0.0.1:{seat_port}"),
            brokers: format!("127.0.0.1:{broker_port}"),
        }
    }

    async fn wait_ready(&mut self) {
        let log = self.data.path().join("up.log");
        let ready = within(Duration::from_secs(90), || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            (text.contains("Ctrl-C") && text.contains(&self.seat)).then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "up never printed its summary:\n{}",
            self.process.log_tail(40)
        );
    }

    fn token(&self, user: &str) -> String {
        let output = Command::new(executable("studycafe"))
            .args(["token", "--user", user, "--data-dir"])
            .arg(self.data.path())
            .env_remove("CARGO")
            .output()
            .expect("studycafe token");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_runs_the_suite_and_a_reservation_goes_through_it() {
    let mut up = Up::start();
    up.wait_ready().await;
    let summary = up.process.log_tail(60);
    assert!(
        summary.contains(&up.seat),
        "prints where the seat service listens:\n{summary}"
    );

    let http = reqwest::Client::new();
    let starts = (chrono::Utc::now() + chrono::Duration::hours(2))
        .format("%Y-%m-%dT%H:00:00Z")
        .to_string();
    let response = http
        .post(format!("{}/api/reservations", up.seat))
        .bearer_auth(up.token("alice"))
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
    assert_eq!(reserved.json()["correlationId"], id.as_str());

    // Ctrl-C: everything stops, cleanly.
    assert!(
        up.process.stop_with(nix::sys::signal::Signal::SIGINT),
        "up exits 0 on Ctrl-C:\n{}",
        up.process.log_tail(30)
    );
    assert!(
        std::net::TcpStream::connect(up.seat.trim_start_matches("http://")).is_err(),
        "seat service stopped with it"
    );

    // Again, on the same data: the reservation is still there.
    let mut again = Up {
        process: ServiceProcess::start_with_args(
            "up",
            executable("studycafe"),
            &["up"],
            HashMap::from([
                (
                    "STUDYCAFE_DATA_DIR".to_owned(),
                    up.data.path().display().to_string(),
                ),
                (
                    "STUDYCAFE_BROKER_PORT".to_owned(),
                    up.brokers.rsplit(':').next().unwrap().to_owned(),
                ),
                (
                    "STUDYCAFE_SEAT_PORT".to_owned(),
                    up.seat.rsplit(':').next().unwrap().to_owned(),
                ),
            ]),
            up.data.path(),
        ),
        data: up.data,
        seat: up.seat.clone(),
        brokers: up.brokers.clone(),
    };
    eventually(
        Duration::from_secs(90),
        "the reservation after a restart",
        || async {
            let response = http
                .get(format!("{}/api/reservations/{id}", again.seat))
                .bearer_auth(again.token("alice"))
                .send()
                .await
                .ok()?;
            (response.status() == 200).then_some(())
        },
    )
    .await;
    assert!(again.process.stop_with(nix::sys::signal::Signal::SIGTERM));
}
