//! The settlement worker's heartbeat through `/health/live`: a refund call to the provider
//! that hangs past the stall limit turns liveness false (503 problem+json naming the worker),
//! and true again once the provider answers.

mod support;

use shared_events::{CancelledBy, ReservationCancelled};
use studycafe_testkit::eventually;
use support::{Backend, WAIT, new_reservation, pay_body, reservation_ref, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_settlement_worker_stuck_in_a_refund_is_not_live_until_it_returns() {
    let mut app = spawn_app_with(Backend::Sqlite, &[("LIVENESS_STALL_SECS", "1")]).await;
    let live = |app: &support::TestApp| {
        let request = app.http.get(format!("{}/health/live", app.base));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, content_type, body)
        }
    };
    assert_eq!(live(&app).await.0, 200);

    // A charge made with tok_slow_<ms> is refunded as slowly: the refund hangs for 4 s, four
    // times the limit.
    let reservation = new_reservation();
    let paid = app
        .pay_ok(&pay_body(&reservation, "alice", 4000, "tok_slow_4000"))
        .await;
    assert_eq!(paid["status"], "COMPLETED");
    assert_eq!(live(&app).await.0, 200, "a slow request is no loop's stall");
    app.publish(
        &reservation,
        ReservationCancelled {
            reservation: reservation_ref(&reservation, "alice"),
            cancelled_by: CancelledBy::Customer,
            was_paid: true,
        },
    )
    .await;

    let (content_type, problem) = eventually(WAIT, "liveness failing on the stuck worker", || {
        let answer = live(&app);
        async move {
            let (status, content_type, body) = answer.await;
            (status == 503).then_some((content_type, body))
        }
    })
    .await;
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["status"], 503);
    assert_eq!(
        problem["stalled"],
        serde_json::json!(["settlement worker"]),
        "{problem}"
    );

    app.wait_for_refund(&reservation).await;
    eventually(WAIT, "live again after the refund", || {
        let answer = live(&app);
        async move { (answer.await.0 == 200).then_some(()) }
    })
    .await;
    app.stop().await;
}
