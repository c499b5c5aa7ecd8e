//! Taking payment for confirmed reservations through the payment port, with a test double
//! behind it (the HTTP adapter and its circuit breaker come with the payment service), on the
//! real stores: each test runs once on SQLite and once on PostgreSQL (`TEST_POSTGRES_URL`).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use seat_service::{
    application::{Reaction, ReservationService, ReserveSeat},
    domain::{
        CustomerId, PaymentToken, ReservationId, ReservationStatus, SeatId,
        ports::{Clock, Consumed, PaymentOutcome, PaymentRequest, PaymentUnavailable, Payments},
    },
    outbound::{StoreAdapter, catalogue, postgres::PgStore, sqlite::SqliteStore},
};
use studycafe_messaging::{OutboxSignal, OutboxStore as _};

#[derive(Clone)]
struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Answers from a script and counts the calls per reservation.
#[derive(Default)]
struct ScriptedPayments {
    answers: Mutex<Vec<Result<PaymentOutcome, PaymentUnavailable>>>,
    calls: Mutex<Vec<ReservationId>>,
}

impl ScriptedPayments {
    fn answering(answers: Vec<Result<PaymentOutcome, PaymentUnavailable>>) -> Self {
        Self {
            answers: Mutex::new(answers),
            calls: Mutex::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

impl Payments for ScriptedPayments {
    async fn pay(&self, request: PaymentRequest) -> Result<PaymentOutcome, PaymentUnavailable> {
        self.calls.lock().unwrap().push(request.reservation_id);
        self.answers.lock().unwrap().remove(0)
    }
}

struct Fixture<S> {
    service: ReservationService<S>,
    store: S,
    clock: TestClock,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Fixture<SqliteStore> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("seat.db").display());
    let store = SqliteStore::open(&url, OutboxSignal::new()).await.unwrap();
    fixture(store, Some(dir)).await
}

async fn postgres() -> Fixture<PgStore> {
    let url = studycafe_testkit::engines::postgres_database().await;
    let store = PgStore::open(&url, 4, OutboxSignal::new()).await.unwrap();
    fixture(store, None).await
}

async fn fixture<S: StoreAdapter>(store: S, dir: Option<tempfile::TempDir>) -> Fixture<S> {
    store
        .sync_catalogue(&catalogue::parse(catalogue::DEFAULT).unwrap())
        .await
        .unwrap();
    let clock = TestClock(Arc::new(Mutex::new(
        Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap(),
    )));
    let service =
        ReservationService::new(store.clone(), Default::default(), Arc::new(clock.clone()));
    Fixture {
        service,
        store,
        clock,
        _dir: dir,
    }
}

/// `on_both_stores!(name, ...)`: for each `async fn name<S: StoreAdapter>(f: Fixture<S>)`, a
/// test `sqlite::name` and a test `postgres::name`.
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::sqlite().await).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::postgres().await).await
                }
            )+
        }
    };
}

/// `customer`'s two hours on `seat`, starting in an hour.
async fn reserve<S: StoreAdapter>(
    f: &Fixture<S>,
    customer: &str,
    seat: &str,
) -> Result<seat_service::application::Reserved, seat_service::application::ReserveError> {
    f.service
        .reserve(ReserveSeat {
            customer: CustomerId::parse(customer).unwrap(),
            seat_id: SeatId::parse(seat).unwrap(),
            starts_at: f.clock.now() + Duration::hours(1),
            hours: 2,
            payment_token: PaymentToken::parse("tok_approve").unwrap(),
            idempotency: None,
            causation: "test".into(),
        })
        .await
}

async fn confirmed<S: StoreAdapter>(f: &Fixture<S>, seat: &str) -> ReservationId {
    let reserved = reserve(f, "alice", seat).await.unwrap();
    let consumed = Consumed {
        consumer: "seat",
        event_id: uuid::Uuid::now_v7(),
    };
    f.service
        .react(
            reserved.reservation_id,
            &Reaction::BookingConfirmed,
            consumed,
        )
        .await
        .unwrap();
    reserved.reservation_id
}

async fn settle<S: StoreAdapter>(f: &Fixture<S>, payments: &ScriptedPayments) -> usize {
    f.service
        .settle_due_payments(payments, 10, Duration::seconds(30))
        .await
        .unwrap()
}

async fn status<S: StoreAdapter>(f: &Fixture<S>, id: ReservationId) -> ReservationStatus {
    f.store.get(id).await.unwrap().unwrap().status()
}

async fn approved_is_paid_once_and_never_charged_again<S: StoreAdapter>(f: Fixture<S>) {
    let id = confirmed(&f, "A-01").await;
    let payments = ScriptedPayments::answering(vec![Ok(PaymentOutcome::Approved {
        payment_id: "pay-1".into(),
    })]);
    let settled = settle(&f, &payments).await;
    assert_eq!(settled, 1);
    let reservation = f.store.get(id).await.unwrap().unwrap();
    assert_eq!(reservation.status(), ReservationStatus::Paid);
    assert_eq!(reservation.payment().payment_id(), Some("pay-1"));
    // Nothing more is due: a second sweep calls nobody.
    f.clock.advance(Duration::minutes(5));
    assert_eq!(settle(&f, &payments).await, 0);
    assert_eq!(payments.calls(), 1);
}

async fn declined_fails_the_reservation_and_frees_the_seat<S: StoreAdapter>(f: Fixture<S>) {
    let id = confirmed(&f, "A-02").await;
    let payments = ScriptedPayments::answering(vec![Ok(PaymentOutcome::Declined {
        reason: "card declined".into(),
    })]);
    settle(&f, &payments).await;
    assert_eq!(status(&f, id).await, ReservationStatus::PaymentFailed);
    // Seat A-02 is free for the same window again.
    let again = reserve(&f, "bob", "A-02").await;
    assert!(again.is_ok());
}

async fn an_unreachable_payment_service_postpones_with_backoff_until_it_answers<S: StoreAdapter>(
    f: Fixture<S>,
) {
    let id = confirmed(&f, "A-03").await;
    let payments = ScriptedPayments::answering(vec![
        Err(PaymentUnavailable("connection refused".into())),
        Err(PaymentUnavailable("breaker open".into())),
        Ok(PaymentOutcome::Approved {
            payment_id: "pay-9".into(),
        }),
    ]);
    let sweep = || {
        f.service
            .settle_due_payments(&payments, 10, Duration::seconds(30))
    };

    assert_eq!(sweep().await.unwrap(), 0);
    let r = f.store.get(id).await.unwrap().unwrap();
    assert_eq!(
        r.status(),
        ReservationStatus::Confirmed,
        "stays confirmed, payment pending"
    );
    assert_eq!(r.payment().attempts(), 1);
    // Not due again before the backoff (1 s after the first failure, 2 s after the second).
    assert_eq!(sweep().await.unwrap(), 0);
    assert_eq!(payments.calls(), 1);
    f.clock.advance(Duration::seconds(1));
    assert_eq!(sweep().await.unwrap(), 0);
    assert_eq!(payments.calls(), 2);
    f.clock.advance(Duration::seconds(2));
    assert_eq!(sweep().await.unwrap(), 1);
    assert_eq!(status(&f, id).await, ReservationStatus::Paid);
    // Every attempt used the reservation id as the idempotency key.
    assert!(payments.calls.lock().unwrap().iter().all(|c| *c == id));
}

async fn the_hold_ends_the_retries<S: StoreAdapter>(f: Fixture<S>) {
    let id = confirmed(&f, "A-04").await;
    let payments = ScriptedPayments::answering(vec![Err(PaymentUnavailable("down".into()))]);
    settle(&f, &payments).await;
    f.clock.advance(Duration::minutes(11));
    assert_eq!(f.service.expire_due_holds(10).await.unwrap(), 1);
    assert_eq!(status(&f, id).await, ReservationStatus::Expired);
    assert_eq!(settle(&f, &payments).await, 0);
    assert_eq!(payments.calls(), 1, "no call after expiry");
    // Every state change left its event in the outbox: reserved, confirmed, expired.
    assert_eq!(f.store.outbox().backlog().await.unwrap(), 40 + 3);
}

on_both_stores!(
    approved_is_paid_once_and_never_charged_again,
    declined_fails_the_reservation_and_frees_the_seat,
    an_unreachable_payment_service_postpones_with_backoff_until_it_answers,
    the_hold_ends_the_retries,
);
