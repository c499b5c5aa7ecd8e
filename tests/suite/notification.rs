//! The notification service (Python, a new team's) in the whole suite behind the gateway: a
//! reservation's saga tells its customer each thing once, in order, also when the notification
//! service was down while the events were published; the live stream pushes through the
//! gateway. Runs on the embedded stack and, with `STUDYCAFE_E2E_STACK=production`, on the
//! production one.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use studycafe_e2e::stack::{Stack, StackOptions, User, Window};
use studycafe_testkit::sse::SseStream;

const WHOLE_SAGA_NEWEST_FIRST: [&str; 6] = [
    "payment.refunded",
    "reservation.cancelled",
    "reservation.registered",
    "payment.completed",
    "reservation.confirmed",
    "reservation.requested",
];

/// The caller's notifications through the gateway.
async fn notifications(stack: &Stack, user: &User) -> Value {
    let (status, body) = stack.get(user, "/api/notifications?lang=en").await;
    assert_eq!(status, 200, "{body}\n{}", stack.logs());
    body
}

fn kinds_of(body: &Value, reservation: &str) -> Vec<String> {
    body["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["reservationId"] == reservation)
        .map(|n| n["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits until `user` has `count` notifications about `reservation`, then returns them all.
async fn wait_for(stack: &Stack, user: &User, reservation: &str, count: usize) -> Value {
    stack
        .eventually(
            &format!("{count} notifications of {reservation}"),
            || async {
                let body = notifications(stack, user).await;
                (kinds_of(&body, reservation).len() >= count).then_some(body)
            },
        )
        .await
}

async fn cancel(stack: &Stack, user: &User, id: &str) {
    let (status, body) = stack
        .send(
            Method::DELETE,
            Some(user),
            &format!("/api/reservations/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    stack.wait_for_status(id, "CANCELLED").await;
}

async fn entry_pass(stack: &Stack, user: &User, id: &str) -> String {
    stack
        .eventually("the entry pass on my reservations", || async {
            let (_, body) = stack.get(user, "/api/my/reservations").await;
            body["reservations"]
                .as_array()?
                .iter()
                .find(|r| r["reservationId"] == id)?["entryPassCode"]
                .as_str()
                .map(str::to_owned)
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservations_saga_is_told_once_in_order_also_after_the_service_was_down() {
    let mut stack = Stack::start(StackOptions {
        notification: true,
        ..StackOptions::default()
    })
    .await;
    stack.auto_confirm(true).await;

    // The live stream, through the gateway (an EventSource sends this Accept header).
    let carol = stack.customer("carol").await;
    let response = stack
        .http
        .get(stack.api("/api/notifications/stream"))
        .bearer_auth(&carol.token)
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);
    let mut stream = SseStream::new(response);

    // 1. The whole saga while the service runs: reserved, confirmed, paid, registered, then
    //    cancelled and refunded.
    let alice = stack.customer("alice").await;
    let window = Window::ahead(2, 2);
    let first = stack
        .reserve_ok(&alice, "A-03", &window, "tok_approve")
        .await;
    stack.wait_for_status(&first, "REGISTERED").await;
    let code = entry_pass(&stack, &alice, &first).await;
    cancel(&stack, &alice, &first).await;
    let body = wait_for(&stack, &alice, &first, 6).await;
    assert_eq!(kinds_of(&body, &first), WHOLE_SAGA_NEWEST_FIRST, "{body}");
    let registered = &body["notifications"][2];
    assert_eq!(registered["details"]["entryPassCode"], code.as_str());
    assert!(
        registered["body"]
            .as_str()
            .unwrap()
            .contains(&format!("Entry pass code: {code}")),
        "{registered}"
    );
    assert!(
        registered["messages"]["ko"]["body"]
            .as_str()
            .unwrap()
            .contains(&format!("입장 코드: {code}")),
        "{registered}"
    );

    // Carol's stream saw nothing of Alice's; her own reservation reaches her live.
    let window = Window::ahead(5, 1);
    let carols = stack
        .reserve_ok(&carol, "A-04", &window, "tok_decline")
        .await;
    stack.wait_for_status(&carols, "PAYMENT_FAILED").await;
    let mut live = Vec::new();
    while live.len() < 3 {
        let event = stream
            .next_within(Duration::from_secs(60), "carol's notifications")
            .await;
        if event.event.as_deref() == Some("notification") {
            let n = event.json();
            assert_eq!(n["reservationId"], carols.as_str(), "{n}");
            live.push(n["kind"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        live,
        [
            "reservation.requested",
            "reservation.confirmed",
            "reservation.payment-failed"
        ]
    );

    // 2. The service is down while a second saga happens; back up, it catches up from its
    //    committed offsets: each thing told once, in order, nothing of the first saga again.
    let notification = stack.notification.as_mut().expect("notification runs");
    assert!(notification.stop(), "SIGTERM ends it cleanly");
    let window = Window::ahead(3, 1);
    let second = stack
        .reserve_ok(&alice, "A-05", &window, "tok_approve")
        .await;
    stack.wait_for_status(&second, "REGISTERED").await;
    cancel(&stack, &alice, &second).await;
    stack
        .eventually("the refund of the second reservation", || async {
            let (_, body) = stack
                .get(&alice, &format!("/api/payments?reservationId={second}"))
                .await;
            let refunds = body["payments"][0]["refunds"].as_array()?.clone();
            refunds
                .iter()
                .any(|r| r["status"] == "COMPLETED")
                .then_some(())
        })
        .await;
    let (status, _) = stack.get(&alice, "/api/notifications").await;
    assert_eq!(status, 503, "the gateway says the service is down");

    stack.notification.as_mut().expect("notification").restart();
    let base = stack.notification_url.clone();
    stack.wait_ready("notification", &base).await;
    let body = wait_for(&stack, &alice, &second, 6).await;
    assert_eq!(kinds_of(&body, &second), WHOLE_SAGA_NEWEST_FIRST, "{body}");
    assert_eq!(kinds_of(&body, &first), WHOLE_SAGA_NEWEST_FIRST, "{body}");
    let all = body["notifications"].as_array().unwrap();
    assert_eq!(all.len(), 12, "nothing else, nothing twice: {body}");
    let mut ids: Vec<&str> = all.iter().map(|n| n["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12);

    // The read marker moves through the gateway.
    let (status, marked) = stack
        .send(
            Method::PUT,
            Some(&alice),
            "/api/notifications/read-marker",
            Some(serde_json::json!({"seq": 12})),
        )
        .await;
    assert_eq!(status, 200, "{marked}");
    assert_eq!(marked["unread"], 0);
    let (status, problem) = stack
        .send(
            Method::PUT,
            Some(&alice),
            "/api/notifications/read-marker",
            Some(serde_json::json!({"seq": "all"})),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "/problems/invalid-field");

    // Without a token the gateway refuses before the service is asked.
    let anonymous = stack
        .http
        .get(stack.api("/api/notifications"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
