//! A view rebuilt after Kafka deleted the seat topic's old segments is still whole: seat
//! re-announces its catalogue (`SEAT_CATALOGUE_REANNOUNCE_SECS`), so the seats are on the
//! topic whatever its retention, and the topics keep 35 days of events, so every reservation
//! that is not over yet is too.
//!
//! Production stack only: Apache Kafka enforces retention (scripts/engines/kafka checks it
//! every second); the embedded broker keeps everything.

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer as _},
};
use shared_events::topics;
use studycafe_e2e::stack::{Stack, StackOptions, Window};
use studycafe_testkit::engines;

const TIMEOUT: Duration = Duration::from_secs(10);

/// How often seat re-announces its catalogue here (a day in production).
const REANNOUNCE_SECS: &str = "5";

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client")
}

async fn retention_of(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Option<String> {
    let results = admin
        .describe_configs(
            &[ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("describe configs");
    let resource = results.into_iter().next()?.ok()?;
    resource.get("retention.ms")?.value.clone()
}

async fn set_retention(admin: &AdminClient<DefaultClientContext>, topic: &str, ms: &str) {
    let results = admin
        .alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", ms)],
            &AdminOptions::new().request_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("alter configs");
    for result in results {
        result.unwrap_or_else(|(resource, e)| panic!("retention of {resource:?}: {e}"));
    }
}

/// Each partition's (low, high) watermarks: the first offset still kept, the next to write.
fn watermarks(brokers: &str, topic: &str) -> BTreeMap<i32, (i64, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("watermarks-{}", uuid::Uuid::new_v4()))
        .create()
        .expect("consumer");
    (0..topics::PARTITIONS)
        .map(|p| {
            let marks = consumer
                .fetch_watermarks(topic, p, TIMEOUT)
                .expect("watermarks");
            (p, marks)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "production stack only (Apache Kafka enforces retention): STUDYCAFE_E2E_STACK=production, --include-ignored"]
async fn a_view_rebuilt_after_old_segments_were_deleted_shows_every_seat_and_live_reservation() {
    assert!(
        engines::production_stack_requested(),
        "needs Apache Kafka's retention: run with STUDYCAFE_E2E_STACK=production (scripts/test does)"
    );
    let mut stack = Stack::start(StackOptions {
        seat_env: vec![("SEAT_CATALOGUE_REANNOUNCE_SECS", REANNOUNCE_SECS.to_owned())],
        ..StackOptions::default()
    })
    .await;
    let admin = admin(&stack.brokers);
    let seat_topic = format!("{}{}", stack.topic_prefix, topics::SEAT);

    // The services created the topics with the suite's retention.
    assert_eq!(
        retention_of(&admin, &seat_topic).await.as_deref(),
        Some(topics::EVENT_RETENTION_MS.to_string().as_str())
    );
    let dead_letters = format!("{}{}", stack.topic_prefix, topics::dead_letter("seat-view"));
    assert_eq!(
        retention_of(&admin, &dead_letters).await.as_deref(),
        Some(topics::DEAD_LETTER_RETENTION_MS.to_string().as_str())
    );

    let seats: Vec<String> = {
        let (status, body) = stack.get(&stack.admin, "/api/seats").await;
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .expect("seats")
            .iter()
            .map(|s| s["id"].as_str().expect("a seat id").to_owned())
            .collect()
    };
    assert!(seats.len() >= 40, "the default cafe: {seats:?}");
    let window = Window::ahead(3, 2);
    stack
        .eventually("every seat on the board", || async {
            let board = stack.board(window.during()).await;
            seats.iter().all(|s| board.contains_key(s)).then_some(())
        })
        .await;

    // Kafka deletes everything written so far: the original catalogue announcement with it.
    let before = watermarks(&stack.brokers, &seat_topic);
    assert!(
        before.values().any(|&(low, high)| high > low),
        "the catalogue is on the topic: {before:?}"
    );
    set_retention(&admin, &seat_topic, "1000").await;
    let deleted = stack
        .eventually("the seat topic's old segments deleted", || async {
            let now = watermarks(&stack.brokers, &seat_topic);
            before
                .iter()
                .all(|(p, &(_, high))| now[p].0 >= high)
                .then_some(now)
        })
        .await;
    set_retention(&admin, &seat_topic, &topics::EVENT_RETENTION_MS.to_string()).await;
    println!("seat topic watermarks before {before:?}, after the deletion {deleted:?}");

    // A reservation made now is kept by the topic's (restored) retention.
    let customer = stack.customer("reta").await;
    let reservation = stack
        .reserve_ok(&customer, "A-05", &window, "tok_approve")
        .await;
    let status = stack.status(&reservation).await;
    let shown = stack
        .eventually("the reservation on the board", || async {
            let status = stack.board(window.during()).await.get("A-05").cloned()?;
            (status != "FREE").then_some(status)
        })
        .await;
    println!("reservation {reservation}: {status}, on the board as {shown}");

    // seat-view forgets everything and replays the topics from what Kafka still keeps.
    assert!(
        stack.seat_view.restart_with("SEAT_VIEW_REBUILD", "true"),
        "seat-view stops gracefully"
    );
    let rebuilt = stack
        .eventually(
            "the rebuilt board shows every seat and the reservation",
            || async {
                let board = stack.board(window.during()).await;
                let whole = seats.iter().all(|s| board.contains_key(s));
                (whole && board.get("A-05") == Some(&shown)).then_some(board)
            },
        )
        .await;
    assert_eq!(rebuilt.len(), seats.len(), "{rebuilt:?}");
    let gone = watermarks(&stack.brokers, &seat_topic);
    assert!(
        gone.iter().all(|(p, &(low, _))| low >= before[p].1),
        "the original announcement stayed deleted: {gone:?}"
    );
}
