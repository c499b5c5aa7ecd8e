//! Replicas sharing the production engines: two seat processes on one PostgreSQL database and
//! two seat-view processes on one Redis, every one its own process with its own port.
//!
//! Production stack only: on the embedded stack each process keeps its live board in its own
//! memory and SQLite has no cross-process exclusion constraint to test. `scripts/test` runs
//! these in its production pass (`STUDYCAFE_E2E_STACK=production ... -- --include-ignored`).

use std::collections::HashMap;

use futures::future::join_all;
use reqwest::StatusCode;
use studycafe_e2e::{
    WAIT,
    stack::{Stack, StackOptions, Window},
};
use studycafe_testkit::{
    engines,
    sse::{SseEvent, SseStream},
};

fn replicated() -> StackOptions {
    assert!(
        engines::production_stack_requested(),
        "replicas share PostgreSQL and Redis: run with STUDYCAFE_E2E_STACK=production (scripts/test does)"
    );
    StackOptions {
        seat_replicas: 2,
        seat_view_replicas: 2,
        ..StackOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "production stack only: STUDYCAFE_E2E_STACK=production, --include-ignored"]
async fn fifty_customers_racing_for_one_seat_across_two_seat_replicas_one_wins() {
    let stack = Stack::start(replicated()).await;
    // Ten customers, five attempts each: fifty distinct reservation requests for one seat and
    // window, alternating between the replicas, all in flight at once.
    let stack = &stack;
    let names: Vec<String> = (0..10).map(|i| format!("racer{i}")).collect();
    let customers = join_all(names.iter().map(|name| stack.customer(name))).await;
    let customers = &customers;
    let window = &Window::ahead(5, 2);
    let attempts = (0..50).map(|i| {
        let base = &stack.seat_urls[i % 2];
        let customer = &customers[i % customers.len()];
        async move {
            let (status, body) = stack
                .reserve_via(base, customer, "B-07", window, "tok_approve")
                .await;
            (i % 2, status, body)
        }
    });
    let answers = join_all(attempts).await;

    let mut by_status: HashMap<StatusCode, usize> = HashMap::new();
    for (_, status, body) in &answers {
        *by_status.entry(*status).or_default() += 1;
        if *status == StatusCode::CONFLICT {
            assert_eq!(body["status"], 409, "a problem+json answer: {body}");
        }
    }
    assert_eq!(
        by_status.get(&StatusCode::ACCEPTED),
        Some(&1),
        "exactly one winner: {by_status:?}"
    );
    assert_eq!(
        by_status.get(&StatusCode::CONFLICT),
        Some(&49),
        "every other racer told the seat is taken: {by_status:?}"
    );
    // Both replicas took part in the race (the rule is the database's, not one process's).
    for replica in 0..2 {
        assert!(
            answers.iter().any(|(r, status, _)| *r == replica
                && [StatusCode::ACCEPTED, StatusCode::CONFLICT].contains(status)),
            "replica {replica} answered"
        );
    }
    let winner = answers
        .iter()
        .find(|(_, status, _)| *status == StatusCode::ACCEPTED)
        .and_then(|(_, _, body)| body["reservationId"].as_str())
        .expect("the winner's reservation id")
        .to_owned();
    assert_eq!(stack.status(&winner).await, "REQUESTED");
    // One SeatReserved for the seat in the whole race.
    let reserved = stack
        .events_when(
            shared_events::topics::SEAT,
            "the winner's SeatReserved",
            |r| r.iter().any(|e| e.key.as_deref() == Some(winner.as_str())),
        )
        .await;
    let for_seat = reserved
        .iter()
        .map(|r| r.json())
        .filter(|e| e["type"] == "SeatReserved" && e["data"]["seatId"] == "B-07")
        .count();
    assert_eq!(for_seat, 1, "one reservation of B-07 published");
}

fn is_change(event: &SseEvent, reservation: &str, status: &str) -> bool {
    let data = event.json();
    event.event.as_deref() == Some("board-changed")
        && data["reservationId"] == reservation
        && data["reservationStatus"] == status
}

/// Reads `stream` until it announced every `(reservation, status)` change, in any order.
async fn sees_all(stream: &mut SseStream, changes: &[(&str, &str)]) {
    let mut missing: Vec<(&str, &str)> = changes.to_vec();
    let search = async {
        while !missing.is_empty() {
            let event = stream.next().await?;
            missing.retain(|(id, status)| !is_change(&event, id, status));
        }
        Some(())
    };
    let outcome = tokio::time::timeout(WAIT, search).await;
    assert!(
        matches!(outcome, Ok(Some(()))),
        "the live board did not announce {missing:?} within {WAIT:?} (the stream ended: {})",
        matches!(outcome, Ok(None))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "production stack only: STUDYCAFE_E2E_STACK=production, --include-ignored"]
async fn a_reservation_through_either_seat_replica_shows_on_both_seat_view_replicas() {
    let stack = Stack::start(replicated()).await;
    let alice = stack.customer("alice").await;
    let bob = stack.customer("bob").await;
    let [view_1, view_2] = [&stack.seat_view_urls[0], &stack.seat_view_urls[1]];
    let mut streams = [
        stack.board_stream(view_1).await,
        stack.board_stream(view_2).await,
    ];

    // One reservation through each seat replica; each seat-view replica consumes only its
    // share of the partitions, yet both boards and both streams show both reservations.
    let window = Window::ahead(6, 1);
    let (status, body) = stack
        .reserve_via(&stack.seat_urls[0], &alice, "B-10", &window, "tok_approve")
        .await;
    assert_eq!(status, 202, "{body}");
    let through_first = body["reservationId"].as_str().unwrap().to_owned();
    let (status, body) = stack
        .reserve_via(&stack.seat_urls[1], &bob, "B-11", &window, "tok_approve")
        .await;
    assert_eq!(status, 202, "{body}");
    let through_second = body["reservationId"].as_str().unwrap().to_owned();

    for stream in &mut streams {
        // Two reservations on two partitions, maybe applied by different replicas: either
        // may be announced first.
        sees_all(
            stream,
            &[
                (&through_first, "REQUESTED"),
                (&through_second, "REQUESTED"),
            ],
        )
        .await;
    }
    for base in [view_1, view_2] {
        for seat in ["B-10", "B-11"] {
            stack
                .wait_for_board_via(base, seat, window.during(), "HELD")
                .await;
        }
    }

    // And the saga's later steps too: confirmed by the admin, both replicas show it.
    stack
        .eventually(
            "the admin's confirmation (once the booking reached registration)",
            || async {
                let (status, _) = stack.confirm(&through_second).await;
                (status == 200).then_some(())
            },
        )
        .await;
    stack.wait_for_status(&through_second, "REGISTERED").await;
    for stream in &mut streams {
        sees_all(stream, &[(&through_second, "REGISTERED")]).await;
    }
    for base in [view_1, view_2] {
        stack
            .wait_for_board_via(base, "B-11", window.during(), "OCCUPIED")
            .await;
    }
}
