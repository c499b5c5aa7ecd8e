//! `studycafe seat-grpc`: a small client of seat's gRPC API (`studycafe.seat.v1`), the example
//! of calling it, and a way to try it against `studycafe up` without installing grpcurl.
//! Answers print as one JSON object; a refusal prints the status code, message and error
//! details on stderr and exits 1.

use serde_json::{Value, json};
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use crate::exit::UsageError;

pub mod pb {
    #![allow(missing_debug_implementations, clippy::all)]
    tonic::include_proto!("studycafe.seat.v1");
}

use pb::seat_reservations_client::SeatReservationsClient;

#[derive(Debug, clap::Subcommand)]
pub enum Call {
    /// Reserve a seat (customers).
    Reserve {
        /// A seat of the catalogue, e.g. A-01.
        #[arg(long)]
        seat: String,
        /// RFC 3339 with an offset, e.g. 2026-12-24T09:00:00Z.
        #[arg(long, value_name = "TIME")]
        starts_at: String,
        #[arg(long)]
        hours: i64,
        #[arg(long, default_value = "tok_approve")]
        payment_token: String,
        /// Sent as `idempotency-key` metadata: a retry with the same key replays the answer.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// One reservation's state (its owner or an admin).
    Get { reservation_id: String },
    /// Cancel a live reservation (its owner or an admin).
    Cancel { reservation_id: String },
    /// The caller's reservations, newest first.
    List {
        #[arg(long, default_value_t = 0)]
        page_size: u32,
    },
}

pub async fn run(addr: &str, token: &str, call: Call) -> anyhow::Result<()> {
    let endpoint = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let channel = Channel::from_shared(endpoint)
        .map_err(|e| UsageError(format!("--addr {addr}: {e}")))?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("connecting to {addr}: {e}"))?;
    let mut client = SeatReservationsClient::new(channel);
    let bearer: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| UsageError("--token: not a valid token".to_owned()))?;
    fn authorized<T>(message: T, bearer: &MetadataValue<tonic::metadata::Ascii>) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        request
    }
    let answer = match call {
        Call::Reserve {
            seat,
            starts_at,
            hours,
            payment_token,
            idempotency_key,
        } => {
            let mut request = authorized(
                pb::ReserveRequest {
                    seat_id: seat,
                    starts_at,
                    hours,
                    payment_token,
                },
                &bearer,
            );
            if let Some(key) = idempotency_key {
                let key = key
                    .parse()
                    .map_err(|_| UsageError("--idempotency-key: visible ASCII only".to_owned()))?;
                request.metadata_mut().insert("idempotency-key", key);
            }
            client.reserve(request).await.map(|r| {
                let r = r.into_inner();
                json!({"reservationId": r.reservation_id, "status": r.status, "replayed": r.replayed})
            })
        }
        Call::Get { reservation_id } => client
            .get_reservation(authorized(
                pb::GetReservationRequest { reservation_id },
                &bearer,
            ))
            .await
            .map(|r| reservation_json(r.into_inner())),
        Call::Cancel { reservation_id } => client
            .cancel_reservation(authorized(
                pb::CancelReservationRequest { reservation_id },
                &bearer,
            ))
            .await
            .map(|r| reservation_json(r.into_inner())),
        Call::List { page_size } => client
            .list_my_reservations(authorized(
                pb::ListMyReservationsRequest { page_size },
                &bearer,
            ))
            .await
            .map(|r| {
                Value::Array(
                    r.into_inner()
                        .reservations
                        .into_iter()
                        .map(reservation_json)
                        .collect(),
                )
            }),
    };
    match answer {
        Ok(value) => {
            println!("{value}");
            Ok(())
        }
        Err(status) => Err(anyhow::anyhow!("{}", refusal(&status))),
    }
}

/// `NotFound: reservation … does not exist [NOT_FOUND] (seat_id: …)`: the code, the message,
/// the `ErrorInfo` reason and any field violations.
fn refusal(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    let details = status.get_error_details();
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(info) = details.error_info() {
        text.push_str(&format!(" [{}]", info.reason));
    }
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            text.push_str(&format!(" ({}: {})", v.field, v.description));
        }
    }
    text
}

fn reservation_json(r: pb::Reservation) -> Value {
    let price = r.price.unwrap_or_default();
    json!({
        "reservationId": r.reservation_id,
        "seatId": r.seat_id,
        "customerId": r.customer_id,
        "startsAt": r.starts_at,
        "endsAt": r.ends_at,
        "hours": r.hours,
        "price": {"amount": price.amount, "currency": price.currency},
        "status": r.status,
        "statusReason": r.status_reason,
        "holdExpiresAt": r.hold_expires_at,
        "paymentPending": r.payment_pending,
        "paymentAttempts": r.payment_attempts,
        "paymentId": r.payment_id,
        "registrationId": r.registration_id,
        "createdAt": r.created_at,
        "updatedAt": r.updated_at,
    })
}
