//! How a use case's failure reads to a caller, decided once for both inbound adapters: its
//! [`Kind`] (which each adapter turns into its own status: [`Kind::http`], [`Kind::grpc`]),
//! its problem type, title and detail, the request field at fault and the seat concerned.
//! REST answers it as `problem+json`; gRPC as a status whose `ErrorInfo` reason is the same
//! problem type in UPPER_SNAKE_CASE, so a client of either API can match the same failures.

use axum::http::StatusCode;
use tonic::Code;

use crate::{
    application::{CancelError, ReserveError, ViewError},
    domain::{SeatId, WindowError, ports::StoreError},
    inbound::commands::{Field, FieldViolation},
};

/// What kind of failure it is, which fixes the status on each API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NotFound,
    Forbidden,
    /// The request itself is malformed: a field that does not parse.
    Malformed,
    /// The request parses but breaks a reservation rule.
    RuleViolated,
    /// The request is fine but cannot be served as the cafe stands (no price for the seat).
    Unservable,
    /// Someone else holds what was asked for.
    Taken,
    /// Not possible in the state the seat or reservation is in.
    WrongState,
    /// Lost a race with a concurrent change; trying again will likely work.
    Contended,
    /// A dependency of this service is down.
    Unavailable,
}

impl Kind {
    pub fn http(self) -> StatusCode {
        match self {
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::Malformed => StatusCode::BAD_REQUEST,
            Kind::RuleViolated | Kind::Unservable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Taken | Kind::WrongState | Kind::Contended => StatusCode::CONFLICT,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn grpc(self) -> Code {
        match self {
            Kind::NotFound => Code::NotFound,
            Kind::Forbidden => Code::PermissionDenied,
            Kind::Malformed | Kind::RuleViolated => Code::InvalidArgument,
            Kind::Unservable | Kind::WrongState => Code::FailedPrecondition,
            Kind::Taken => Code::AlreadyExists,
            Kind::Contended => Code::Aborted,
            Kind::Unavailable => Code::Unavailable,
        }
    }

    /// Seconds after which a retry is worth it, where one is (REST's `Retry-After`; gRPC's
    /// `ABORTED` and `UNAVAILABLE` say as much by their code).
    pub fn retry_after(self) -> Option<u64> {
        matches!(self, Kind::Contended).then_some(1)
    }
}

/// One failure, as both APIs tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    /// The problem type without its `/problems/` prefix: `seat-taken`.
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub field: Option<Field>,
    pub seat: Option<SeatId>,
}

impl Failure {
    fn new(kind: Kind, slug: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            kind,
            slug,
            title,
            detail,
            field: None,
            seat: None,
        }
    }

    fn about(self, field: Field) -> Self {
        Self {
            field: Some(field),
            ..self
        }
    }

    fn of_seat(self, seat: &SeatId) -> Self {
        Self {
            seat: Some(seat.clone()),
            ..self
        }
    }

    pub fn invalid(violation: &FieldViolation) -> Self {
        Self::new(
            Kind::Malformed,
            "invalid-field",
            "Invalid field",
            violation.message.clone(),
        )
        .about(violation.field)
    }

    pub fn not_found(detail: String) -> Self {
        Self::new(Kind::NotFound, "not-found", "Not found", detail)
    }

    fn forbidden(detail: String) -> Self {
        Self::new(Kind::Forbidden, "forbidden", "Forbidden", detail)
    }

    /// The reservation store failed; logged here, since the caller learns only that.
    pub fn unavailable(e: &StoreError) -> Self {
        tracing::error!(error = %e, "store unavailable");
        Self::new(
            Kind::Unavailable,
            "dependency-unavailable",
            "Service unavailable",
            "the reservation store is unavailable; try again shortly".to_owned(),
        )
    }
}

impl From<&ReserveError> for Failure {
    fn from(e: &ReserveError) -> Self {
        let detail = e.to_string();
        match e {
            ReserveError::UnknownSeat(seat) => {
                Self::new(Kind::NotFound, "seat-not-found", "Unknown seat", detail).of_seat(seat)
            }
            ReserveError::SeatDisabled(seat) => Self::new(
                Kind::WrongState,
                "seat-disabled",
                "Seat not available",
                detail,
            )
            .of_seat(seat),
            ReserveError::SeatTaken { seat } => {
                Self::new(Kind::Taken, "seat-taken", "Seat already reserved", detail).of_seat(seat)
            }
            ReserveError::Window(w) => {
                let (slug, field) = match w {
                    WindowError::HoursOutOfRange { .. } => ("hours-out-of-range", Field::Hours),
                    WindowError::StartsInPast { .. } => ("starts-in-past", Field::StartsAt),
                    WindowError::TooFarAhead { .. } => ("starts-too-far-ahead", Field::StartsAt),
                };
                Self::new(
                    Kind::RuleViolated,
                    slug,
                    "Reservation rule violated",
                    detail,
                )
                .about(field)
            }
            ReserveError::IdempotencyKeyReused => Self::new(
                Kind::RuleViolated,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                detail,
            )
            .about(Field::IdempotencyKey),
            ReserveError::Price => Self::new(
                Kind::Unservable,
                "price",
                "Price cannot be computed",
                detail,
            ),
            ReserveError::Store(s) => Self::unavailable(s),
        }
    }
}

impl From<&ViewError> for Failure {
    fn from(e: &ViewError) -> Self {
        match e {
            ViewError::NotFound(_) => Self::not_found(e.to_string()),
            ViewError::Forbidden(_) => Self::forbidden(e.to_string()),
            ViewError::Store(s) => Self::unavailable(s),
        }
    }
}

impl From<&CancelError> for Failure {
    fn from(e: &CancelError) -> Self {
        let detail = e.to_string();
        match e {
            CancelError::NotFound(_) => Self::not_found(detail),
            CancelError::Forbidden(_) => Self::forbidden(detail),
            CancelError::Illegal(_) => Self::new(
                Kind::WrongState,
                "illegal-state-change",
                "Not possible in this state",
                detail,
            ),
            CancelError::Contended(_) => {
                Self::new(Kind::Contended, "contended", "Changed concurrently", detail)
            }
            CancelError::Store(s) => Self::unavailable(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pairs both APIs promise (README, the proto's comments): a change here is a change
    /// of the public contract.
    #[test]
    fn each_kind_has_its_status_on_both_apis() {
        let table = [
            (Kind::NotFound, 404, Code::NotFound),
            (Kind::Forbidden, 403, Code::PermissionDenied),
            (Kind::Malformed, 400, Code::InvalidArgument),
            (Kind::RuleViolated, 422, Code::InvalidArgument),
            (Kind::Unservable, 422, Code::FailedPrecondition),
            (Kind::Taken, 409, Code::AlreadyExists),
            (Kind::WrongState, 409, Code::FailedPrecondition),
            (Kind::Contended, 409, Code::Aborted),
            (Kind::Unavailable, 503, Code::Unavailable),
        ];
        for (kind, http, grpc) in table {
            assert_eq!(
                (kind.http().as_u16(), kind.grpc()),
                (http, grpc),
                "{kind:?}"
            );
        }
        assert_eq!(Kind::Contended.retry_after(), Some(1));
        assert_eq!(Kind::Taken.retry_after(), None);
    }

    #[test]
    fn a_rule_names_its_field_and_a_seat_failure_its_seat() {
        let past = Failure::from(&ReserveError::Window(WindowError::StartsInPast {
            starts_at: chrono::Utc::now(),
        }));
        assert_eq!(
            (past.kind, past.slug, past.field),
            (Kind::RuleViolated, "starts-in-past", Some(Field::StartsAt))
        );
        let seat = SeatId::parse("A-01").unwrap();
        let taken = Failure::from(&ReserveError::SeatTaken { seat: seat.clone() });
        assert_eq!((taken.kind, taken.seat), (Kind::Taken, Some(seat)));
    }
}
