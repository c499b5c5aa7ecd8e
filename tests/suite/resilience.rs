//! The suite survives what a laptop or a cluster does to it: processes killed with SIGKILL, a
//! broker that goes away, everything dying at once. Nothing accepted is lost, nothing is
//! reordered per reservation, and everything resumes by itself.

use std::collections::{HashMap, HashSet};

use shared_events::{BookingConfirmed, Envelope, EventMeta, topics};
use studycafe_e2e::{Suite, WAIT};
use studycafe_testkit::kafka;

/// The cafe's confirmation of a booking, as registration would publish it.
fn booking_confirmed(reservation_id: &str) -> Envelope<BookingConfirmed> {
    Envelope::wrap(
        EventMeta::new("registration", reservation_id, "test", chrono::Utc::now()),
        BookingConfirmed {
            reservation_id: reservation_id.to_owned(),
            confirmed_by: "admin".into(),
        },
    )
}

/// Per reservation: the event types in first-seen order, and how many records (duplicates
/// included) and distinct event ids were on the topic.
fn by_reservation(records: &[kafka::Record]) -> HashMap<String, (Vec<String>, usize, usize)> {
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut out: HashMap<String, (Vec<String>, usize, usize)> = HashMap::new();
    for record in records {
        let event = record.json();
        if event["type"] == "SeatDefined" {
            continue;
        }
        let key = event["correlationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            record.key.as_deref(),
            Some(key.as_str()),
            "key = correlation id"
        );
        let entry = out.entry(key).or_default();
        entry.1 += 1;
        if seen_ids.insert(event["id"].as_str().unwrap_or_default().to_owned()) {
            entry
                .0
                .push(event["type"].as_str().unwrap_or_default().to_owned());
            entry.2 += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_seat_service_killed_mid_stream_loses_and_reorders_nothing() {
    let mut suite = Suite::start().await;
    let seats = [
        "A-01", "A-02", "A-03", "A-04", "A-05", "B-01", "B-02", "B-03", "B-04", "B-05",
    ];
    // Accepted reservations, each followed by its cancellation: two events per reservation
    // whose order matters.
    let mut accepted = Vec::new();
    for (round, hours) in (2..5).enumerate() {
        let customer = format!("c{round}");
        let batch = futures::future::join_all(
            seats
                .iter()
                .map(|seat| suite.reserve(&customer, seat, hours)),
        )
        .await;
        for (status, id) in batch {
            assert_eq!(status, 202);
            accepted.push(id.expect("id"));
        }
    }
    for (i, id) in accepted.iter().enumerate() {
        if i % 2 == 0 {
            let customer = format!("c{}", i / seats.len());
            assert_eq!(suite.cancel(&customer, id).await, 202);
        }
    }
    // Crash right away: some events are still in the outbox, some in flight.
    suite.seat.kill();
    suite.seat.restart();
    suite.wait_seat_ready().await;

    let expected_events = accepted.len() + accepted.len().div_ceil(2) + 40;
    let records =
        kafka::read_topic(&suite.broker.brokers(), topics::SEAT, expected_events, WAIT).await;
    // Let any re-published duplicates land too.
    let records = if records.len() == expected_events {
        kafka::read_topic(
            &suite.broker.brokers(),
            topics::SEAT,
            usize::MAX,
            std::time::Duration::from_secs(5),
        )
        .await
    } else {
        records
    };
    let by_id = by_reservation(&records);
    for (i, id) in accepted.iter().enumerate() {
        let (types, _records, distinct) = by_id
            .get(id)
            .unwrap_or_else(|| panic!("no events for {id}"));
        if i % 2 == 0 {
            assert_eq!(
                types,
                &["SeatReserved", "ReservationCancelled"],
                "{id}: order kept"
            );
            assert_eq!(*distinct, 2);
        } else {
            assert_eq!(types, &["SeatReserved"], "{id}");
            assert_eq!(*distinct, 1);
        }
    }
    // Any re-publication carried the same event id, which the consumers deduplicate (see
    // `a_redelivered_event_is_applied_once`).
    let total: usize = by_id.values().map(|(_, r, _)| r).sum();
    let distinct: usize = by_id.values().map(|(_, _, d)| d).sum();
    eprintln!("{total} records, {distinct} distinct events after the crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redelivered_event_is_applied_once() {
    let suite = Suite::start().await;
    let (_, id) = suite.reserve("alice", "FB-02", 3).await;
    let id = id.expect("accepted");
    let confirmed = booking_confirmed(&id);
    // The same event three times, as a relay re-publishing after a crash would send it.
    for _ in 0..3 {
        suite.publish(&confirmed).await;
    }
    suite.wait_for_status(&id, "CONFIRMED").await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let records = kafka::read_topic(
        &suite.broker.brokers(),
        topics::SEAT,
        usize::MAX,
        std::time::Duration::from_secs(8),
    )
    .await;
    let confirmations = records
        .iter()
        .map(kafka::Record::json)
        .filter(|e| e["type"] == "ReservationConfirmed" && e["correlationId"] == id.as_str())
        .count();
    assert_eq!(confirmations, 1, "one effect for three deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reservations_are_accepted_while_the_broker_is_down_and_published_when_it_returns() {
    let mut suite = Suite::start().await;
    suite.broker.kill();
    let mut accepted = Vec::new();
    for (i, seat) in [
        "G-01", "G-02", "G-03", "G-04", "B-10", "B-11", "B-12", "A-10", "A-11", "A-12",
    ]
    .iter()
    .enumerate()
    {
        let (status, id) = suite.reserve(&format!("customer-{i}"), seat, 2).await;
        assert_eq!(status, 202, "accepted with the broker down");
        accepted.push(id.expect("id"));
    }
    // Readiness does not depend on the broker: the service keeps taking traffic.
    let ready = suite
        .http
        .get(format!("{}/health/ready", suite.seat_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // A polite stop does not hang on the missing broker, and the unpublished events wait in
    // the outbox across the restart.
    assert!(
        suite.seat.stop(),
        "seat exits 0 on SIGTERM without a broker:\n{}",
        suite.seat.log_tail(20)
    );
    suite.seat.restart();
    suite.wait_seat_ready().await;

    suite.broker.restart().await;
    let records = kafka::read_topic(
        &suite.broker.brokers(),
        topics::SEAT,
        40 + accepted.len(),
        WAIT,
    )
    .await;
    let by_id = by_reservation(&records);
    for id in &accepted {
        assert!(
            by_id.contains_key(id),
            "{id} published after the broker returned"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_suite_killed_at_once_resumes_by_itself() {
    let mut suite = Suite::start().await;
    let (_, before) = suite.reserve("alice", "A-07", 2).await;
    let before = before.expect("accepted");
    // Wait until the consumer group is established, so the crash catches it as a member.
    suite.publish(&booking_confirmed(&before)).await;
    suite.wait_for_status(&before, "CONFIRMED").await;

    // Power cut: broker and service die together, nobody leaves the group cleanly.
    suite.seat.kill();
    suite.broker.kill();
    suite.broker.restart().await;
    suite.seat.restart();
    suite.wait_seat_ready().await;

    // Everything from before is still there.
    assert_eq!(suite.status_of(&before).await, "CONFIRMED");
    // New reservations are accepted, and the consumer is back in its group: news about them
    // is applied without any manual step.
    let (status, after) = suite.reserve("bob", "A-08", 2).await;
    assert_eq!(status, 202);
    let after = after.expect("accepted");
    suite.publish(&booking_confirmed(&after)).await;
    suite.wait_for_status(&after, "CONFIRMED").await;
    let records = kafka::read_topic(&suite.broker.brokers(), topics::SEAT, 44, WAIT).await;
    let by_id = by_reservation(&records);
    assert_eq!(by_id[&before].0, ["SeatReserved", "ReservationConfirmed"]);
    assert_eq!(by_id[&after].0, ["SeatReserved", "ReservationConfirmed"]);

    // And a polite stop is a clean exit for both.
    assert!(
        suite.seat.stop(),
        "seat exits 0 on SIGTERM:\n{}",
        suite.seat.log_tail(20)
    );
    assert!(
        suite.broker.stop(),
        "broker exits 0 on SIGTERM:\n{}",
        suite.broker.log_tail(20)
    );
}
