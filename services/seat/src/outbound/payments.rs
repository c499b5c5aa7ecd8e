//! Adapters of the payment port: the payment service over HTTP, behind a circuit breaker.
//!
//! This is the one synchronous call between services in the saga, so it is the one place
//! where a slow or dead neighbour could hurt seat. Each attempt has its own timeout; failures
//! feed a [`CircuitBreaker`] that, once open, answers "unavailable" without calling. Either
//! way the domain sees [`PaymentUnavailable`] and keeps the reservation CONFIRMED with payment
//! pending; the timers retry with backoff. The reservation id is the idempotency key, so a
//! retry after a timeout whose charge did go through is answered from payment's records.
//!
//! What counts against the breaker is payment's health only: connection errors, timeouts and
//! 5xx. A missing service token (identity down) or a 401 is reported unavailable but does not
//! open the breaker, since payment itself may be fine.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use studycafe_platform::{breaker::CircuitBreaker, client_credentials::ServiceToken};

use crate::{
    domain::ports::{PaymentOutcome, PaymentRequest, PaymentUnavailable, Payments},
    outbound::published_language::money,
};

#[derive(Debug)]
pub struct HttpPayments {
    http: reqwest::Client,
    pay_url: String,
    token: ServiceToken,
    breaker: CircuitBreaker,
    attempt_timeout: Duration,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PayBody<'a> {
    reservation_id: String,
    customer_id: &'a str,
    amount: shared_events::Money,
    payment_token: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayAnswer {
    payment_id: String,
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

impl HttpPayments {
    /// `base_url` is payment's root (`http://host:port`); the call goes to
    /// `/internal/payments`.
    pub fn new(
        base_url: &str,
        token: ServiceToken,
        breaker: CircuitBreaker,
        http: reqwest::Client,
        attempt_timeout: Duration,
    ) -> Self {
        Self {
            http,
            pay_url: format!("{}/internal/payments", base_url.trim_end_matches('/')),
            token,
            breaker,
            attempt_timeout,
        }
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl Payments for HttpPayments {
    async fn pay(&self, request: PaymentRequest) -> Result<PaymentOutcome, PaymentUnavailable> {
        let permit = self
            .breaker
            .acquire()
            .map_err(|open| PaymentUnavailable(open.to_string()))?;
        let bearer = match self.token.bearer().await {
            Ok(bearer) => bearer,
            Err(e) => {
                // Not payment's fault: leave the breaker as it was.
                drop(permit);
                return Err(PaymentUnavailable(format!("no service token: {e}")));
            }
        };
        let body = PayBody {
            reservation_id: request.reservation_id.to_string(),
            customer_id: request.customer_id.as_str(),
            amount: money(request.amount.won()),
            payment_token: request.token.expose(),
        };
        let sent = self
            .http
            .post(&self.pay_url)
            .bearer_auth(bearer)
            .json(&body)
            .timeout(self.attempt_timeout)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                permit.failure();
                let what = if e.is_timeout() {
                    format!("no answer within {:?}", self.attempt_timeout)
                } else {
                    format!("unreachable: {e}")
                };
                return Err(PaymentUnavailable(what));
            }
        };
        let status = response.status();
        if status.is_server_error() {
            permit.failure();
            let detail = response.text().await.unwrap_or_default();
            return Err(PaymentUnavailable(format!(
                "payment answered {status}: {}",
                detail.chars().take(200).collect::<String>()
            )));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            drop(permit);
            self.token.invalidate().await;
            return Err(PaymentUnavailable(format!(
                "payment refused seat's credentials ({status})"
            )));
        }
        if !status.is_success() {
            // 400/409/422: payment will never take this request as it is; retrying would
            // hold the seat until the hold runs out for nothing.
            permit.success();
            let detail = response.text().await.unwrap_or_default();
            tracing::error!(reservation_id = %request.reservation_id, %status, detail = %detail.chars().take(300).collect::<String>(), "payment refused the request");
            return Ok(PaymentOutcome::Declined {
                reason: format!("payment refused the request ({status})"),
            });
        }
        let answer: PayAnswer = match response.json().await {
            Ok(answer) => answer,
            Err(e) => {
                permit.failure();
                return Err(PaymentUnavailable(format!("unreadable answer: {e}")));
            }
        };
        permit.success();
        match answer.status.as_str() {
            "COMPLETED" => Ok(PaymentOutcome::Approved {
                payment_id: answer.payment_id,
            }),
            "DECLINED" => Ok(PaymentOutcome::Declined {
                reason: answer.reason.unwrap_or_else(|| "declined".into()),
            }),
            other => Err(PaymentUnavailable(format!(
                "payment answered an unknown status {other:?}"
            ))),
        }
    }
}
