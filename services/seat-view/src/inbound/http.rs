//! The seat-view REST API: the seat board (anonymous), its live stream (anonymous), and the
//! caller's reservations (token required).
//!
//! Input is parsed into domain types here, at the edge; every failure becomes a
//! `problem+json` response through [`ApiError`].

use std::sync::Arc;

use axum::{
    Router,
    extract::{FromRef, Query, State, rejection::QueryRejection},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use studycafe_platform::{
    Problem,
    auth::{Caller, JwtVerifier},
    openapi::{DocumentedRouter, Security},
    problem::Json,
};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

use crate::{
    application::{BoardError, TimelineError, ViewService},
    domain::{
        BoardSeat, CustomerId, ExternalRef, Money, PageLimit, TimelineEntry,
        ports::{StoreError, ViewStore},
    },
    outbound::feed::BroadcastFeed,
};

#[derive(Debug)]
pub struct ApiState<S> {
    pub service: ViewService<S>,
    pub verifier: Arc<JwtVerifier>,
    pub feed: BroadcastFeed,
    /// Cancelled on shutdown: ends the open board streams.
    pub shutdown: CancellationToken,
}

impl<S: Clone> Clone for ApiState<S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            verifier: self.verifier.clone(),
            feed: self.feed.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<S> FromRef<ApiState<S>> for Arc<JwtVerifier> {
    fn from_ref(state: &ApiState<S>) -> Self {
        state.verifier.clone()
    }
}

pub fn routes<S: ViewStore>(state: ApiState<S>) -> Router {
    let (router, _) = DocumentedRouter::new(
        "seat-view",
        "The seat board, its live stream, and each customer's own reservations.",
    )
    .route(__path_board, board::<S>, Security::Anonymous)
    .route(__path_board_stream, board_stream::<S>, Security::Anonymous)
    .route(
        __path_my_reservations,
        my_reservations::<S>,
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
    Board(#[from] BoardError),
    #[error(transparent)]
    Timeline(#[from] TimelineError),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }
}

fn unavailable(e: &StoreError) -> Problem {
    tracing::error!(error = %e, "view store unavailable");
    Problem::unavailable("the seat views are unavailable; try again shortly")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::Problem(problem) => *problem,
            ApiError::Board(BoardError::Store(e)) => unavailable(&e),
            ApiError::Timeline(TimelineError::Store(e)) => unavailable(&e),
        };
        problem.into_response()
    }
}

fn query_problem(rejection: QueryRejection) -> Problem {
    Problem::bad_request(format!(
        "the query string is malformed: {}",
        rejection.body_text()
    ))
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
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

impl From<Money> for MoneyView {
    fn from(money: Money) -> Self {
        Self {
            amount: money.won(),
            currency: "KRW",
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct BoardQuery {
    /// The instant to show (RFC 3339 with an offset); now if absent.
    #[param(example = "2030-01-01T09:00:00Z")]
    at: Option<String>,
}

/// Every seat's state at one instant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Board)]
struct BoardView {
    at: String,
    seats: Vec<BoardSeatView>,
}

/// One seat on the board. Deliberately nothing about who holds it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BoardSeat)]
struct BoardSeatView {
    #[schema(example = "A-01")]
    seat_id: String,
    zone: String,
    #[schema(example = "open-desk")]
    kind: String,
    hourly_price: MoneyView,
    #[schema(value_type = String, example = "FREE")]
    status: &'static str,
    /// When the current state ends, if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
}

impl From<BoardSeat> for BoardSeatView {
    fn from(s: BoardSeat) -> Self {
        Self {
            seat_id: s.seat.id.to_string(),
            zone: s.seat.zone,
            kind: s.seat.kind.to_string(),
            hourly_price: s.seat.hourly_price.into(),
            status: s.status.as_str(),
            until: s.until.map(ts),
        }
    }
}

/// The seat board: every seat and whether it is free at an instant.
#[utoipa::path(
    get,
    path = "/api/board",
    tag = "board",
    params(BoardQuery),
    responses(
        (status = 200, description = "The board", body = BoardView),
        (status = 400, description = "`at` is not an RFC 3339 instant (`field` names it)"),
    ),
)]
async fn board<S: ViewStore>(
    State(state): State<ApiState<S>>,
    query: Result<Query<BoardQuery>, QueryRejection>,
) -> Result<Json<BoardView>, ApiError> {
    let Query(query) = query.map_err(query_problem)?;
    let at = match query.at.as_deref().map(str::trim) {
        None | Some("") => Utc::now(),
        Some(raw) => parse_instant(raw)
            .map_err(|e| {
                Problem::validation(
                    "at",
                    format!("at must be an RFC 3339 timestamp with offset (e.g. 2030-01-01T09:00:00Z): {e}"),
                )
            })?
            .with_timezone(&Utc),
    };
    let board = state.service.board(at).await?;
    Ok(Json(BoardView {
        at: ts(board.at),
        seats: board.seats.into_iter().map(BoardSeatView::from).collect(),
    }))
}

/// An RFC 3339 instant. A `+hh:mm` offset written unencoded in a URL arrives with its `+`
/// turned into a space (form encoding); that one case is read as meant.
fn parse_instant(raw: &str) -> Result<DateTime<chrono::FixedOffset>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(raw).or_else(|e| {
        let split = raw
            .len()
            .checked_sub(6)
            .filter(|&i| raw.is_char_boundary(i));
        match split.map(|i| raw.split_at(i)) {
            Some((time, offset)) if offset.starts_with(' ') => {
                DateTime::parse_from_rfc3339(&format!("{time}+{}", &offset[1..]))
            }
            _ => Err(e),
        }
    })
}

/// The board's changes as server-sent events (one `seat` event per change).
#[utoipa::path(
    get,
    path = "/api/board/stream",
    tag = "board",
    responses(
        (status = 200, description = "An endless event stream", content_type = "text/event-stream", body = String),
    ),
)]
async fn board_stream<S: ViewStore>(State(state): State<ApiState<S>>) -> Response {
    super::stream::board_stream(&state.feed, state.shutdown.clone()).into_response()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TimelineQuery {
    /// At most this many (1 to 200; 50 if absent).
    #[param(value_type = Option<u16>, minimum = 1, maximum = 200, example = 50)]
    limit: Option<String>,
}

/// The caller's reservations, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MyReservations)]
struct TimelineView {
    reservations: Vec<ReservationView>,
}

/// One reservation and what became of it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MyReservation)]
struct ReservationView {
    reservation_id: String,
    seat_id: String,
    starts_at: String,
    ends_at: String,
    hours: u8,
    /// Null only if neither the reservation nor its payment was ever seen.
    price: Option<MoneyView>,
    #[schema(value_type = String, example = "REGISTERED")]
    status: &'static str,
    /// Null only if the reservation's `SeatReserved` was never seen.
    hold_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    booking_decision: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    payment_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    refund_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_amount: Option<MoneyView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    registration_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry_pass_code: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<TimelineEntry> for ReservationView {
    fn from(entry: TimelineEntry) -> Self {
        let updated_at = ts(entry.updated_at());
        let TimelineEntry {
            reservation: r,
            details,
        } = entry;
        let d = details.as_ref();
        let text = |v: Option<&ExternalRef>| v.map(ExternalRef::to_string);
        Self {
            reservation_id: r.reference.id.to_string(),
            seat_id: r.reference.seat_id.to_string(),
            starts_at: ts(r.reference.window.starts_at()),
            ends_at: ts(r.reference.window.ends_at()),
            hours: r.hours,
            price: r.price.map(MoneyView::from),
            status: r.status.as_str(),
            hold_expires_at: r.hold_expires_at.map(ts),
            reason: r.reason,
            booking_decision: d.and_then(|d| d.booking).map(|b| b.as_str()),
            payment_status: d.and_then(|d| d.payment_status).map(|s| s.as_str()),
            payment_id: text(
                d.and_then(|d| d.payment_id.as_ref())
                    .or(r.payment_id.as_ref()),
            ),
            refund_status: d.and_then(|d| d.refund_id.as_ref()).map(|_| "REFUNDED"),
            refund_amount: d.and_then(|d| d.refund_amount).map(MoneyView::from),
            registration_status: d.and_then(|d| d.registration_status).map(|s| s.as_str()),
            registration_id: text(
                d.and_then(|d| d.registration_id.as_ref())
                    .or(r.registration_id.as_ref()),
            ),
            entry_pass_code: text(d.and_then(|d| d.entry_pass_code.as_ref())),
            created_at: ts(r.created_at),
            updated_at,
        }
    }
}

/// The caller's own reservations.
#[utoipa::path(
    get,
    path = "/api/my/reservations",
    tag = "reservations",
    params(TimelineQuery),
    responses(
        (status = 200, description = "The caller's reservations", body = TimelineView),
        (status = 400, description = "`limit` is invalid (`field` names it)"),
    ),
)]
async fn my_reservations<S: ViewStore>(
    State(state): State<ApiState<S>>,
    caller: Caller,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<TimelineView>, ApiError> {
    let customer =
        CustomerId::parse(&caller.user_id).map_err(|e| Problem::unauthorized(e.to_string()))?;
    let Query(query) = query.map_err(query_problem)?;
    let limit = match query.limit.as_deref().map(str::trim) {
        None => PageLimit::DEFAULT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .and_then(|n| PageLimit::new(n).ok())
            .ok_or_else(|| {
                Problem::validation(
                    "limit",
                    format!("limit must be a whole number from 1 to {}", PageLimit::MAX),
                )
            })?,
    };
    let entries = state.service.reservations_of(&customer, limit).await?;
    Ok(Json(TimelineView {
        reservations: entries.into_iter().map(ReservationView::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_with_an_offset_whose_plus_became_a_space() {
        let expected = parse_instant("2030-01-01T10:00:00+09:00").unwrap();
        assert_eq!(
            parse_instant("2030-01-01T10:00:00 09:00").unwrap(),
            expected
        );
        assert_eq!(
            parse_instant("2030-01-01T01:00:00Z").unwrap(),
            expected.with_timezone(&Utc)
        );
        assert!(parse_instant("2030-01-01T10:00:00 9:00").is_err());
        assert!(parse_instant("tomorrow").is_err());
        assert!(parse_instant("").is_err());
    }
}
