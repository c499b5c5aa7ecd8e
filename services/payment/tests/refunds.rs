//! Refunds: seat's closure events taken off the real broker, the refund worker, and the
//! exactly-once guarantees around them.

#[macro_use]
mod support;

use shared_events::{
    CancelledBy, Currency, Money, ReservationCancelled, ReservationExpired,
    ReservationPaymentFailed, SeatReserved,
};
use studycafe_testkit::{eventually, kafka};
use support::{
    Backend, WAIT, count, new_reservation, pay_body, reservation_ref, spawn_app_on, spawn_app_with,
};

fn cancelled(reservation: &str, customer: &str, was_paid: bool) -> ReservationCancelled {
    ReservationCancelled {
        reservation: reservation_ref(reservation, customer),
        cancelled_by: CancelledBy::Customer,
        was_paid,
    }
}

fn expired(reservation: &str, customer: &str) -> ReservationExpired {
    ReservationExpired {
        reservation: reservation_ref(reservation, customer),
        expired_in: "CONFIRMED".into(),
    }
}

async fn a_cancelled_paid_reservation_is_refunded_exactly_once(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let reservation = new_reservation();
    let paid = app
        .pay_ok(&pay_body(&reservation, "alice", 4000, "tok_approve"))
        .await;

    // Delivered twice (a producer retry), and then the reservation reported closed again
    // by another event: still one refund. `was_paid` says false (stale): payment goes by its
    // own records.
    let cancellation = app
        .publish(&reservation, cancelled(&reservation, "alice", false))
        .await;
    app.publish_again(&reservation, &cancellation).await;
    let later = app
        .publish(&reservation, expired(&reservation, "alice"))
        .await;
    app.wait_consumed(later.id).await;

    let refunds = app.wait_for_refund(&reservation).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["amount"]["amount"], 4000);
    assert_eq!(app.simulator.refunds_made(), 1);

    let events = app.payment_events(&reservation).await;
    assert_eq!(count(&events, "PaymentCompleted"), 1, "{events:?}");
    assert_eq!(count(&events, "PaymentRefunded"), 1, "{events:?}");
    let refunded = &events
        .iter()
        .find(|(t, _)| t == "PaymentRefunded")
        .unwrap()
        .1;
    assert_eq!(refunded["data"]["paymentId"], paid["paymentId"]);
    assert_eq!(refunded["data"]["refundId"], refunds[0]["refundId"]);
    assert_eq!(refunded["data"]["amount"]["amount"], 4000);
    assert_eq!(refunded["correlationId"], reservation.as_str());
    // Caused by the cancellation that made it owed.
    assert_eq!(refunded["causationId"], cancellation.id.to_string());

    // Paying again after the refund answers from the records: no new charge, no new refund.
    let again = app
        .pay_ok(&pay_body(&reservation, "alice", 4000, "tok_approve"))
        .await;
    assert_eq!(again["paymentId"], paid["paymentId"]);
    assert_eq!(app.simulator.charges_made(), 1);
    assert_eq!(
        app.payments_of(&reservation).await["payments"][0]["refunds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.stop().await;
}

async fn a_payment_completing_after_the_reservation_expired_is_refunded(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let reservation = new_reservation();
    let expiry = app
        .publish(&reservation, expired(&reservation, "alice"))
        .await;
    app.wait_consumed(expiry.id).await;

    // The charge was in flight when the hold ran out: it completes, and is given back.
    let answer = app
        .pay_ok(&pay_body(&reservation, "alice", 6000, "tok_approve"))
        .await;
    assert_eq!(answer["status"], "COMPLETED");
    let refunds = app.wait_for_refund(&reservation).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(app.simulator.refunds_made(), 1);
    let events = app.payment_events(&reservation).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["PaymentCompleted", "PaymentRefunded"], "in order");
    app.stop().await;
}

async fn unpaid_reservations_are_not_refunded_and_bad_events_are_dead_lettered(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let declined = new_reservation();
    let unpaid = new_reservation();
    let answer = app
        .pay_ok(&pay_body(&declined, "alice", 4000, "tok_decline"))
        .await;
    assert_eq!(answer["status"], "DECLINED");

    // Irrelevant news is acknowledged; news with an impossible id goes to the dead letters
    // and does not hold up the partition.
    app.publish(
        &unpaid,
        SeatReserved {
            reservation: reservation_ref(&unpaid, "bob"),
            hours: 2,
            price: Money {
                amount: 4000,
                currency: Currency::Krw,
            },
            hold_expires_at: chrono::Utc::now(),
        },
    )
    .await;
    let poison = app
        .publish("not-a-uuid", cancelled("not-a-uuid", "bob", true))
        .await;
    app.publish(
        &declined,
        ReservationPaymentFailed {
            reservation: reservation_ref(&declined, "alice"),
            reason: "card declined".into(),
        },
    )
    .await;
    let last_declined = app
        .publish(&declined, cancelled(&declined, "alice", false))
        .await;
    let last_unpaid = app.publish(&unpaid, cancelled(&unpaid, "bob", false)).await;
    app.wait_consumed(last_declined.id).await;
    app.wait_consumed(last_unpaid.id).await;

    let view = app.payments_of(&declined).await;
    assert_eq!(view["payments"][0]["status"], "DECLINED");
    assert_eq!(view["payments"][0]["refunds"], serde_json::json!([]));
    assert!(app.payments_of(&unpaid).await.is_null());

    let dead = kafka::read_topic(&app.broker.brokers(), "studycafe.dlq.payment.v1", 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].json()["id"], poison.id.to_string());

    // A payment for the cancelled, unpaid reservation arriving late is charged and given back.
    app.pay_ok(&pay_body(&unpaid, "bob", 2000, "tok_approve"))
        .await;
    app.wait_for_refund(&unpaid).await;
    assert_eq!(app.simulator.refunds_made(), 1);
    assert!(
        app.payment_events(&declined)
            .await
            .iter()
            .all(|(t, _)| t == "PaymentDeclined")
    );
    app.stop().await;
}

async fn a_refund_waits_out_a_provider_outage_and_a_restart(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let reservation = new_reservation();
    app.pay_ok(&pay_body(&reservation, "alice", 4000, "tok_approve"))
        .await;
    app.set_outage(true);
    let cancellation = app
        .publish(&reservation, cancelled(&reservation, "alice", true))
        .await;
    app.wait_consumed(cancellation.id).await;

    // Owed and tried, but the provider does not answer: PENDING.
    eventually(WAIT, "a postponed refund", || async {
        (app.refund_attempts(&reservation).await? >= 1).then_some(())
    })
    .await;
    let db_view = app.payments_of(&reservation).await["payments"][0]["refunds"][0].clone();
    assert_eq!(db_view["status"], "PENDING");
    assert_eq!(db_view["amount"]["amount"], 4000);
    assert_eq!(app.simulator.refunds_made(), 0);

    // The owed refund survives a restart of the service and is paid out afterwards.
    app.restart().await;
    app.set_outage(false);
    let refunds = app.wait_for_refund(&reservation).await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["refundId"], db_view["refundId"]);
    assert_eq!(app.simulator.refunds_made(), 1);
    let events = app.payment_events(&reservation).await;
    assert_eq!(count(&events, "PaymentRefunded"), 1, "{events:?}");
    app.stop().await;
}

/// Two replicas on one database, each with its own refund worker: only the refund claim in the
/// refund row keeps the second from asking the provider while the first one does.
async fn a_refund_due_on_two_replicas_is_asked_of_the_provider_once(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let replica = app.spawn_replica().await;
    let reservation = new_reservation();
    // A slow charge is refunded slowly too: the refund is in flight for a second, while the
    // other replica's worker looks for due refunds every 100 ms.
    let paid = app
        .pay_ok(&pay_body(&reservation, "alice", 4000, "tok_slow_1000"))
        .await;
    assert_eq!(paid["status"], "COMPLETED");
    let cancellation = app
        .publish(&reservation, cancelled(&reservation, "alice", true))
        .await;
    app.wait_consumed(cancellation.id).await;

    let refunds = app.wait_for_refund(&reservation).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    let events = app.payment_events(&reservation).await;
    assert_eq!(count(&events, "PaymentRefunded"), 1, "{events:?}");
    // The simulator answers repeats of one idempotency key without refunding again, so count
    // the calls themselves: one instance asked, once.
    assert_eq!(
        app.simulator.refund_calls(),
        1,
        "the provider was asked once"
    );
    assert_eq!(app.simulator.refunds_made(), 1);
    let completed = app
        .scalar(
            "SELECT COUNT(*) FROM refunds WHERE reservation_id = ? AND status = 'COMPLETED'
               AND claim_holder IS NULL AND claimed_until IS NULL",
            &[&reservation],
        )
        .await;
    assert_eq!(completed, Some(1), "completed, and its claim released");
    replica.stop().await;
    app.stop().await;
}

/// The provider goes quiet mid-payment and then the hold runs out: seat stops asking, so the
/// payment would stay PENDING for ever (and a real processor may have taken the money). Once
/// it has been left alone for `PAYMENT_RECONCILE_AFTER_SECS`, the settlement worker asks the
/// provider itself and, the reservation being closed, refunds what was charged.
async fn a_pending_payment_of_a_closed_reservation_is_settled_and_refunded(backend: Backend) {
    let mut app = spawn_app_with(backend, &[("PAYMENT_RECONCILE_AFTER_SECS", "1")]).await;
    let open = new_reservation();
    let closed = new_reservation();
    app.set_outage(true);
    for reservation in [&open, &closed] {
        let response = app
            .pay(&pay_body(reservation, "alice", 4000, "tok_approve"))
            .await;
        assert_eq!(response.status(), 503);
    }
    // One hold runs out; seat says so and asks no more for that payment.
    let expiry = app.publish(&closed, expired(&closed, "alice")).await;
    app.wait_consumed(expiry.id).await;
    app.set_outage(false);

    let refunds = app.wait_for_refund(&closed).await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["amount"]["amount"], 4000);
    let payment = app.payments_of(&closed).await["payments"][0].clone();
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(app.simulator.charges_made(), 1);
    assert_eq!(app.simulator.refunds_made(), 1);
    let events = app.payment_events(&closed).await;
    assert_eq!(count(&events, "PaymentCompleted"), 1, "{events:?}");
    assert_eq!(count(&events, "PaymentRefunded"), 1, "{events:?}");

    // The open reservation's payment, pending just as long, is seat's to retry: left alone.
    assert_eq!(
        app.payments_of(&open).await["payments"][0]["status"],
        "PENDING"
    );
    let paid = app
        .pay_ok(&pay_body(&open, "alice", 4000, "tok_approve"))
        .await;
    assert_eq!(paid["status"], "COMPLETED");
    assert_eq!(app.simulator.charges_made(), 2);
    assert_eq!(app.simulator.refunds_made(), 1);
    app.stop().await;
}

on_every_backend!(
    a_refund_due_on_two_replicas_is_asked_of_the_provider_once,
    a_cancelled_paid_reservation_is_refunded_exactly_once,
    a_payment_completing_after_the_reservation_expired_is_refunded,
    unpaid_reservations_are_not_refunded_and_bad_events_are_dead_lettered,
    a_refund_waits_out_a_provider_outage_and_a_restart,
    a_pending_payment_of_a_closed_reservation_is_settled_and_refunded,
);
