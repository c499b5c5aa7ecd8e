//! The timers' heartbeat: a payment sweep stuck on a payment call that never returns turns
//! liveness false, naming the timers, and true again once the call returns; idle between
//! ticks the timers stay live.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::Utc;
use seat_service::{
    application::{Reaction, ReservationService, ReserveSeat},
    domain::{
        CustomerId, PaymentToken, ReservationStatus, SeatId,
        ports::{
            Clock, Consumed, PaymentOutcome, PaymentRequest, PaymentUnavailable, Payments,
            ReservationStore as _,
        },
    },
    inbound::timers::Timers,
    outbound::{catalogue, sqlite::SqliteStore},
};
use studycafe_messaging::OutboxSignal;
use studycafe_platform::liveness::{Heartbeats, LivenessConfig};
use studycafe_testkit::eventually;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(30);

struct FixedClock(Mutex<chrono::DateTime<Utc>>);

impl Clock for FixedClock {
    fn now(&self) -> chrono::DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Approves, but only as many calls as the test lets through: a payment call that hangs.
#[derive(Clone)]
struct GatedPayments {
    permits: Arc<Semaphore>,
    calls: Arc<AtomicUsize>,
}

impl Payments for GatedPayments {
    async fn pay(&self, request: PaymentRequest) -> Result<PaymentOutcome, PaymentUnavailable> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.permits.acquire().await.unwrap().forget();
        Ok(PaymentOutcome::Approved {
            payment_id: format!("pay-{}", request.reservation_id),
        })
    }
}

fn stalled(beats: &Heartbeats) -> Vec<String> {
    beats.stalled().into_iter().map(|s| s.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_stuck_in_a_payment_call_are_not_live_until_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("seat.db").display());
    let store = SqliteStore::open(&url, OutboxSignal::new()).await.unwrap();
    store
        .sync_catalogue(&catalogue::parse(catalogue::DEFAULT).unwrap())
        .await
        .unwrap();
    let clock = Arc::new(FixedClock(Mutex::new(Utc::now())));
    let service = ReservationService::new(store.clone(), Default::default(), clock.clone());
    let reserved = service
        .reserve(ReserveSeat {
            customer: CustomerId::parse("alice").unwrap(),
            seat_id: SeatId::parse("A-01").unwrap(),
            starts_at: clock.now() + chrono::Duration::hours(1),
            hours: 2,
            payment_token: PaymentToken::parse("tok_approve").unwrap(),
            idempotency: None,
            causation: "test".into(),
        })
        .await
        .unwrap();

    let beats = Heartbeats::new(LivenessConfig { stall_limit: LIMIT });
    let payments = GatedPayments {
        permits: Arc::new(Semaphore::new(0)),
        calls: Arc::default(),
    };
    let payment_due = Arc::new(Notify::new());
    let timers = Timers {
        service: service.clone(),
        payments: Some(payments.clone()),
        payment_due: payment_due.clone(),
        tick: Duration::from_millis(50),
        heartbeat: beats.register("timers"),
        max_payment_backoff: chrono::Duration::seconds(30),
        catalogue_reannounce: chrono::Duration::days(1),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(timers.run(stop.clone()));

    // Ticking with nothing due, many times the limit: live.
    for _ in 0..10 {
        tokio::time::sleep(LIMIT).await;
        assert_eq!(stalled(&beats), Vec::<String>::new(), "idle timers");
    }

    // Confirmed: payment is due, and the call hangs.
    service
        .react(
            reserved.reservation_id,
            &Reaction::BookingConfirmed,
            Consumed {
                consumer: "seat",
                event_id: uuid::Uuid::now_v7(),
            },
        )
        .await
        .unwrap();
    payment_due.notify_one();
    eventually(WAIT, "the stuck timers named as stalled", || async {
        (payments.calls.load(Ordering::SeqCst) == 1 && stalled(&beats) == ["timers"]).then_some(())
    })
    .await;

    payments.permits.add_permits(1);
    eventually(WAIT, "paid, and live again", || async {
        let paid = store
            .get(reserved.reservation_id)
            .await
            .unwrap()
            .is_some_and(|r| r.status() == ReservationStatus::Paid);
        (paid && stalled(&beats).is_empty()).then_some(())
    })
    .await;
    stop.cancel();
    task.await.unwrap();
}
