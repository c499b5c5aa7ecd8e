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
    routing::{get, post},
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use studycafe_platform::{
    Problem,
    auth::{Caller, JwtVerifier, Role},
    detach::{Detached, detach},
    problem::Json,
};

use crate::{
    domain::WindowError,
    domain::{
        Reservation, ReservationId, Seat,
        ports::{ReservationStore, StoreError},
        service::{Actor, CancelError, ReservationService, ReserveError, ViewError},
    },
    inbound::commands::{self, KeyInput, RawReservation},
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
    Router::new()
        .route("/api/seats", get(list_seats::<S>))
        .route("/api/reservations", post(reserve::<S>.layer(detached())))
        .route(
            "/api/reservations/{id}",
            get(get_reservation::<S>).delete(cancel_reservation::<S>.layer(detached())),
        )
        .with_state(state)
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

fn unavailable(e: &StoreError) -> Problem {
    tracing::error!(error = %e, "store unavailable");
    Problem::unavailable("the reservation store is unavailable; try again shortly")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::Problem(problem) => *problem,
            ApiError::Store(e) => unavailable(&e),
            ApiError::Reserve(e) => match &e {
                ReserveError::UnknownSeat(seat) => Problem::new(
                    StatusCode::NOT_FOUND,
                    "seat-not-found",
                    "Unknown seat",
                    e.to_string(),
                )
                .with("seatId", seat.as_str()),
                ReserveError::SeatDisabled(seat) => Problem::new(
                    StatusCode::CONFLICT,
                    "seat-disabled",
                    "Seat not available",
                    e.to_string(),
                )
                .with("seatId", seat.as_str()),
                ReserveError::SeatTaken { seat } => Problem::new(
                    StatusCode::CONFLICT,
                    "seat-taken",
                    "Seat already reserved",
                    e.to_string(),
                )
                .with("seatId", seat.as_str()),
                ReserveError::Window(w) => {
                    let (slug, field) = match w {
                        WindowError::HoursOutOfRange { .. } => ("hours-out-of-range", "hours"),
                        WindowError::StartsInPast { .. } => ("starts-in-past", "startsAt"),
                        WindowError::TooFarAhead { .. } => ("starts-too-far-ahead", "startsAt"),
                    };
                    Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        slug,
                        "Reservation rule violated",
                        e.to_string(),
                    )
                    .with("field", field)
                }
                ReserveError::IdempotencyKeyReused => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    e.to_string(),
                ),
                ReserveError::Price => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "price",
                    "Price cannot be computed",
                    e.to_string(),
                ),
                ReserveError::Store(s) => unavailable(s),
            },
            ApiError::View(e) => match &e {
                ViewError::NotFound(_) => Problem::not_found(e.to_string()),
                ViewError::Forbidden(_) => Problem::forbidden(e.to_string()),
                ViewError::Store(s) => unavailable(s),
            },
            ApiError::Cancel(e) => match &e {
                CancelError::NotFound(_) => Problem::not_found(e.to_string()),
                CancelError::Forbidden(_) => Problem::forbidden(e.to_string()),
                CancelError::Illegal(_) => Problem::new(
                    StatusCode::CONFLICT,
                    "illegal-state-change",
                    "Not possible in this state",
                    e.to_string(),
                ),
                CancelError::Contended(_) => Problem::new(
                    StatusCode::CONFLICT,
                    "contended",
                    "Changed concurrently",
                    e.to_string(),
                )
                .retry_after(1),
                CancelError::Store(s) => unavailable(s),
            },
        };
        problem.into_response()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MoneyView {
    amount: i64,
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeatView {
    id: String,
    zone: String,
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

async fn list_seats<S: ReservationStore>(
    State(state): State<ApiState<S>>,
) -> Result<Json<Vec<SeatView>>, ApiError> {
    let seats = state.service.seats().await?;
    Ok(Json(seats.into_iter().map(SeatView::from).collect()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReserveBody {
    seat_id: String,
    starts_at: String,
    hours: i64,
    payment_token: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReservedView {
    reservation_id: String,
    status: &'static str,
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn causation_of(headers: &HeaderMap) -> String {
    headers
        .get(studycafe_platform::http::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(commands::new_causation)
}

fn actor_of(caller: &Caller) -> Result<Actor, Problem> {
    commands::actor_of(caller).map_err(Problem::unauthorized)
}

fn parse_reservation_id(raw: &str) -> Result<ReservationId, Problem> {
    commands::reservation_id(raw).map_err(Problem::not_found)
}

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
    .map_err(|v| Problem::validation(v.field.json_name(), v.message))?;
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReservationView {
    reservation_id: String,
    seat_id: String,
    customer_id: String,
    starts_at: String,
    ends_at: String,
    hours: u8,
    price: MoneyView,
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
            reservation_id: r.id.to_string(),
            seat_id: r.seat_id.to_string(),
            customer_id: r.customer_id.to_string(),
            starts_at: rfc3339(r.window.starts_at()),
            ends_at: rfc3339(r.window.ends_at()),
            hours: r.window.hours(),
            price: MoneyView::krw(r.price.won()),
            status: r.status.as_str(),
            status_reason: r.status_reason,
            hold_expires_at: rfc3339(r.hold_expires_at),
            payment_pending: r.status == crate::domain::ReservationStatus::Confirmed,
            payment_attempts: r.payment.attempts,
            payment_id: r.payment.payment_id,
            registration_id: r.registration_id,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

async fn get_reservation<S: ReservationStore>(
    State(state): State<ApiState<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReservationView>, ApiError> {
    let id = parse_reservation_id(&id)?;
    let reservation = state.service.get(&actor_of(&caller)?, id).await?;
    Ok(Json(reservation.into()))
}

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
