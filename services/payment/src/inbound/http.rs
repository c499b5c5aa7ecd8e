//! The payment service's REST API.
//!
//! - `POST /internal/payments` — seat's synchronous "pay" call (role `service` only).
//! - `GET /api/payments?reservationId=` — a reservation's payments and refunds (owner, admin).
//!
//! `pay` runs detached from its client ([`studycafe_platform::detach`]): once the card
//! processor has been asked, the answer is recorded even if seat hangs up meanwhile.
//!
//! Every failure is `application/problem+json`, mapped in one place ([`ApiError`]). Note for
//! the 4xx/5xx split: seat treats 400/409/422 as a final "no" and 5xx as "try again later", so
//! anything transient (provider down, store busy, contention) must be a 503.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    extract::{FromRef, Query, State, rejection::QueryRejection},
    handler::Handler as _,
    http::{HeaderMap, StatusCode},
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

use crate::application::{Actor, Pay, PayError, PaymentRecord, PaymentService, ViewError};
use crate::domain::{
    ChargeRequest, CustomerId, Money, Payment, PaymentToken, Refund, ReservationId,
    ports::{CardProvider, PaymentStore, StoreError},
};

#[derive(Debug)]
pub struct ApiState<S, P> {
    pub service: PaymentService<S, P>,
    pub verifier: Arc<JwtVerifier>,
}

impl<S: Clone, P> Clone for ApiState<S, P> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            verifier: self.verifier.clone(),
        }
    }
}

impl<S, P> FromRef<ApiState<S, P>> for Arc<JwtVerifier> {
    fn from_ref(state: &ApiState<S, P>) -> Self {
        state.verifier.clone()
    }
}

/// The API; `pay` runs on `detached`.
pub fn routes<S: PaymentStore, P: CardProvider>(
    state: ApiState<S, P>,
    detached: &Detached,
) -> Router {
    let detached = middleware::from_fn_with_state(detached.clone(), detach);
    // The internal route is documented too (seat's contract); the gateway never routes it.
    let (router, _) = DocumentedRouter::new("payment", "Payments and refunds of reservations.")
        .route(__path_pay, pay::<S, P>.layer(detached), Security::Service)
        .route(__path_payments_of, payments_of::<S, P>, Security::Bearer)
        .finish();
    router.with_state(state)
}

/// Every way a request can fail, mapped to `problem+json` in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Problem(#[from] Box<Problem>),
    #[error(transparent)]
    Pay(#[from] PayError),
    #[error(transparent)]
    View(#[from] ViewError),
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self::Problem(Box::new(problem))
    }
}

fn store_unavailable(e: &StoreError) -> Problem {
    tracing::error!(error = %e, "store unavailable");
    Problem::unavailable("the payment store is unavailable; try again shortly").retry_after(1)
}

/// A well-formed request whose values break a rule (422).
fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-value",
        "Invalid value",
        detail,
    )
    .with("field", field)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            ApiError::Problem(problem) => *problem,
            ApiError::Pay(e) => match &e {
                PayError::Mismatch(_) => Problem::new(
                    StatusCode::CONFLICT,
                    "payment-conflict",
                    "Reservation already paid differently",
                    e.to_string(),
                ),
                PayError::ProviderUnavailable {
                    payment,
                    reservation,
                    ..
                } => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "provider-unavailable",
                    "Card processor unavailable",
                    format!(
                        "the card processor did not answer; payment of reservation {reservation} is pending, retry with the same request"
                    ),
                )
                .with("paymentId", payment.id().to_string())
                .with("paymentStatus", payment.status().as_str())
                .retry_after(1),
                PayError::Contended(_) | PayError::InProgress(_) | PayError::Interrupted(_) => Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "try-again",
                    "Try again",
                    e.to_string(),
                )
                .retry_after(1),
                PayError::Store(s) => store_unavailable(s),
            },
            ApiError::View(e) => match &e {
                ViewError::NotFound(_) => Problem::not_found(e.to_string()),
                ViewError::Forbidden(_) => Problem::forbidden(e.to_string()),
                ViewError::Store(s) => store_unavailable(s),
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

impl From<Money> for MoneyView {
    fn from(money: Money) -> Self {
        Self {
            amount: money.amount(),
            currency: money.currency().as_str(),
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The amount to charge.
#[derive(Deserialize, ToSchema)]
#[schema(as = ChargeAmount)]
struct AmountBody {
    amount: i64,
    currency: String,
}

/// Seat's request. Unknown fields are tolerated (a newer seat may send more). No `Debug`: it
/// holds the payment token.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PayRequest)]
struct PayBody {
    reservation_id: String,
    customer_id: String,
    amount: AmountBody,
    payment_token: String,
}

impl PayBody {
    fn parse(self) -> Result<ChargeRequest, Problem> {
        Ok(ChargeRequest {
            reservation_id: ReservationId::parse(&self.reservation_id)
                .map_err(|e| invalid("reservationId", e.to_string()))?,
            customer_id: CustomerId::parse(&self.customer_id)
                .map_err(|e| invalid("customerId", e.to_string()))?,
            amount: Money::parse(self.amount.amount, &self.amount.currency)
                .map_err(|e| invalid("amount", e.to_string()))?,
            token: PaymentToken::parse(&self.payment_token)
                .map_err(|e| invalid("paymentToken", e.to_string()))?,
        })
    }
}

/// The outcome of a charge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PayOutcome)]
struct PayAnswer {
    payment_id: String,
    reservation_id: String,
    #[schema(value_type = String, example = "COMPLETED")]
    status: &'static str,
    amount: MoneyView,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<Payment> for PayAnswer {
    fn from(p: Payment) -> Self {
        Self {
            payment_id: p.id().to_string(),
            reservation_id: p.reservation_id().to_string(),
            status: p.status().as_str(),
            amount: p.amount().into(),
            reason: p.decline_reason().map(str::to_owned),
        }
    }
}

/// Seat's synchronous charge of a reservation (idempotent per reservation; role `service`).
#[utoipa::path(
    post,
    path = "/internal/payments",
    tag = "internal",
    request_body = PayBody,
    responses(
        (status = 200, description = "Completed or declined (see `status`)", body = PayAnswer),
        (status = 409, description = "The reservation was already paid differently"),
        (status = 422, description = "A value breaks a rule (`field` names it)"),
    ),
)]
async fn pay<S: PaymentStore, P: CardProvider>(
    State(state): State<ApiState<S, P>>,
    caller: Caller,
    headers: HeaderMap,
    // Taken as a Result so that a caller without the role hears 403 before anything about
    // its body.
    body: Result<Json<PayBody>, Problem>,
) -> Result<Json<PayAnswer>, ApiError> {
    caller.require(Role::Service)?;
    let Json(body) = body?;
    let charge = body.parse()?;
    let payment = state
        .service
        .pay(Pay {
            charge,
            causation: causation_of(&headers),
        })
        .await?;
    Ok(Json(payment.into()))
}

/// A refund of a payment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Refund)]
struct RefundView {
    refund_id: String,
    #[schema(value_type = String, example = "COMPLETED")]
    status: &'static str,
    amount: MoneyView,
    created_at: String,
    updated_at: String,
}

impl From<Refund> for RefundView {
    fn from(r: Refund) -> Self {
        Self {
            refund_id: r.id().to_string(),
            status: r.status().as_str(),
            amount: r.amount().into(),
            created_at: rfc3339(r.created_at()),
            updated_at: rfc3339(r.updated_at()),
        }
    }
}

/// A payment and its refunds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Payment)]
struct PaymentView {
    payment_id: String,
    #[schema(value_type = String, example = "COMPLETED")]
    status: &'static str,
    amount: MoneyView,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    created_at: String,
    updated_at: String,
    refunds: Vec<RefundView>,
}

impl From<PaymentRecord> for PaymentView {
    fn from(record: PaymentRecord) -> Self {
        let p = record.payment;
        Self {
            payment_id: p.id().to_string(),
            status: p.status().as_str(),
            amount: p.amount().into(),
            reason: p.decline_reason().map(str::to_owned),
            created_at: rfc3339(p.created_at()),
            updated_at: rfc3339(p.updated_at()),
            refunds: record.refunds.into_iter().map(RefundView::from).collect(),
        }
    }
}

/// A reservation's payments.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Payments)]
struct PaymentsView {
    reservation_id: String,
    payments: Vec<PaymentView>,
}

/// The query of [`payments_of`] (as documented: the handler reads the raw map, so that a
/// missing id is a `field` problem, not a generic one).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PaymentsQuery {
    /// The reservation whose payments to list.
    #[param(
        rename = "reservationId",
        example = "0198c6d2-4f3a-7b21-9e55-1a2b3c4d5e6f"
    )]
    reservation_id: String,
}

/// A reservation's payments and refunds (its owner's, or any for an admin).
#[utoipa::path(
    get,
    path = "/api/payments",
    tag = "payments",
    params(PaymentsQuery),
    responses(
        (status = 200, description = "The payments, oldest first", body = PaymentsView),
        (status = 400, description = "`reservationId` is missing or not a reservation id"),
        (status = 403, description = "Someone else's reservation"),
        (status = 404, description = "No payment for this reservation"),
    ),
)]
async fn payments_of<S: PaymentStore, P: CardProvider>(
    State(state): State<ApiState<S, P>>,
    caller: Caller,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<PaymentsView>, ApiError> {
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let raw = query
        .get("reservationId")
        .ok_or_else(|| Problem::validation("reservationId", "reservationId is required"))?;
    let reservation = ReservationId::parse(raw)
        .map_err(|e| Problem::validation("reservationId", e.to_string()))?;
    let actor = Actor {
        user: caller.user_id.clone(),
        admin: caller.is_admin(),
    };
    let records = state.service.payments_of(&actor, reservation).await?;
    Ok(Json(PaymentsView {
        reservation_id: reservation.to_string(),
        payments: records.into_iter().map(PaymentView::from).collect(),
    }))
}
