//! Several seat replicas on ONE PostgreSQL database (`TEST_POSTGRES_URL`): the database, not
//! the process, keeps a seat from being sold twice, and the replicas' timers never both act on
//! one reservation.

mod support;

use std::time::Duration;

use serde_json::Value;
use shared_events::topics;
use studycafe_testkit::kafka;
use support::{Db, TestApp, in_hours, reservation_body, spawn_app, spawn_app_with};

const WAIT: Duration = Duration::from_secs(60);

/// Live reservations of `seat`, counted in the database itself.
async fn live_rows(app: &TestApp, seat: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let count = sqlx::query_scalar(
        "SELECT count(*) FROM reservations WHERE seat_id = $1
         AND status IN ('REQUESTED', 'CONFIRMED', 'PAID', 'REGISTERED')",
    )
    .bind(seat)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_requests_split_across_two_replicas_yield_one_reservation() {
    let mut app = spawn_app(Db::Postgres).await;
    let mut other = app.replica().await;
    assert_ne!(app.base, other.base, "each replica has its own HTTP port");
    let body = reservation_body("FB-02", &in_hours(5), 3);
    let requests = (0..50).map(|i| {
        let token = app.keys.customer(&format!("customer-{i}"));
        let http = app.http.clone();
        // 25 requests to each replica, interleaved so both race from the first moment.
        let base = if i % 2 == 0 { &app.base } else { &other.base };
        let url = format!("{base}/api/reservations");
        let body = body.clone();
        async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap();
            (i % 2, status, json)
        }
    });
    let results = futures::future::join_all(requests).await;
    let accepted: Vec<_> = results.iter().filter(|(_, s, _)| *s == 202).collect();
    let conflicts: Vec<_> = results.iter().filter(|(_, s, _)| *s == 409).collect();
    assert_eq!(accepted.len(), 1, "{results:?}");
    assert_eq!(conflicts.len(), 49, "{results:?}");
    assert!(
        conflicts
            .iter()
            .all(|(_, _, b)| b["type"] == "/problems/seat-taken")
    );
    for replica in [0, 1] {
        assert!(
            results.iter().any(|(r, s, _)| *r == replica && *s == 409),
            "replica {replica} took part in the race"
        );
    }
    assert_eq!(live_rows(&app, "FB-02").await, 1);
    // The database itself refuses an overlap, whoever writes it (here: no service at all).
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let sneaked = sqlx::query(
        "INSERT INTO reservations (reservation_id, seat_id, customer_id, starts_at, ends_at,
           hours, price, status, hold_expires_at, payment_token, created_at, updated_at, version)
         SELECT gen_random_uuid(), seat_id, 'mallory', starts_at + interval '1 hour',
           ends_at + interval '1 hour', hours, price, 'REQUESTED', hold_expires_at,
           payment_token, created_at, updated_at, 0
         FROM reservations WHERE seat_id = 'FB-02'",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    let code = sneaked.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("23P01"), "{sneaked}");
    pool.close().await;

    // Either replica answers for the winner's reservation.
    let id = accepted[0].2["reservationId"].as_str().unwrap();
    let admin = app.keys.admin("admin");
    let seen = app
        .http
        .get(format!("{}/api/reservations/{id}", other.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 200);
    other.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_expire_each_hold_once() {
    let mut app = spawn_app_with(Db::Postgres, &[("SEAT_HOLD_SECS", "5")]).await;
    let mut other = app.replica().await;
    let seats = ["A-06", "A-07", "A-08", "A-09", "A-10", "A-11"];
    let mut ids = Vec::new();
    for (i, seat) in seats.iter().enumerate() {
        let token = app.keys.customer(&format!("customer-{i}"));
        ids.push(
            app.reserve_id(&token, &reservation_body(seat, &in_hours(2), 1))
                .await,
        );
    }
    for id in &ids {
        app.wait_for_status(id, "EXPIRED").await;
    }
    // 40 SeatDefined (announced once, though both replicas synced the catalogue), then per
    // reservation exactly one SeatReserved and one ReservationExpired.
    let expected = 40 + 2 * ids.len();
    kafka::read_topic(&app.broker.brokers(), topics::SEAT, expected, WAIT).await;
    // Give a duplicate time to show up, then read everything the topic holds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records = kafka::read_all(&app.broker.brokers(), topics::SEAT, WAIT).await;
    let events: Vec<Value> = records.iter().map(|r| r.json()).collect();
    assert_eq!(
        events.iter().filter(|e| e["type"] == "SeatDefined").count(),
        40
    );
    for id in &ids {
        let expired = events
            .iter()
            .filter(|e| e["type"] == "ReservationExpired" && e["correlationId"] == id.as_str())
            .count();
        assert_eq!(expired, 1, "reservation {id}");
    }
    assert_eq!(events.len(), expected, "no other event");
    other.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sweeps_of_two_replicas_take_disjoint_reservations() {
    use seat_service::{
        domain::ports::{Due, ReservationStore as _},
        outbound::postgres::PgStore,
    };
    use studycafe_messaging::OutboxSignal;

    let mut app = spawn_app(Db::Postgres).await;
    let mut ids = Vec::new();
    for (i, seat) in ["B-01", "B-02", "B-03", "B-04", "B-05", "B-06"]
        .iter()
        .enumerate()
    {
        let token = app.keys.customer(&format!("customer-{i}"));
        ids.push(
            app.reserve_id(&token, &reservation_body(seat, &in_hours(3), 1))
                .await,
        );
    }
    // Two more replicas' stores, sweeping at once as if their holds had run out (the app's
    // own timers see them unexpired: its clock is the real one).
    let one = PgStore::open(&app.database_url, 2, OutboxSignal::new())
        .await
        .unwrap();
    let two = PgStore::open(&app.database_url, 2, OutboxSignal::new())
        .await
        .unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let (a, b) = tokio::join!(
        one.due(Due::HoldExpiry, later, 100),
        two.due(Due::HoldExpiry, later, 100)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut swept: Vec<String> = a.iter().chain(&b).map(|r| r.id().to_string()).collect();
    swept.sort();
    ids.sort();
    assert_eq!(swept, ids, "each reservation swept by exactly one replica");
    // Claimed rows stay with their sweeper for a while: a third sweep finds nothing.
    assert!(
        one.due(Due::HoldExpiry, later, 100)
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_and_announce_the_catalogue_once() {
    use seat_service::outbound::{catalogue, postgres::PgStore};
    use studycafe_messaging::{OutboxSignal, OutboxStore as _};

    let (url, _) = support::fresh_database(Db::Postgres).await;
    let open = || PgStore::open(&url, 2, OutboxSignal::new());
    let (one, two, three) = tokio::join!(open(), open(), open());
    let stores = [one.unwrap(), two.unwrap(), three.unwrap()];
    let seats = catalogue::parse(catalogue::DEFAULT).unwrap();
    let (a, b, c) = tokio::join!(
        stores[0].sync_catalogue(&seats),
        stores[1].sync_catalogue(&seats),
        stores[2].sync_catalogue(&seats)
    );
    let changed = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert_eq!(changed.iter().sum::<usize>(), 40, "{changed:?}");
    assert_eq!(stores[0].outbox().backlog().await.unwrap(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_reannouncing_together_announce_each_seat_once() {
    use seat_service::{
        domain::ports::ReservationStore as _,
        outbound::{catalogue, postgres::PgStore},
    };
    use studycafe_messaging::{OutboxSignal, OutboxStore as _};

    let (url, _) = support::fresh_database(Db::Postgres).await;
    let open = || PgStore::open(&url, 2, OutboxSignal::new());
    let (one, two) = tokio::join!(open(), open());
    let stores = [one.unwrap(), two.unwrap()];
    let seats = catalogue::parse(catalogue::DEFAULT).unwrap();
    assert_eq!(stores[0].sync_catalogue(&seats).await.unwrap(), seats.len());

    let later = chrono::Utc::now() + chrono::Duration::days(2);
    let due_before = later - chrono::Duration::days(1);
    let (a, b) = tokio::join!(
        stores[0].reannounce_seats(due_before, later, 100),
        stores[1].reannounce_seats(due_before, later, 100)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, seats.len(), "{a} + {b}");
    assert_eq!(
        stores[1].outbox().backlog().await.unwrap(),
        2 * seats.len() as i64
    );
}
