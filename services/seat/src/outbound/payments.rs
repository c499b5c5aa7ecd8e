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
//!
//! Payment may run several replicas (`SEAT_PAYMENT_URL` with several base URLs): a
//! [`Balancer`] spreads the calls over those in rotation, with the gateway's rule: a call that
//! could not connect goes once to another replica; one that may have arrived is not sent again
//! here (the POST is not idempotent as HTTP goes), the timers' next attempt covers it, and the
//! reservation id as idempotency key makes that one safe. The breaker sees the outcome of the
//! call as a whole, so a replica that refuses connections among live ones does not open it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use studycafe_platform::{
    balancer::{Balancer, CheckSettings, Replicas},
    breaker::CircuitBreaker,
    client_credentials::ServiceToken,
};

use crate::{
    domain::ports::{PaymentOutcome, PaymentRequest, PaymentUnavailable, Payments},
    outbound::published_language::money,
};

#[derive(Debug)]
pub struct HttpPayments {
    http: reqwest::Client,
    payment: Balancer,
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
    /// One payment replica at `base_url` (`http://host:port`); the call goes to
    /// `/internal/payments`.
    pub fn new(
        base_url: &str,
        token: ServiceToken,
        breaker: CircuitBreaker,
        http: reqwest::Client,
        attempt_timeout: Duration,
    ) -> Self {
        Self::over(
            &Replicas::one(base_url),
            CheckSettings::default(),
            token,
            breaker,
            http,
            attempt_timeout,
        )
    }

    /// Payment's replicas at `urls`, balanced; with more than one, [`Self::balancer`]'s
    /// `check_until` must run for their readiness to be followed.
    pub fn over(
        urls: &Replicas,
        check: CheckSettings,
        token: ServiceToken,
        breaker: CircuitBreaker,
        http: reqwest::Client,
        attempt_timeout: Duration,
    ) -> Self {
        Self {
            payment: Balancer::new("payment", urls, check, http.clone()),
            http,
            token,
            breaker,
            attempt_timeout,
        }
    }

    /// The balancer over payment's replicas (to run its readiness checks).
    pub fn balancer(&self) -> &Balancer {
        &self.payment
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
            .payment
            .call(&reqwest::Method::POST, |base| {
                self.http
                    .post(format!("{base}/internal/payments"))
                    .bearer_auth(&bearer)
                    .json(&body)
                    .timeout(self.attempt_timeout)
                    .send()
            })
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
