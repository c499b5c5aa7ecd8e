//! `studycafe dlq` on the embedded broker with seat consuming: a poison message is listed and
//! shown, a valid event that was dead-lettered is re-driven once and then no longer waits.

use std::{process::Output, time::Duration};

use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use shared_events::{BookingConfirmed, Envelope, EventMeta, topics};
use studycafe_e2e::{Suite, WAIT};
use studycafe_testkit::{eventually, executable, kafka};

fn dlq(suite: &Suite, args: &[&str]) -> Output {
    std::process::Command::new(executable("studycafe"))
        .arg("dlq")
        .args(args)
        .env("STUDYCAFE_KAFKA_BROKERS", suite.broker.brokers())
        .env_remove("KAFKA_TOPIC_PREFIX")
        .output()
        .expect("studycafe runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "studycafe dlq failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The lines of `dlq list --group seat` that are messages (not the topic line).
fn waiting(suite: &Suite) -> Vec<String> {
    stdout(&dlq(suite, &["list", "--group", "seat"]))
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// seat's own count of its waiting dead letters, as the `DeadLettersWaiting` alert reads it.
async fn until_gauge(suite: &Suite, want: f64) {
    let url = format!("{}/metrics", suite.seat_url);
    eventually(
        WAIT,
        &format!("dead_letter_messages_waiting = {want}"),
        || async {
            let page = suite.http.get(&url).send().await.ok()?.text().await.ok()?;
            let value: f64 = page
                .lines()
                .find(|l| {
                    l.starts_with("dead_letter_messages_waiting{") && l.contains("group=\"seat\"")
                })?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()?;
            (value == want).then_some(())
        },
    )
    .await
}

async fn until_waiting(suite: &Suite, want: usize) -> Vec<String> {
    eventually(WAIT, &format!("{want} dead letters waiting"), || async {
        let lines = waiting(suite);
        (lines.len() == want).then_some(lines)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_listed_shown_and_replayed_once() {
    let suite = Suite::start().await;
    let (_, id) = suite.reserve("alice", "A-09", 3).await;
    let id = id.expect("accepted");

    // A valid confirmation seat once dead-lettered (say its database was down for three
    // attempts), written the way the consumer writes dead letters.
    let event = Envelope::wrap(
        EventMeta::new("registration", &id, "test", chrono::Utc::now()),
        BookingConfirmed {
            reservation_id: id.clone(),
            confirmed_by: "admin".into(),
        },
    );
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", suite.broker.brokers())
        .create()
        .expect("producer");
    let mut headers = OwnedHeaders::new();
    for (key, value) in [
        ("dlq-error", "database is locked"),
        ("dlq-source-topic", topics::REGISTRATION),
        ("dlq-source-partition", "0"),
        ("dlq-source-offset", "7"),
        ("dlq-consumer-group", "seat"),
        ("dlq-attempts", "3"),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    let payload = event.to_json();
    producer
        .send(
            FutureRecord::to(&topics::dead_letter("seat"))
                .key(&id)
                .payload(&payload)
                .headers(headers),
            Duration::from_secs(20),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("dead letter written");
    let lines = until_waiting(&suite, 1).await;
    assert!(lines[0].contains("type=BookingConfirmed"), "{lines:?}");
    assert!(lines[0].contains(&format!("id={}", event.id)), "{lines:?}");
    assert!(lines[0].contains("attempts=3"), "{lines:?}");
    assert!(lines[0].contains("error=database is locked"), "{lines:?}");
    let valid = lines[0].split_whitespace().next().unwrap().to_owned();

    // A poison message on a topic seat consumes: seat dead-letters it itself.
    kafka::produce(
        &suite.broker.brokers(),
        topics::REGISTRATION,
        &id,
        b"not json",
    )
    .await;
    let lines = until_waiting(&suite, 2).await;
    let poison = lines
        .iter()
        .find(|l| !l.starts_with(&valid))
        .expect("the poison message is listed");
    assert!(poison.contains("not a valid event envelope"), "{poison}");
    assert!(
        poison.contains(&format!("from {}/", topics::REGISTRATION)),
        "{poison}"
    );
    until_gauge(&suite, 2.0).await;
    let at = poison.split_whitespace().next().unwrap();
    let shown = stdout(&dlq(&suite, &["show", "seat", at]));
    assert!(shown.contains("dlq-consumer-group: seat"), "{shown}");
    assert!(shown.contains("not json"), "{shown}");
    let shown = stdout(&dlq(&suite, &["show", "seat", &valid]));
    assert!(shown.contains("\"type\": \"BookingConfirmed\""), "{shown}");

    // Re-drive the valid one only: seat applies it.
    let replayed = stdout(&dlq(&suite, &["replay", "seat", "--offset", &valid]));
    assert!(replayed.contains("1 replayed"), "{replayed}");
    suite.wait_for_status(&id, "CONFIRMED").await;
    let lines = waiting(&suite);
    assert_eq!(
        lines.len(),
        1,
        "only the poison message still waits: {lines:?}"
    );
    assert!(!lines[0].starts_with(&valid), "{lines:?}");
    until_gauge(&suite, 1.0).await;

    // A second replay of it does nothing: it no longer waits.
    let again = dlq(&suite, &["replay", "seat", "--offset", &valid]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    let records = kafka::read_topic(
        &suite.broker.brokers(),
        topics::REGISTRATION,
        2,
        Duration::from_secs(5),
    )
    .await;
    let redriven: Vec<_> = records
        .iter()
        .filter(|r| r.headers.contains_key("dlq-replayed-from"))
        .collect();
    assert_eq!(redriven.len(), 1, "re-driven exactly once");
    assert_eq!(redriven[0].json()["id"], event.id.to_string());
}
