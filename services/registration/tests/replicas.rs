//! Two replicas on one database (a SQLite file, or a PostgreSQL database) in one consumer
//! group: every booking is processed exactly once.

#[macro_use]
mod support;

use std::{collections::HashSet, time::Duration};

use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use serde_json::Value;
use shared_events::{Envelope, EventMeta, topics};
use support::{Backend, TestEnv, new_reservation_id, of_type, seat_reserved};

const BOOKINGS: usize = 100;

async fn two_replicas_confirm_each_of_100_bookings_exactly_once(backend: Backend) {
    let env = TestEnv::start_on(backend).await;
    // Started together: the second must cope with the first creating the schema.
    let auto = [("REGISTRATION_AUTO_CONFIRM", "true")];
    let (mut one, mut two) = tokio::join!(env.spawn(&auto), env.spawn(&auto));
    let admin = env.admin();

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", env.brokers())
        .set("message.timeout.ms", "20000")
        .set("log_level", "0")
        .create()
        .unwrap();
    let ids: Vec<String> = (0..BOOKINGS).map(|_| new_reservation_id()).collect();
    let sends = ids.iter().enumerate().map(|(n, id)| {
        let envelope = Envelope::wrap(
            EventMeta::new("test", id.as_str(), "test", chrono::Utc::now()),
            seat_reserved(id, &format!("R-{n}")),
        );
        let producer = &producer;
        async move {
            let payload = envelope.to_json();
            producer
                .send(
                    FutureRecord::to(topics::SEAT)
                        .key(id.as_str())
                        .payload(&payload),
                    Duration::from_secs(20),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("produce");
        }
    });
    futures::future::join_all(sends).await;

    // Both replicas see the same data.
    for app in [&one, &two] {
        studycafe_testkit::eventually(support::WAIT, "100 confirmed bookings", || async {
            let body: Value = app
                .get(&admin, "/api/admin/bookings?status=confirmed&limit=500")
                .await
                .json()
                .await
                .ok()?;
            (body["bookings"].as_array()?.len() == BOOKINGS).then_some(())
        })
        .await;
    }

    let confirmations =
        studycafe_testkit::eventually(support::WAIT, "100 BookingConfirmed", || async {
            let events = env.published().await;
            let confirmed: Vec<Value> = of_type(&events, "BookingConfirmed")
                .into_iter()
                .cloned()
                .collect();
            (confirmed.len() >= BOOKINGS).then_some(confirmed)
        })
        .await;
    assert_eq!(
        confirmations.len(),
        BOOKINGS,
        "one event per booking, no more"
    );
    let confirmed_ids: HashSet<&str> = confirmations
        .iter()
        .map(|e| e["data"]["reservationId"].as_str().unwrap())
        .collect();
    let expected: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(confirmed_ids, expected);
    for event in &confirmations {
        assert_eq!(event["data"]["confirmedBy"], "auto-confirm");
        assert_eq!(event["correlationId"], event["data"]["reservationId"]);
    }

    // Given a moment, no late duplicate shows up either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        of_type(&env.published().await, "BookingConfirmed").len(),
        BOOKINGS
    );
    let all: Value = one
        .get(&admin, "/api/admin/bookings?limit=500")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["bookings"].as_array().unwrap().len(), BOOKINGS);

    tokio::join!(one.stop(), two.stop());
}

on_every_backend!(two_replicas_confirm_each_of_100_bookings_exactly_once);
