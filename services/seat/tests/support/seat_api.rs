//! [`SeatApi`]: the seat API as the acceptance scenarios see it, with one implementation per
//! inbound adapter ([`Rest`], [`Grpc`]). A scenario written against the trait runs through
//! both (`through_both_adapters!`), which is what proves the adapters equivalent.
//!
//! Each implementation checks its own protocol's shape of an answer (REST: status, problem+json,
//! `Location`; gRPC: status code, `ErrorInfo`, `BadRequest`) and hands the scenario the common
//! meaning: a [`Rejection`] of a [`Kind`] with the REST problem slug as its reason.

use seat_service::inbound::grpc::{
    ERROR_DOMAIN,
    pb::{self, seat_reservations_client::SeatReservationsClient},
};
use serde_json::{Value, json};
use tonic::{Code, metadata::MetadataValue, transport::Channel};
use tonic_types::StatusExt as _;

use super::TestApp;

/// A reservation request, as a customer would fill it in.
#[derive(Debug, Clone)]
pub struct ReserveInput {
    pub seat_id: String,
    pub starts_at: String,
    pub hours: i64,
    pub payment_token: String,
}

pub fn input(seat: &str, starts_at: &str, hours: i64) -> ReserveInput {
    ReserveInput {
        seat_id: seat.to_owned(),
        starts_at: starts_at.to_owned(),
        hours,
        payment_token: "tok_approve".to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub id: String,
    pub status: String,
    pub replayed: bool,
}

/// The fields of a reservation the scenarios look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub id: String,
    pub seat_id: String,
    pub customer_id: String,
    pub hours: u32,
    pub price: i64,
    pub currency: String,
    pub status: String,
}

/// What kind of refusal, in either protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// REST 400 or 422; gRPC INVALID_ARGUMENT.
    BadInput,
    /// REST 401; gRPC UNAUTHENTICATED.
    Unauthenticated,
    /// REST 403; gRPC PERMISSION_DENIED.
    Forbidden,
    /// REST 404; gRPC NOT_FOUND.
    NotFound,
    /// REST 409; gRPC ALREADY_EXISTS (the seat is taken) or FAILED_PRECONDITION.
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: Kind,
    /// The REST problem type's slug (`seat-taken`); gRPC's `ErrorInfo.reason` (`SEAT_TAKEN`)
    /// in the same spelling.
    pub reason: String,
    pub detail: String,
    /// The offending input field, when the adapter names one.
    pub field: Option<String>,
}

pub type Answer<T> = Result<T, Rejection>;

#[allow(async_fn_in_trait)]
pub trait SeatApi: Sized {
    /// Which adapter, for messages.
    const NAME: &'static str;

    async fn connect(app: &TestApp) -> Self;

    /// `token` empty: no credentials at all.
    async fn reserve(
        &self,
        token: &str,
        input: &ReserveInput,
        key: Option<&str>,
    ) -> Answer<Reserved>;

    async fn get(&self, token: &str, id: &str) -> Answer<View>;

    async fn cancel(&self, token: &str, id: &str) -> Answer<View>;
}

/// Asserts a refusal of `kind` with `reason`; returns it.
#[track_caller]
pub fn assert_rejected<T: std::fmt::Debug>(
    answer: Answer<T>,
    kind: Kind,
    reason: &str,
) -> Rejection {
    let rejection = answer.expect_err("a refusal");
    assert_eq!(
        (rejection.kind, rejection.reason.as_str()),
        (kind, reason),
        "{rejection:?}"
    );
    assert!(!rejection.detail.is_empty(), "{rejection:?}");
    rejection
}

/// Each reason's exact answer in each protocol: the scenarios compare [`Kind`]s, and every
/// refusal is checked against this table too, so no status or code can drift unnoticed.
const ANSWERS: [(&str, u16, Code); 13] = [
    ("invalid-field", 400, Code::InvalidArgument),
    ("starts-in-past", 422, Code::InvalidArgument),
    ("hours-out-of-range", 422, Code::InvalidArgument),
    ("starts-too-far-ahead", 422, Code::InvalidArgument),
    ("idempotency-key-reused", 422, Code::InvalidArgument),
    ("unauthorized", 401, Code::Unauthenticated),
    ("forbidden", 403, Code::PermissionDenied),
    ("not-found", 404, Code::NotFound),
    ("seat-not-found", 404, Code::NotFound),
    ("seat-taken", 409, Code::AlreadyExists),
    ("seat-disabled", 409, Code::FailedPrecondition),
    ("illegal-state-change", 409, Code::FailedPrecondition),
    ("malformed-request", 400, Code::InvalidArgument),
];

fn answer_of(reason: &str) -> (u16, Code) {
    ANSWERS
        .iter()
        .find(|(r, _, _)| *r == reason)
        .map(|(_, status, code)| (*status, *code))
        .unwrap_or_else(|| panic!("no expected answer for {reason:?}"))
}

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Rest {
    base: String,
    http: reqwest::Client,
}

impl Rest {
    fn authorized(&self, request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        if token.is_empty() {
            request
        } else {
            request.bearer_auth(token)
        }
    }

    async fn rejection(response: reqwest::Response) -> Rejection {
        let status = response.status().as_u16();
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{status}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], status, "{body}");
        let kind = match status {
            400 | 422 => Kind::BadInput,
            401 => Kind::Unauthenticated,
            403 => Kind::Forbidden,
            404 => Kind::NotFound,
            409 => Kind::Conflict,
            other => panic!("unexpected status {other}: {body}"),
        };
        let reason = body["type"]
            .as_str()
            .unwrap()
            .trim_start_matches("/problems/")
            .to_owned();
        assert_eq!(answer_of(&reason).0, status, "{body}");
        Rejection {
            kind,
            reason,
            detail: body["detail"].as_str().unwrap_or_default().to_owned(),
            field: body["field"].as_str().map(str::to_owned),
        }
    }

    async fn view(response: reqwest::Response, expected: u16) -> Answer<View> {
        if response.status().as_u16() != expected {
            return Err(Self::rejection(response).await);
        }
        let body: Value = response.json().await.unwrap();
        Ok(View {
            id: body["reservationId"].as_str().unwrap().to_owned(),
            seat_id: body["seatId"].as_str().unwrap().to_owned(),
            customer_id: body["customerId"].as_str().unwrap().to_owned(),
            hours: u32::try_from(body["hours"].as_u64().unwrap()).unwrap(),
            price: body["price"]["amount"].as_i64().unwrap(),
            currency: body["price"]["currency"].as_str().unwrap().to_owned(),
            status: body["status"].as_str().unwrap().to_owned(),
        })
    }
}

impl SeatApi for Rest {
    const NAME: &'static str = "REST";

    async fn connect(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            http: app.http.clone(),
        }
    }

    async fn reserve(
        &self,
        token: &str,
        input: &ReserveInput,
        key: Option<&str>,
    ) -> Answer<Reserved> {
        let body = json!({
            "seatId": input.seat_id,
            "startsAt": input.starts_at,
            "hours": input.hours,
            "paymentToken": input.payment_token,
        });
        let mut request = self
            .authorized(
                self.http.post(format!("{}/api/reservations", self.base)),
                token,
            )
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        if response.status() != 202 {
            return Err(Self::rejection(response).await);
        }
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let body: Value = response.json().await.unwrap();
        let id = body["reservationId"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("/api/reservations/{id}"));
        Ok(Reserved {
            id,
            status: body["status"].as_str().unwrap().to_owned(),
            replayed,
        })
    }

    async fn get(&self, token: &str, id: &str) -> Answer<View> {
        let url = format!("{}/api/reservations/{id}", self.base);
        let response = self
            .authorized(self.http.get(url), token)
            .send()
            .await
            .unwrap();
        Self::view(response, 200).await
    }

    async fn cancel(&self, token: &str, id: &str) -> Answer<View> {
        let url = format!("{}/api/reservations/{id}", self.base);
        let response = self
            .authorized(self.http.delete(url), token)
            .send()
            .await
            .unwrap();
        Self::view(response, 202).await
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Grpc {
    client: SeatReservationsClient<Channel>,
}

impl Grpc {
    fn request<T>(message: T, token: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if !token.is_empty() {
            let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    fn rejection(status: &tonic::Status) -> Rejection {
        let kind = match status.code() {
            Code::InvalidArgument => Kind::BadInput,
            Code::Unauthenticated => Kind::Unauthenticated,
            Code::PermissionDenied => Kind::Forbidden,
            Code::NotFound => Kind::NotFound,
            Code::AlreadyExists | Code::FailedPrecondition => Kind::Conflict,
            other => panic!("unexpected code {other:?}: {status:?}"),
        };
        let details = status.get_error_details();
        let info = details
            .error_info()
            .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
        assert_eq!(info.domain, ERROR_DOMAIN);
        let field = details
            .bad_request()
            .and_then(|b| b.field_violations.first())
            .map(|v| v.field.clone());
        if kind == Kind::BadInput {
            assert!(field.is_some(), "bad input names its field: {status:?}");
        }
        let reason = info.reason.to_lowercase().replace('_', "-");
        assert_eq!(answer_of(&reason).1, status.code(), "{status:?}");
        Rejection {
            kind,
            reason,
            detail: status.message().to_owned(),
            field,
        }
    }

    fn view(r: pb::Reservation) -> View {
        let price = r.price.unwrap_or_default();
        View {
            id: r.reservation_id,
            seat_id: r.seat_id,
            customer_id: r.customer_id,
            hours: r.hours,
            price: price.amount,
            currency: price.currency,
            status: r.status,
        }
    }
}

impl SeatApi for Grpc {
    const NAME: &'static str = "gRPC";

    async fn connect(app: &TestApp) -> Self {
        Self {
            client: SeatReservationsClient::connect(app.grpc.clone())
                .await
                .expect("gRPC connect"),
        }
    }

    async fn reserve(
        &self,
        token: &str,
        input: &ReserveInput,
        key: Option<&str>,
    ) -> Answer<Reserved> {
        let mut request = Self::request(
            pb::ReserveRequest {
                seat_id: input.seat_id.clone(),
                starts_at: input.starts_at.clone(),
                hours: input.hours,
                payment_token: input.payment_token.clone(),
            },
            token,
        );
        if let Some(key) = key {
            request
                .metadata_mut()
                .insert("idempotency-key", key.parse().unwrap());
        }
        match self.client.clone().reserve(request).await {
            Ok(response) => {
                let r = response.into_inner();
                Ok(Reserved {
                    id: r.reservation_id,
                    status: r.status,
                    replayed: r.replayed,
                })
            }
            Err(status) => Err(Self::rejection(&status)),
        }
    }

    async fn get(&self, token: &str, id: &str) -> Answer<View> {
        let request = Self::request(
            pb::GetReservationRequest {
                reservation_id: id.to_owned(),
            },
            token,
        );
        self.client
            .clone()
            .get_reservation(request)
            .await
            .map(|r| Self::view(r.into_inner()))
            .map_err(|s| Self::rejection(&s))
    }

    async fn cancel(&self, token: &str, id: &str) -> Answer<View> {
        let request = Self::request(
            pb::CancelReservationRequest {
                reservation_id: id.to_owned(),
            },
            token,
        );
        self.client
            .clone()
            .cancel_reservation(request)
            .await
            .map(|r| Self::view(r.into_inner()))
            .map_err(|s| Self::rejection(&s))
    }
}

/// `through_both_adapters!(name, ...)`: for each `async fn name<A: SeatApi>(db: Db)`, the
/// tests `rest_sqlite::name`, `rest_postgres::name`, `grpc_sqlite::name` and
/// `grpc_postgres::name`.
#[macro_export]
macro_rules! through_both_adapters {
    ($($name:ident),+ $(,)?) => {
        mod rest_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name::<super::support::seat_api::Rest>(super::support::Db::Sqlite)
                        .await
                }
            )+
        }
        mod rest_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name::<super::support::seat_api::Rest>(super::support::Db::Postgres)
                        .await
                }
            )+
        }
        mod grpc_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name::<super::support::seat_api::Grpc>(super::support::Db::Sqlite)
                        .await
                }
            )+
        }
        mod grpc_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name::<super::support::seat_api::Grpc>(super::support::Db::Postgres)
                        .await
                }
            )+
        }
    };
}
