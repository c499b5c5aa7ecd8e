//! The seat service's REST API.
//!
//! Input is parsed into domain types here, at the edge; every failure becomes a
//! `problem+json` response through [`ApiError`], and nothing is written unless the whole
//! request is valid. Reserving and cancelling run detached from their client
//! ([`studycafe_platform::detach`]): a client that hangs up does not cancel them.

use std::sync::Arc;

use axum::{
    Router,
    extract::{FromRef, Path, State},
    handler::Handler as _,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use studycafe_platform::{
    Problem,
    auth::{Caller, JwtVerifier, Role},
    detach::{Detached, detach},
    inbound::causation_of,
    openapi::{DocumentedRouter, Security},
    problem::Json,
};
use utoipa::ToSchema;

use crate::{
    application::{Actor, CancelError, ReservationService, ReserveError, ViewError},
    domain::{
        Reservation, ReservationId, Seat,
        ports::{ReservationStore, StoreError},
    },
    inbound::{
        commands::{self, KeyInput, RawReservation},
        failure::Failure,
    },
};

#[derive(Debug)]
pub struct ApiState<S> {
    pub service: ReservationService<S>,
    pub verifier: Arc<JwtVerifier>,
}

impl<S: Clone> Clone for ApiState<S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            verifier: self.verifier.clone(),
        }
    }
}

impl<S> FromRef<ApiState<S>> for Arc<JwtVerifier> {
    fn from_ref(state: &ApiState<S>) -> Self {
        state.verifier.clone()
    }
}

/// The API; the write routes run on `detached`.
pub fn routes<S: ReservationStore>(state: ApiState<S>, detached: &Detached) -> Router {
    let detached = || middleware::from_fn_with_state(detached.clone(), detach);
    let (router, _) = DocumentedRouter::new(
        "seat",
        "The catalogue of seats and the customers' reservations.",
    )
    .route(__path_list_seats, list_seats::<S>, Security::Anonymous)
    .route(
        __path_reserve,
        reserve::<S>.layer(detached()),
        Security::Bearer,
    )
    .route(
        __path_get_reservation,
        get_reservation::<S>,
        Security::Bearer,
    )
    .route(
        __path_cancel_reservation,
        cancel_reservation::<S>.layer(detached()),
        Security::Bearer,
    )
    .finish();
    router.with_state(state)
}

/// Every way a request can fail, mapped to `problem+json` in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Problem(#[from] Box<Problem>),
    #[error(transparent)]
    Reserve(#[from] ReserveError),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error(transparent)]
    Cancel(#[from] CancelError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let failure = match self {
            ApiError::Problem(problem) => return problem.into_response(),
            ApiError::Store(e) => Failure::unavailable(&e),
            ApiError::Reserve(e) => Failure::from(&e),
            ApiError::View(e) => Failure::from(&e),
            ApiError::Cancel(e) => Failure::from(&e),
        };
        problem(failure).into_response()
    }
}

/// A failure as `problem+json`: the request field under `field`, the seat under `seatId`.
fn problem(failure: Failure) -> Problem {
    let mut problem = Problem::new(
        failure.kind.http(),
        failure.slug,
        failure.title,
        failure.detail,
    );
    if let Some(field) = failure.field {
        problem = problem.with("field", field.json_name());
    }
    if let Some(seat) = failure.seat {
        problem = problem.with("seatId", seat.as_str());
    }
    if let Some(seconds) = failure.kind.retry_after() {
        problem = problem.retry_after(seconds);
    }
    problem
}

/// An amount of money.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Money)]
struct MoneyView {
    /// In the currency's smallest unit (won have none smaller).
    amount: i64,
    #[schema(example = "KRW")]
    currency: &'static str,
}

impl MoneyView {
    fn krw(amount: i64) -> Self {
        Self {
            amount,
            currency: "KRW",
        }
    }
}

/// A seat of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Seat)]
struct SeatView {
    #[schema(example = "A-01")]
    id: String,
    zone: String,
    #[schema(value_type = String, example = "open-desk")]
    kind: &'static str,
    hourly_price: MoneyView,
    enabled: bool,
}

impl From<Seat> for SeatView {
    fn from(seat: Seat) -> Self {
        Self {
            id: seat.id.to_string(),
            zone: seat.zone,
            kind: seat.kind.as_str(),
            hourly_price: MoneyView::krw(seat.hourly_price.won()),
            enabled: seat.enabled,
        }
    }
}

/// The catalogue: every seat, with its zone, kind and hourly price.
#[utoipa::path(
    get,
    path = "/api/seats",
    tag = "seats",
    responses((status = 200, description = "Every seat", body = Vec<SeatView>)),
)]
async fn list_seats<S: ReservationStore>(
    State(state): State<ApiState<S>>,
) -> Result<Json<Vec<SeatView>>, ApiError> {
    let seats = state.service.seats().await?;
    Ok(Json(seats.into_iter().map(SeatView::from).collect()))
}

/// What a customer asks for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ReserveRequest)]
struct ReserveBody {
    #[schema(example = "A-01")]
    seat_id: String,
    /// RFC 3339, on the hour, in the future.
    #[schema(example = "2026-12-24T09:00:00Z")]
    starts_at: String,
    #[schema(example = 2)]
    hours: i64,
    /// The card simulator's token: `tok_approve`, `tok_decline`, `tok_slow_<ms>`, `tok_error`.
    #[schema(example = "tok_approve")]
    payment_token: String,
}

/// A reservation accepted for the saga.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Reserved)]
struct ReservedView {
    reservation_id: String,
    #[schema(value_type = String, example = "REQUESTED")]
    status: &'static str,
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn actor_of(caller: &Caller) -> Result<Actor, Problem> {
    commands::actor_of(caller).map_err(Problem::unauthorized)
}

fn parse_reservation_id(raw: &str) -> Result<ReservationId, Problem> {
    commands::reservation_id(raw).map_err(Problem::not_found)
}

/// Reserves a seat for a window; the saga (confirmation, payment, registration) follows.
#[utoipa::path(
    post,
    path = "/api/reservations",
    tag = "reservations",
    request_body = ReserveBody,
    params((
        "Idempotency-Key" = Option<String>,
        Header,
        description = "Makes a retry book once: the same key and body answer the first answer again."
    )),
    responses(
        (status = 202, description = "Accepted; `Location` names the reservation", body = ReservedView,
            headers(("Location" = String, description = "The reservation's URL"))),
        (status = 404, description = "Unknown seat"),
        (status = 409, description = "The seat is taken for an overlapping window, or out of service"),
        (status = 422, description = "A reservation rule is violated, or the idempotency key was used for another request"),
    ),
)]
async fn reserve<S: ReservationStore>(
    State(state): State<ApiState<S>>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<ReserveBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Customer)?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => KeyInput::Absent,
        Some(value) => value.to_str().map_or(KeyInput::Unreadable, KeyInput::Given),
    };
    let command = commands::reserve_command(
        actor_of(&caller)?.user,
        RawReservation {
            seat_id: &body.seat_id,
            starts_at: &body.starts_at,
            hours: body.hours,
            payment_token: &body.payment_token,
        },
        key,
        causation_of(&headers),
    )
    .map_err(|v| problem(Failure::invalid(&v)))?;
    let reserved = state.service.reserve(command).await?;
    let location = format!("/api/reservations/{}", reserved.reservation_id);
    let mut response = (
        StatusCode::ACCEPTED,
        Json(ReservedView {
            reservation_id: reserved.reservation_id.to_string(),
            status: reserved.status.as_str(),
        }),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if reserved.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A reservation and where it is in the saga.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Reservation)]
struct ReservationView {
    reservation_id: String,
    seat_id: String,
    customer_id: String,
    starts_at: String,
    ends_at: String,
    hours: u8,
    price: MoneyView,
    #[schema(value_type = String, example = "REGISTERED")]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason: Option<String>,
    hold_expires_at: String,
    /// CONFIRMED and waiting for the payment service to answer.
    payment_pending: bool,
    payment_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_id: Option<String>,
    created_at: String,
    updated_at: String,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl From<Reservation> for ReservationView {
    fn from(r: Reservation) -> Self {
        Self {
            reservation_id: r.id().to_string(),
            seat_id: r.seat_id().to_string(),
            customer_id: r.customer_id().to_string(),
            starts_at: rfc3339(r.window().starts_at()),
            ends_at: rfc3339(r.window().ends_at()),
            hours: r.window().hours(),
            price: MoneyView::krw(r.price().won()),
            status: r.status().as_str(),
            status_reason: r.status_reason().map(str::to_owned),
            hold_expires_at: rfc3339(r.hold_expires_at()),
            payment_pending: r.status() == crate::domain::ReservationStatus::Confirmed,
            payment_attempts: r.payment().attempts(),
            payment_id: r.payment().payment_id().map(str::to_owned),
            // Kept while CONFIRMED until the payment is seen (`Reservation::register`).
            registration_id: r
                .registration_id()
                .filter(|_| r.status() != crate::domain::ReservationStatus::Confirmed)
                .map(str::to_owned),
            created_at: rfc3339(r.created_at()),
            updated_at: rfc3339(r.updated_at()),
        }
    }
}

/// One of the caller's reservations (an admin may read any).
#[utoipa::path(
    get,
    path = "/api/reservations/{id}",
    tag = "reservations",
    params(("id" = String, Path, description = "The reservation's id")),
    responses(
        (status = 200, description = "The reservation", body = ReservationView),
        (status = 403, description = "Someone else's reservation"),
        (status = 404, description = "No such reservation"),
    ),
)]
async fn get_reservation<S: ReservationStore>(
    State(state): State<ApiState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReservationView>, ApiError> {
    let id = parse_reservation_id(&id)?;
    let reservation = state.service.get(&actor_of(&caller)?, id).await?;
    Ok(Json(reservation.into()))
}

/// Cancels a reservation; a payment taken is refunded.
#[utoipa::path(
    delete,
    path = "/api/reservations/{id}",
    tag = "reservations",
    params(("id" = String, Path, description = "The reservation's id")),
    responses(
        (status = 202, description = "Cancelled (the refund follows)", body = ReservationView),
        (status = 403, description = "Someone else's reservation"),
        (status = 404, description = "No such reservation"),
        (status = 409, description = "Not possible in this state, or changed concurrently"),
    ),
)]
async fn cancel_reservation<S: ReservationStore>(
    State(state): State<ApiState<S>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_reservation_id(&id)?;
    let reservation = state
        .service
        .cancel(&actor_of(&caller)?, id, &causation_of(&headers))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReservationView::from(reservation)),
    )
        .into_response())
}
