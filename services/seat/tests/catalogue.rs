//! The catalogue stays on the seat topic whatever the topic's retention: seats whose last
//! `SeatDefined` is old are announced again, each once, disabled seats too (a view rebuilt from
//! the topic must know a seat is gone as much as that it exists).

mod support;

use chrono::{Duration, Utc};
use seat_service::outbound::{StoreAdapter, catalogue, postgres::PgStore, sqlite::SqliteStore};
use studycafe_messaging::{OutboxSignal, OutboxStore as _};
use support::{Db, fresh_database};

async fn seats_announced_long_ago_are_announced_again_once_each(db: Db) {
    let (url, _dir) = fresh_database(db).await;
    match db {
        Db::Sqlite => {
            reannounces(SqliteStore::open(&url, OutboxSignal::new()).await.unwrap()).await
        }
        Db::Postgres => {
            reannounces(PgStore::open(&url, 4, OutboxSignal::new()).await.unwrap()).await
        }
    }
}

async fn reannounces<S: StoreAdapter>(store: S) {
    let seats = catalogue::parse(catalogue::DEFAULT).unwrap();
    assert_eq!(store.sync_catalogue(&seats).await.unwrap(), seats.len());
    // The last seat leaves the catalogue: disabled, and announced as such.
    let kept = &seats[..seats.len() - 1];
    assert_eq!(store.sync_catalogue(kept).await.unwrap(), 1);
    let backlog = || async { store.outbox().backlog().await.unwrap() };
    let announced = backlog().await;
    assert_eq!(announced, seats.len() as i64 + 1);

    let now = Utc::now();
    assert_eq!(
        store
            .reannounce_seats(now - Duration::hours(1), now, 100)
            .await
            .unwrap(),
        0,
        "every seat was just announced"
    );

    // A day later every seat is due, a sweep's limit at a time, the disabled one included.
    let later = now + Duration::days(1);
    let due_before = later - Duration::hours(1);
    assert_eq!(
        store.reannounce_seats(due_before, later, 15).await.unwrap(),
        15
    );
    assert_eq!(
        store
            .reannounce_seats(due_before, later, 100)
            .await
            .unwrap(),
        seats.len() - 15
    );
    assert_eq!(
        store
            .reannounce_seats(due_before, later, 100)
            .await
            .unwrap(),
        0,
        "announced at `later`: not due again until a day after it"
    );
    assert_eq!(backlog().await, announced + seats.len() as i64);
    // The catalogue itself is untouched: syncing the same seats changes nothing.
    assert_eq!(store.sync_catalogue(kept).await.unwrap(), 0);
}

on_both_backends!(seats_announced_long_ago_are_announced_again_once_each);
