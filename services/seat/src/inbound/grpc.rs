//! The seat service's gRPC API (`studycafe.seat.v1`), a second driving adapter next to REST.
//!
//! It calls the same use cases as [`super::http`] with the same input parsing
//! ([`super::commands`]), the same token checks (the service's one [`JwtVerifier`]) and the same
//! limit on detached writes, so the two APIs cannot disagree on what a request means. Failures
//! carry the rich error model: `google.rpc.ErrorInfo` whose reason is the REST problem type in
//! UPPER_SNAKE_CASE, and `google.rpc.BadRequest` field violations for bad input.

use std::{collections::HashMap, sync::Arc};

use studycafe_platform::{
    Problem,
    auth::{AuthError, Caller, JwtVerifier, Role},
    detach::Detached,
    inbound::{self, REQUEST_ID_KEY},
};
use tonic::{Code, Request, Response, Status, metadata::MetadataMap};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::{
    application::{Actor, CancelError, ReservationService, ReserveError, ViewError},
    domain::{
        Reservation, ReservationStatus, SeatId,
        ports::{ReservationStore, StoreError},
    },
    inbound::{
        commands::{self, Field, KeyInput, RawReservation},
        failure::Failure,
    },
    queries::{self, ReservationQueries},
};

/// The generated messages, server and client.
pub mod pb {
    #![allow(missing_docs, missing_debug_implementations, clippy::all)]
    tonic::include_proto!("studycafe.seat.v1");

    /// The encoded descriptors, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("seat_descriptor");
}

use pb::seat_reservations_server::{SeatReservations, SeatReservationsServer};

/// The `ErrorInfo` domain of every error this API reports.
pub const ERROR_DOMAIN: &str = "seat.studycafe";

const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Debug)]
pub struct GrpcApi<S> {
    pub service: ReservationService<S>,
    pub queries: S,
    pub verifier: Arc<JwtVerifier>,
    /// Shared with REST: writes run detached from their client, within one limit.
    pub detached: Detached,
}

impl<S> GrpcApi<S>
where
    S: ReservationStore + ReservationQueries,
{
    pub fn into_server(self) -> SeatReservationsServer<Self> {
        SeatReservationsServer::new(self)
    }

    async fn caller(&self, metadata: &MetadataMap) -> Result<Caller, Status> {
        let authorization = metadata.get("authorization").and_then(|v| v.to_str().ok());
        self.verifier
            .caller(authorization)
            .await
            .map_err(auth_status)
    }

    async fn actor(&self, metadata: &MetadataMap) -> Result<Actor, Status> {
        let caller = self.caller(metadata).await?;
        commands::actor_of(&caller).map_err(unauthenticated)
    }
}

fn causation_of(metadata: &MetadataMap) -> String {
    inbound::causation(metadata.get(REQUEST_ID_KEY).and_then(|v| v.to_str().ok()))
}

#[tonic::async_trait]
impl<S> SeatReservations for GrpcApi<S>
where
    S: ReservationStore + ReservationQueries,
{
    async fn reserve(
        &self,
        request: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::ReserveResponse>, Status> {
        let caller = self.caller(request.metadata()).await?;
        caller.require(Role::Customer).map_err(problem_status)?;
        let customer = commands::actor_of(&caller).map_err(unauthenticated)?.user;
        let key = match request.metadata().get(IDEMPOTENCY_KEY) {
            None => KeyInput::Absent,
            Some(value) => value.to_str().map_or(KeyInput::Unreadable, KeyInput::Given),
        };
        let causation = causation_of(request.metadata());
        let body = request.get_ref();
        let command = commands::reserve_command(
            customer,
            RawReservation {
                seat_id: &body.seat_id,
                starts_at: &body.starts_at,
                hours: body.hours,
                payment_token: &body.payment_token,
            },
            key,
            causation,
        )
        .map_err(|v| failure_status(Failure::invalid(&v)))?;
        let service = self.service.clone();
        let reserved = self
            .detached
            .run(async move { service.reserve(command).await })
            .await
            .map_err(problem_status)?
            .map_err(|e| reserve_status(&e))?;
        Ok(Response::new(pb::ReserveResponse {
            reservation_id: reserved.reservation_id.to_string(),
            status: reserved.status.as_str().to_owned(),
            replayed: reserved.replayed,
        }))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let actor = self.actor(request.metadata()).await?;
        let id = commands::reservation_id(&request.get_ref().reservation_id).map_err(not_found)?;
        let reservation = self
            .service
            .get(&actor, id)
            .await
            .map_err(|e| view_status(&e))?;
        Ok(Response::new(reservation_message(reservation)))
    }

    async fn cancel_reservation(
        &self,
        request: Request<pb::CancelReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let actor = self.actor(request.metadata()).await?;
        let id = commands::reservation_id(&request.get_ref().reservation_id).map_err(not_found)?;
        let causation = causation_of(request.metadata());
        let service = self.service.clone();
        let reservation = self
            .detached
            .run(async move { service.cancel(&actor, id, &causation).await })
            .await
            .map_err(problem_status)?
            .map_err(|e| cancel_status(&e))?;
        Ok(Response::new(reservation_message(reservation)))
    }

    async fn list_my_reservations(
        &self,
        request: Request<pb::ListMyReservationsRequest>,
    ) -> Result<Response<pb::ListMyReservationsResponse>, Status> {
        let actor = self.actor(request.metadata()).await?;
        let reservations =
            queries::my_reservations(&self.queries, &actor, request.get_ref().page_size)
                .await
                .map_err(|e| unavailable(&e))?;
        Ok(Response::new(pb::ListMyReservationsResponse {
            reservations: reservations.into_iter().map(reservation_message).collect(),
        }))
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn reservation_message(r: Reservation) -> pb::Reservation {
    pb::Reservation {
        reservation_id: r.id().to_string(),
        seat_id: r.seat_id().to_string(),
        customer_id: r.customer_id().to_string(),
        starts_at: rfc3339(r.window().starts_at()),
        ends_at: rfc3339(r.window().ends_at()),
        hours: u32::from(r.window().hours()),
        price: Some(pb::Money {
            amount: r.price().won(),
            currency: "KRW".to_owned(),
        }),
        status: r.status().as_str().to_owned(),
        status_reason: r.status_reason().map(str::to_owned),
        hold_expires_at: rfc3339(r.hold_expires_at()),
        payment_pending: r.status() == ReservationStatus::Confirmed,
        payment_attempts: r.payment().attempts(),
        payment_id: r.payment().payment_id().map(str::to_owned),
        // Kept while CONFIRMED until the payment is seen (`Reservation::register`).
        registration_id: r
            .registration_id()
            .filter(|_| r.status() != ReservationStatus::Confirmed)
            .map(str::to_owned),
        created_at: rfc3339(r.created_at()),
        updated_at: rfc3339(r.updated_at()),
    }
}

/// A status with `ErrorInfo` (reason: `slug` as UPPER_SNAKE_CASE, so `seat-taken` is
/// `SEAT_TAKEN`, the REST problem type of the same failure) and, given a field, a
/// `BadRequest` violation of it.
fn status(code: Code, slug: &str, message: String, field: Option<&str>) -> Status {
    detailed(code, slug, message, field, None)
}

/// A use case's failure (see [`super::failure`]) as a status.
fn failure_status(failure: Failure) -> Status {
    detailed(
        failure.kind.grpc(),
        failure.slug,
        failure.detail,
        failure.field.map(Field::proto_name),
        failure.seat.as_ref().map(SeatId::as_str),
    )
}

/// [`status`], with the seat concerned in the `ErrorInfo` metadata as `seatId`.
fn detailed(
    code: Code,
    slug: &str,
    message: String,
    field: Option<&str>,
    seat: Option<&str>,
) -> Status {
    let reason = slug.to_uppercase().replace('-', "_");
    let mut metadata = HashMap::new();
    if let Some(field) = field {
        metadata.insert("field".to_owned(), field.to_owned());
    }
    if let Some(seat) = seat {
        metadata.insert("seatId".to_owned(), seat.to_owned());
    }
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    if let Some(field) = field {
        details.add_bad_request_violation(field, message.clone());
    }
    Status::with_error_details(code, message, details)
}

fn unauthenticated(detail: String) -> Status {
    status(Code::Unauthenticated, "unauthorized", detail, None)
}

fn not_found(detail: String) -> Status {
    status(Code::NotFound, "not-found", detail, None)
}

fn auth_status(e: AuthError) -> Status {
    match e {
        AuthError::KeysUnavailable(_) => {
            tracing::error!(error = %e, "cannot verify tokens");
            status(
                Code::Unavailable,
                "unavailable",
                "tokens cannot be verified right now".to_owned(),
                None,
            )
        }
        other => unauthenticated(other.to_string()),
    }
}

/// A problem from the shared platform (role checks, the detached-write limit).
fn problem_status(problem: Problem) -> Status {
    let code = match problem.status_code().as_u16() {
        400 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        _ => Code::Internal,
    };
    let slug = problem.problem_type.trim_start_matches("/problems/");
    status(code, slug, problem.detail, None)
}

fn unavailable(e: &StoreError) -> Status {
    failure_status(Failure::unavailable(e))
}

fn reserve_status(e: &ReserveError) -> Status {
    failure_status(Failure::from(e))
}

fn view_status(e: &ViewError) -> Status {
    failure_status(Failure::from(e))
}

fn cancel_status(e: &CancelError) -> Status {
    failure_status(Failure::from(e))
}
