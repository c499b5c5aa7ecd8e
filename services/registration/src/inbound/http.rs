//! The registration service's admin REST API.
//!
//! Every route needs the admin role ([`AdminCaller`]: 401 without a valid token, 403 for
//! anyone else). Input is parsed into domain types here, at the edge; every failure becomes a
//! `problem+json` response through [`ApiError`], and nothing is written unless the whole
//! request is valid. Decisions and policy changes run detached from their client
//! ([`studycafe_platform::detach`]): a client that hangs up does not cancel them.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::{FromRef, FromRequestParts, Path, Query, State, rejection::QueryRejection},
    handler::Handler as _,
    http::{HeaderMap, StatusCode, request::Parts},
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
use utoipa::{IntoParams, ToSchema};

use crate::application::{BookingService, DecideError, ViewError};
use crate::domain::{
    AdminId, AutoConfirmPolicy, Booking, BookingStatus, RejectionReason, ReservationId,
    ports::{BookingStore, StoreError},
};

/// Bookings per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 100;
/// The most bookings one page holds; a larger `limit` is capped.
const MAX_LIMIT: u32 = 500;

#[derive(Debug)]
pub struct ApiState<S> {
    pub service: BookingService<S>,
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

/// The admin API; the write routes run on `detached`.
pub fn routes<S: BookingStore>(state: ApiState<S>, detached: &Detached) -> Router {
    let detached = || middleware::from_fn_with_state(detached.clone(), detach);
    let (router, _) = DocumentedRouter::new(
        "registration",
        "The administrators' decisions on bookings, and the cafe's auto-confirm policy.",
    )
    .route(__path_list_bookings, list_bookings::<S>, Security::Admin)
    .route(__path_get_booking, get_booking::<S>, Security::Admin)
    .route(
        __path_confirm,
        confirm::<S>.layer(detached()),
        Security::Admin,
    )
    .route(
        __path_reject,
        reject::<S>.layer(detached()),
        Security::Admin,
    )
    .route(__path_get_policy, get_policy::<S>, Security::Admin)
    .route(
        __path_put_policy,
        put_policy::<S>.layer(detached()),
        Security::Admin,
    )
    .finish();
    router.with_state(state)
}

/// An authenticated caller with the admin role. Runs before any other extractor, so a
/// request without the right to ask learns nothing else (not even that its input is bad).
#[derive(Debug, Clone)]
pub struct AdminCaller(pub AdminId);

impl<S> FromRequestParts<S> for AdminCaller
where
    Arc<JwtVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        caller
            .require(Role::Admin)
            .map_err(IntoResponse::into_response)?;
        AdminId::parse(&caller.user_id)
            .map(Self)
            .map_err(|e| Problem::unauthorized(e.to_string()).into_response())
    }
}

/// Every way a request can fail, mapped to `problem+json` in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Problem(#[from] Box<Problem>),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error(transparent)]
    Decide(#[from] DecideError),
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
    Problem::unavailable("the booking store is unavailable; try again shortly")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::Problem(problem) => *problem,
            ApiError::Store(e) => unavailable(&e),
            ApiError::View(e) => match &e {
                ViewError::NotFound(_) => Problem::not_found(e.to_string()),
                ViewError::Store(s) => unavailable(s),
            },
            ApiError::Decide(e) => match &e {
                DecideError::NotFound(_) => Problem::not_found(e.to_string()),
                DecideError::NotPending { illegal, .. } => Problem::new(
                    StatusCode::CONFLICT,
                    "illegal-state-change",
                    "Not possible in this state",
                    e.to_string(),
                )
                .with("currentStatus", illegal.from.as_str()),
                DecideError::Contended(_) => Problem::new(
                    StatusCode::CONFLICT,
                    "contended",
                    "Changed concurrently",
                    e.to_string(),
                )
                .retry_after(1),
                DecideError::Store(s) => unavailable(s),
            },
        };
        problem.into_response()
    }
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

/// A booking: a reservation as the registration desk sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Booking)]
struct BookingView {
    reservation_id: String,
    seat_id: String,
    customer_id: String,
    starts_at: String,
    ends_at: String,
    price: MoneyView,
    #[schema(value_type = String, example = "PENDING")]
    status: &'static str,
    hold_expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry_pass_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registered_at: Option<String>,
    created_at: String,
    updated_at: String,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl From<Booking> for BookingView {
    fn from(b: Booking) -> Self {
        let registration = b.registration();
        Self {
            reservation_id: b.reservation_id().to_string(),
            seat_id: b.seat_id().to_string(),
            customer_id: b.customer_id().to_string(),
            starts_at: rfc3339(b.window().starts_at()),
            ends_at: rfc3339(b.window().ends_at()),
            price: MoneyView {
                amount: b.price().won(),
                currency: "KRW",
            },
            status: b.status().as_str(),
            hold_expires_at: rfc3339(b.hold_expires_at()),
            decided_by: b.decided_by().map(|d| d.as_str().to_owned()),
            reason: b.reason().map(str::to_owned),
            registration_id: registration.map(|r| r.id().to_string()),
            entry_pass_code: registration.map(|r| r.entry_pass_code().to_string()),
            registered_at: registration.map(|r| rfc3339(r.registered_at())),
            created_at: rfc3339(b.created_at()),
            updated_at: rfc3339(b.updated_at()),
        }
    }
}

/// A page of bookings.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Bookings)]
struct BookingsView {
    bookings: Vec<BookingView>,
}

/// The cafe's auto-confirm policy.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Policy)]
struct PolicyView {
    cafe_id: String,
    auto_confirm: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<String>,
}

impl From<AutoConfirmPolicy> for PolicyView {
    fn from(p: AutoConfirmPolicy) -> Self {
        Self {
            cafe_id: p.cafe_id.to_string(),
            auto_confirm: p.auto_confirm,
            updated_by: p.updated_by.map(|by| by.to_string()),
            updated_at: p.updated_at.map(rfc3339),
        }
    }
}

fn parse_reservation_id(raw: &str) -> Result<ReservationId, Problem> {
    ReservationId::parse(raw).map_err(|e| Problem::validation("reservationId", e.to_string()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only bookings in this state.
    #[param(value_type = Option<String>, pattern = "^(pending|confirmed|rejected|registered|cancelled)$", example = "pending")]
    status: Option<String>,
    /// At most this many (1 to 500; a larger number, up to 2³²−1, is capped at 500).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64, example = 100)]
    limit: Option<String>,
}

/// Bookings, newest first, optionally of one state.
#[utoipa::path(
    get,
    path = "/api/admin/bookings",
    tag = "admin",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of bookings", body = BookingsView),
        (status = 400, description = "`status` or `limit` is invalid (`field` names it)"),
    ),
)]
async fn list_bookings<S: BookingStore>(
    AdminCaller(_admin): AdminCaller,
    State(state): State<ApiState<S>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<BookingsView>, ApiError> {
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let status = match query.status.as_deref() {
        None => None,
        Some(raw) => Some(BookingStatus::parse(raw).ok_or_else(|| {
            Problem::validation(
                "status",
                format!(
                    "status {:?} is not one of pending, confirmed, rejected, registered, cancelled",
                    raw.chars().take(32).collect::<String>()
                ),
            )
        })?),
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                Problem::validation(
                    "limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?
            .min(MAX_LIMIT),
    };
    let bookings = state.service.bookings(status, limit).await?;
    Ok(Json(BookingsView {
        bookings: bookings.into_iter().map(BookingView::from).collect(),
    }))
}

/// One booking.
#[utoipa::path(
    get,
    path = "/api/admin/bookings/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The reservation's id")),
    responses(
        (status = 200, description = "The booking", body = BookingView),
        (status = 404, description = "No such booking"),
        (status = 400, description = "The id is not a reservation id (`field` names it)"),
    ),
)]
async fn get_booking<S: BookingStore>(
    AdminCaller(_admin): AdminCaller,
    State(state): State<ApiState<S>>,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, ApiError> {
    let id = parse_reservation_id(&id)?;
    Ok(Json(state.service.booking(id).await?.into()))
}

/// Confirms a pending booking (registration follows once it is paid).
#[utoipa::path(
    post,
    path = "/api/admin/bookings/{id}/confirm",
    tag = "admin",
    params(("id" = String, Path, description = "The reservation's id")),
    responses(
        (status = 200, description = "The confirmed booking", body = BookingView),
        (status = 404, description = "No such booking"),
        (status = 409, description = "Not pending, or changed concurrently"),
        (status = 400, description = "The id is not a reservation id (`field` names it)"),
    ),
)]
async fn confirm<S: BookingStore>(
    AdminCaller(admin): AdminCaller,
    State(state): State<ApiState<S>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, ApiError> {
    let id = parse_reservation_id(&id)?;
    let booking = state
        .service
        .confirm(id, admin, &causation_of(&headers))
        .await?;
    Ok(Json(booking.into()))
}

/// Why a booking is rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = Rejection)]
struct RejectBody {
    /// Optional here so that a missing reason is the same rule violation (422) as an empty
    /// one, not a malformed body.
    #[serde(default)]
    reason: Option<String>,
}

/// Rejects a pending booking, with a reason the customer is told.
#[utoipa::path(
    post,
    path = "/api/admin/bookings/{id}/reject",
    tag = "admin",
    params(("id" = String, Path, description = "The reservation's id")),
    request_body(content = Option<RejectBody>, description = "The reason (an empty body is a missing reason: 422)"),
    responses(
        (status = 200, description = "The rejected booking", body = BookingView),
        (status = 404, description = "No such booking"),
        (status = 409, description = "Not pending, or changed concurrently"),
        (status = 400, description = "The body is not JSON, or the id is not a reservation id"),
        (status = 422, description = "No reason given"),
    ),
)]
async fn reject<S: BookingStore>(
    AdminCaller(admin): AdminCaller,
    State(state): State<ApiState<S>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<BookingView>, ApiError> {
    let id = parse_reservation_id(&id)?;
    // An empty body is a rejection without a reason (422); a body that is not JSON is
    // malformed (400).
    let body: RejectBody = if body.iter().all(u8::is_ascii_whitespace) {
        RejectBody { reason: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::bad_request(format!(
                "the body must be JSON like {{\"reason\": \"…\"}}: {e}"
            ))
        })?
    };
    let reason =
        RejectionReason::parse(body.reason.as_deref().unwrap_or_default()).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-reason",
                "Rejection reason required",
                e.to_string(),
            )
            .with("field", "reason")
        })?;
    let booking = state
        .service
        .reject(id, admin, reason, &causation_of(&headers))
        .await?;
    Ok(Json(booking.into()))
}

/// The cafe's auto-confirm policy.
#[utoipa::path(
    get,
    path = "/api/admin/policy",
    tag = "admin",
    responses((status = 200, description = "The policy", body = PolicyView)),
)]
async fn get_policy<S: BookingStore>(
    AdminCaller(_admin): AdminCaller,
    State(state): State<ApiState<S>>,
) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(state.service.policy().await?.into()))
}

/// The new auto-confirm policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PolicyChange)]
struct PolicyBody {
    auto_confirm: bool,
}

/// Turns auto-confirmation on or off.
#[utoipa::path(
    put,
    path = "/api/admin/policy",
    tag = "admin",
    request_body = PolicyBody,
    responses((status = 200, description = "The policy now", body = PolicyView)),
)]
async fn put_policy<S: BookingStore>(
    AdminCaller(admin): AdminCaller,
    State(state): State<ApiState<S>>,
    Json(body): Json<PolicyBody>,
) -> Result<Json<PolicyView>, ApiError> {
    let policy = state.service.set_policy(body.auto_confirm, admin).await?;
    Ok(Json(policy.into()))
}
