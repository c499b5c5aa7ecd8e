//! The reservation saga end to end: every service its own process on the embedded broker,
//! driven through the gateway with tokens from identity.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::Value;
use shared_events::topics;
use studycafe_e2e::stack::{Stack, StackOptions, User, Window, count_distinct, types_for};

fn bookings_with(body: &Value, id: &str) -> Option<Value> {
    body["bookings"]
        .as_array()?
        .iter()
        .find(|b| b["reservationId"] == id)
        .cloned()
}

async fn my_reservation(stack: &Stack, user: &User, id: &str) -> Option<Value> {
    let (status, body) = stack.get(user, "/api/my/reservations").await;
    if status != 200 {
        return None;
    }
    body["reservations"]
        .as_array()?
        .iter()
        .find(|r| r["reservationId"] == id)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_with_a_manual_confirm() {
    let stack = Stack::start(StackOptions::default()).await;
    let alice = stack.customer("alice").await;
    let window = Window::ahead(2, 2);
    let id = stack
        .reserve_ok(&alice, "A-01", &window, "tok_approve")
        .await;
    assert_eq!(stack.status(&id).await, "REQUESTED");

    // The admin sees it pending, confirms it; nothing else moves it along.
    let pending = stack
        .eventually("the booking pending at registration", || async {
            let (status, body) = stack
                .get(&stack.admin, "/api/admin/bookings?status=pending")
                .await;
            (status == 200).then(|| bookings_with(&body, &id)).flatten()
        })
        .await;
    assert_eq!(pending["seatId"], "A-01");
    assert_eq!(
        stack.status(&id).await,
        "REQUESTED",
        "no confirmation without the admin"
    );
    let (status, body) = stack.confirm(&id).await;
    assert_eq!(status, 200, "{body}");
    stack.wait_for_status(&id, "REGISTERED").await;

    // The saga went REQUESTED → CONFIRMED → PAID → REGISTERED, in that order, on seat's topic.
    let records = stack
        .events_when(
            topics::SEAT,
            "seat's four events for the reservation",
            |r| types_for(r, &id).len() >= 4,
        )
        .await;
    assert_eq!(
        types_for(&records, &id),
        [
            "SeatReserved",
            "ReservationConfirmed",
            "ReservationPaid",
            "ReservationRegistered"
        ]
    );

    // The board: OCCUPIED during the window, FREE outside it.
    stack
        .wait_for_board("A-01", window.during(), "OCCUPIED")
        .await;
    assert_eq!(stack.board_status("A-01", window.after()).await, "FREE");
    assert_eq!(
        stack
            .board_status("A-01", window.starts_at - chrono::Duration::minutes(30))
            .await,
        "FREE"
    );
    // My reservations: listed, registered, with an entry pass.
    let mine = stack
        .eventually(
            "registered in my reservations with an entry pass",
            || async {
                let r = my_reservation(&stack, &alice, &id).await?;
                (r["status"] == "REGISTERED" && r["entryPassCode"].is_string()).then_some(r)
            },
        )
        .await;
    assert_eq!(mine["seatId"], "A-01");
    // Payment: one completed charge, visible to the owner.
    let (status, payments) = stack
        .get(&alice, &format!("/api/payments?reservationId={id}"))
        .await;
    assert_eq!(status, 200, "{payments}");
    assert_eq!(payments["payments"].as_array().unwrap().len(), 1);
    assert_eq!(payments["payments"][0]["status"], "COMPLETED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_after_payment_refunds_once_and_frees_the_seat() {
    let stack = Stack::start(StackOptions::default()).await;
    stack.auto_confirm(true).await;
    let bob = stack.customer("bob").await;
    let window = Window::ahead(3, 1);
    let id = stack.reserve_ok(&bob, "B-02", &window, "tok_approve").await;
    stack.wait_for_status(&id, "REGISTERED").await;
    stack
        .wait_for_board("B-02", window.during(), "OCCUPIED")
        .await;

    let (status, body) = stack
        .send(
            Method::DELETE,
            Some(&bob),
            &format!("/api/reservations/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    stack.wait_for_status(&id, "CANCELLED").await;

    let refunds = stack
        .eventually("the refund completed", || async {
            let (_, body) = stack
                .get(&bob, &format!("/api/payments?reservationId={id}"))
                .await;
            let refunds = body["payments"][0]["refunds"].as_array()?.clone();
            (refunds.iter().any(|r| r["status"] == "COMPLETED")).then_some(refunds)
        })
        .await;
    assert_eq!(refunds.len(), 1, "one refund: {refunds:?}");
    let booking = stack
        .eventually("the registration cancelled", || async {
            let (_, body) = stack
                .get(&stack.admin, &format!("/api/admin/bookings/{id}"))
                .await;
            (body["status"] == "CANCELLED").then_some(body)
        })
        .await;
    assert!(booking["registrationId"].is_string(), "{booking}");
    stack.wait_for_board("B-02", window.during(), "FREE").await;

    // Exactly one refund and one registration cancellation went out, whatever was redelivered.
    let payments = stack
        .events_when(topics::PAYMENT, "the refund published", |r| {
            count_distinct(r, &id, "PaymentRefunded") > 0
        })
        .await;
    assert_eq!(count_distinct(&payments, &id, "PaymentCompleted"), 1);
    assert_eq!(count_distinct(&payments, &id, "PaymentRefunded"), 1);
    let registrations = stack
        .events_when(topics::REGISTRATION, "the cancellation published", |r| {
            count_distinct(r, &id, "RegistrationCancelled") > 0
        })
        .await;
    assert_eq!(
        count_distinct(&registrations, &id, "RegistrationCancelled"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_down_reservations_wait_then_are_charged_exactly_once() {
    let mut stack = Stack::start(StackOptions::default()).await;
    stack.auto_confirm(true).await;
    let carol = stack.customer("carol").await;
    stack.payment.kill();

    let seats: Vec<String> = (1..=8).map(|n| format!("B-{n:02}")).collect();
    let window = Window::ahead(5, 1);
    let mut ids = Vec::new();
    for seat in &seats {
        let (status, body) = stack.reserve(&carol, seat, &window, "tok_approve").await;
        assert_eq!(status, 202, "accepted while payment is down: {body}");
        ids.push(body["reservationId"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        stack.wait_for_status(id, "CONFIRMED").await;
    }
    // The breaker opens and is seen in seat's metrics; meanwhile nothing is paid.
    let open = r#"circuit_breaker_state{breaker="payment",state="open"}"#;
    stack
        .eventually("the breaker open in seat's metrics", || async {
            (stack.metric(&stack.seat_url, open).await == Some(1.0)).then_some(())
        })
        .await;
    for id in &ids {
        assert_eq!(stack.status(id).await, "CONFIRMED", "payment pending");
    }
    // Reservations keep being accepted with the breaker open.
    let extra = stack
        .reserve_ok(&carol, "B-09", &window, "tok_approve")
        .await;
    ids.push(extra);

    stack.payment.restart();
    let payment_url = stack.payment_url.clone();
    stack.wait_ready("payment", &payment_url).await;
    for id in &ids {
        stack.wait_for_status(id, "REGISTERED").await;
    }
    let closed = r#"circuit_breaker_state{breaker="payment",state="closed"}"#;
    assert_eq!(stack.metric(&stack.seat_url, closed).await, Some(1.0));

    // Each charged exactly once: one payment per reservation, one PaymentCompleted each.
    let records = stack
        .events_when(topics::PAYMENT, "every payment published", |r| {
            ids.iter()
                .all(|id| count_distinct(r, id, "PaymentCompleted") > 0)
        })
        .await;
    for id in &ids {
        let (status, body) = stack
            .get(&carol, &format!("/api/payments?reservationId={id}"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["payments"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(count_distinct(&records, id, "PaymentCompleted"), 1, "{id}");
    }
    let charges = stack
        .metric(&payment_url, "payment_simulator_charges_total")
        .await
        .unwrap_or(0.0);
    assert_eq!(
        charges as usize,
        ids.len(),
        "charges by the restarted payment process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seat_view_killed_while_reservations_flow_converges_after_restart() {
    let mut stack = Stack::start(StackOptions::default()).await;
    stack.auto_confirm(true).await;
    let dave = stack.customer("dave").await;
    let window = Window::ahead(6, 1);
    let seats: Vec<String> = (1..=12).map(|n| format!("A-{n:02}")).collect();

    let mut ids = Vec::new();
    for (i, seat) in seats.iter().enumerate() {
        if i == 4 {
            stack.seat_view.kill();
        }
        ids.push(stack.reserve_ok(&dave, seat, &window, "tok_approve").await);
    }
    for id in &ids {
        stack.wait_for_status(id, "REGISTERED").await;
    }
    // A cancellation while it is down too.
    let (status, _) = stack
        .send(
            Method::DELETE,
            Some(&dave),
            &format!("/api/reservations/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(status, 202);
    stack.wait_for_status(&ids[0], "CANCELLED").await;

    stack.seat_view.restart();
    let url = stack.seat_view_url.clone();
    stack.wait_ready("seat-view", &url).await;
    stack
        .eventually(
            "every reservation in its true state in my reservations",
            || async {
                for id in &ids {
                    let truth = stack.status(id).await;
                    let seen = my_reservation(&stack, &dave, id).await?;
                    if seen["status"] != truth.as_str() {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
    stack.wait_for_board("A-01", window.during(), "FREE").await;
    for seat in &seats[1..] {
        stack
            .wait_for_board(seat, window.during(), "OCCUPIED")
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registration_replicas_process_every_booking_exactly_once() {
    let stack = Stack::start(StackOptions {
        registration_replicas: 2,
        ..StackOptions::default()
    })
    .await;
    stack.auto_confirm(true).await;
    // On Apache Kafka the whole run can finish before a late joiner's rebalance.
    stack.wait_for_partitions(&stack.registrations).await;
    let erin = stack.customer("erin").await;
    let mut ids = Vec::new();
    for hour in 0..4 {
        let window = Window::ahead(8 + hour, 1);
        for n in 1..=6 {
            ids.push(
                stack
                    .reserve_ok(&erin, &format!("FB-{n:02}"), &window, "tok_approve")
                    .await,
            );
        }
    }
    for id in &ids {
        stack.wait_for_status(id, "REGISTERED").await;
    }
    let records = stack
        .events_when(topics::REGISTRATION, "every registration published", |r| {
            ids.iter()
                .all(|id| count_distinct(r, id, "SeatRegistered") > 0)
        })
        .await;
    for id in &ids {
        assert_eq!(count_distinct(&records, id, "BookingConfirmed"), 1, "{id}");
        assert_eq!(count_distinct(&records, id, "SeatRegistered"), 1, "{id}");
    }
    let (_, body) = stack
        .get(
            &stack.admin,
            "/api/admin/bookings?status=registered&limit=500",
        )
        .await;
    let registered: HashSet<&str> = body["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["reservationId"].as_str())
        .collect();
    assert!(ids.iter().all(|id| registered.contains(id.as_str())));
    // Both replicas took part: each logged work of its own.
    for replica in &stack.registrations {
        assert!(
            replica.log_tail(10_000).contains("booking"),
            "{}",
            replica.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_frees_the_seat_and_an_unpaid_hold_expires() {
    // Long enough for the admin to confirm, even while the consumers are still joining their
    // groups on a fresh broker (seconds, the first time).
    let stack = Stack::start(StackOptions {
        hold_secs: 20,
        ..StackOptions::default()
    })
    .await;
    let frank = stack.customer("frank").await;
    let window = Window::ahead(10, 1);

    let declined = stack
        .reserve_ok(&frank, "G-01", &window, "tok_decline")
        .await;
    stack
        .eventually("the booking pending", || async {
            let (_, body) = stack
                .get(&stack.admin, &format!("/api/admin/bookings/{declined}"))
                .await;
            (body["status"] == "PENDING").then_some(())
        })
        .await;
    let (status, body) = stack.confirm(&declined).await;
    assert_eq!(status, 200, "{body}");
    stack.wait_for_status(&declined, "PAYMENT_FAILED").await;
    stack.wait_for_board("G-01", window.during(), "FREE").await;
    // Free again: someone else can have it.
    let again = stack
        .reserve_ok(&frank, "G-01", &window, "tok_approve")
        .await;

    // Never confirmed: the hold runs out.
    stack.wait_for_status(&again, "EXPIRED").await;
    stack.wait_for_board("G-01", window.during(), "FREE").await;
    let booking = stack
        .eventually("the pending booking closed", || async {
            let (_, body) = stack
                .get(&stack.admin, &format!("/api/admin/bookings/{again}"))
                .await;
            (body["status"] == "CANCELLED").then_some(body)
        })
        .await;
    assert!(booking["registrationId"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_see_and_touch_only_what_is_theirs() {
    let stack = Stack::start(StackOptions::default()).await;
    let a = stack.customer("grace").await;
    let b = stack.customer("heidi").await;
    let window = Window::ahead(12, 1);
    let id = stack.reserve_ok(&b, "B-10", &window, "tok_approve").await;
    let path = format!("/api/reservations/{id}");

    let (status, body) = stack.get(&a, &path).await;
    assert_eq!(status, 403, "A reads B's reservation: {body}");
    assert_eq!(body["status"], 403);
    let (status, _) = stack.send(Method::DELETE, Some(&a), &path, None).await;
    assert_eq!(status, 403, "A cancels B's reservation");
    assert_eq!(stack.status(&id).await, "REQUESTED", "nothing changed");
    let (status, _) = stack
        .get(&a, &format!("/api/payments?reservationId={id}"))
        .await;
    assert!(
        status == 403 || status == 404,
        "A reads B's payments: {status}"
    );

    for admin_path in ["/api/admin/bookings", "/api/admin/policy"] {
        let (status, _) = stack.get(&a, admin_path).await;
        assert_eq!(status, 403, "customer on {admin_path}");
    }
    let (status, _) = stack.confirm_as(&a, &id).await;
    assert_eq!(status, 403);

    let (status, _) = stack.send(Method::GET, None, &path, None).await;
    assert_eq!(status, 401, "no token");
    let garbage = User {
        token: "not-a-jwt".into(),
        ..a.clone()
    };
    let (status, _) = stack.get(&garbage, &path).await;
    assert_eq!(status, 401, "bad token");
    let forged = User {
        token: studycafe_testkit::TestKeys::new().admin(&a.id),
        ..a.clone()
    };
    let (status, _) = stack.get(&forged, &path).await;
    assert_eq!(status, 401, "token signed with another key");
    let (status, _) = stack.get(&forged, "/api/admin/bookings").await;
    assert_eq!(status, 401, "forged admin token");
    // B sees it; the admin sees it.
    assert_eq!(stack.get(&b, &path).await.0, 200);
    assert_eq!(stack.get(&stack.admin, &path).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auto_confirm_a_reservation_is_registered_without_an_admin() {
    let stack = Stack::start(StackOptions::default()).await;
    stack.auto_confirm(true).await;
    let ivan = stack.customer("ivan").await;
    let window = Window::ahead(14, 3);
    let id = stack
        .reserve_ok(&ivan, "G-02", &window, "tok_approve")
        .await;
    // seat-view shows it REGISTERED, with its entry pass, and the seat OCCUPIED.
    let mine = stack
        .eventually("REGISTERED in the view", || async {
            let r = my_reservation(&stack, &ivan, &id).await?;
            (r["status"] == "REGISTERED").then_some(r)
        })
        .await;
    assert!(mine["entryPassCode"].is_string(), "{mine}");
    assert_eq!(
        stack.board_status("G-02", window.during()).await,
        "OCCUPIED"
    );
    assert_eq!(stack.status(&id).await, "REGISTERED");
}
