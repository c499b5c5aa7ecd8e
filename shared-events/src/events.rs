//! Every integration event of the saga. Field names are the business's words; amounts are whole
//! units of the currency (KRW has no minor unit).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{DecodeError, RawEnvelope, topics};

/// One integration event type: its name and version on the wire and the topic its publisher
/// writes it to.
pub trait Event: Serialize + DeserializeOwned + JsonSchema {
    const TYPE: &'static str;
    const VERSION: u16;
    const TOPIC: &'static str;
}

/// An amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// Whole units of `currency` (KRW has no minor unit).
    pub amount: i64,
    /// ISO 4217 code; `KRW` throughout studycafe.
    pub currency: Currency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Currency {
    #[serde(rename = "KRW")]
    Krw,
}

/// Identifies one reservation and what it holds, carried by every reservation lifecycle event
/// of the seat service so a read model never needs to look anything up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRef {
    pub reservation_id: String,
    pub seat_id: String,
    pub customer_id: String,
    /// Start of the reserved window (inclusive).
    pub starts_at: DateTime<Utc>,
    /// End of the reserved window (exclusive).
    pub ends_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// seat: the seat catalogue
// ---------------------------------------------------------------------------------------------

/// A seat of the catalogue as it now stands (published when a seat is added or changed).
/// Correlated and keyed by the seat id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatDefined {
    pub seat_id: String,
    pub zone: String,
    /// `open-desk`, `focus-booth` or `group-room`.
    pub kind: String,
    pub hourly_price: Money,
    pub enabled: bool,
}

// ---------------------------------------------------------------------------------------------
// seat: the reservation lifecycle
// ---------------------------------------------------------------------------------------------

/// A customer reserved a seat for a window; the reservation is REQUESTED and holds the seat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatReserved {
    #[serde(flatten)]
    pub reservation: ReservationRef,
    pub hours: u8,
    /// What the customer will be charged.
    pub price: Money,
    /// Unpaid at this instant, the reservation expires and the seat is released.
    pub hold_expires_at: DateTime<Utc>,
}

/// The seat service accepted the cafe's confirmation: the reservation is CONFIRMED and payment
/// is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationConfirmed {
    #[serde(flatten)]
    pub reservation: ReservationRef,
}

/// The cafe rejected the booking: the reservation is REJECTED and the seat released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRejected {
    #[serde(flatten)]
    pub reservation: ReservationRef,
    pub reason: String,
}

/// Payment was approved: the reservation is PAID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationPaid {
    #[serde(flatten)]
    pub reservation: ReservationRef,
    pub payment_id: String,
    pub amount: Money,
}

/// Payment was declined: the reservation is PAYMENT_FAILED and the seat released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationPaymentFailed {
    #[serde(flatten)]
    pub reservation: ReservationRef,
    pub reason: String,
}

/// The cafe registered the booking (entry pass issued): the reservation is REGISTERED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRegistered {
    #[serde(flatten)]
    pub reservation: ReservationRef,
    pub registration_id: String,
}

/// Who cancelled a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CancelledBy {
    Customer,
    Admin,
}

/// A live reservation was cancelled: the reservation is CANCELLED and the seat released.
/// Payment refunds it if it was paid; registration cancels the registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationCancelled {
    #[serde(flatten)]
    pub reservation: ReservationRef,
    pub cancelled_by: CancelledBy,
    /// Whether the seat service had seen the payment approved. Payment refunds on its own
    /// records either way; this is for read models and people.
    pub was_paid: bool,
}

/// The hold ran out before the reservation was paid: EXPIRED, seat released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationExpired {
    #[serde(flatten)]
    pub reservation: ReservationRef,
    /// The status the reservation expired in (`REQUESTED` or `CONFIRMED`).
    pub expired_in: String,
}

/// A registered reservation's window ended: COMPLETED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationCompleted {
    #[serde(flatten)]
    pub reservation: ReservationRef,
}

// ---------------------------------------------------------------------------------------------
// registration
// ---------------------------------------------------------------------------------------------

/// The cafe accepted a pending booking (an admin, or the auto-confirm policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingConfirmed {
    pub reservation_id: String,
    /// The admin's user id, or `auto-confirm` for the policy.
    pub confirmed_by: String,
}

/// The cafe refused a pending booking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingRejected {
    pub reservation_id: String,
    pub rejected_by: String,
    pub reason: String,
}

/// The paid booking is registered with the cafe: an entry pass exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatRegistered {
    pub reservation_id: String,
    pub registration_id: String,
    pub seat_id: String,
    /// The code the customer shows (or types) at the cafe's door.
    pub entry_pass_code: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// A registration (or a still-pending booking) was closed because its reservation was
/// cancelled or expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationCancelled {
    pub reservation_id: String,
    /// Absent when only a pending booking was closed.
    pub registration_id: Option<String>,
    pub reason: String,
}

// ---------------------------------------------------------------------------------------------
// payment
// ---------------------------------------------------------------------------------------------

/// A reservation was charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCompleted {
    pub reservation_id: String,
    pub payment_id: String,
    pub amount: Money,
}

/// The card was declined; nothing was charged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDeclined {
    pub reservation_id: String,
    pub payment_id: String,
    pub reason: String,
}

/// A charge was refunded in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    pub reservation_id: String,
    pub payment_id: String,
    pub refund_id: String,
    pub amount: Money,
}

macro_rules! published_language {
    ($( $topic:expr => [ $( $ty:ident ),* $(,)? ] ),* $(,)?) => {
        $( $(
            impl Event for $ty {
                const TYPE: &'static str = stringify!($ty);
                const VERSION: u16 = 1;
                const TOPIC: &'static str = $topic;
            }
        )* )*

        /// Any event of the published language, decoded.
        #[derive(Debug, Clone, PartialEq)]
        pub enum IntegrationEvent {
            $( $( $ty($ty), )* )*
        }

        impl IntegrationEvent {
            /// Decodes the payload of an envelope by its `type` and `version`.
            pub fn decode(raw: &RawEnvelope) -> Result<Self, DecodeError> {
                $( $(
                    if raw.is::<$ty>() {
                        return raw.data_as::<$ty>().map(Self::$ty);
                    }
                )* )*
                Err(DecodeError::UnknownType {
                    event_type: raw.event_type.clone(),
                    version: raw.version,
                })
            }

            /// The wire name of this event.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( $( Self::$ty(_) => <$ty as Event>::TYPE, )* )*
                }
            }
        }

        /// `(type, version, topic, JSON Schema of the whole envelope)` for every event, the
        /// source of the checked-in schema files.
        pub fn schemas() -> Vec<(&'static str, u16, &'static str, serde_json::Value)> {
            vec![ $( $( (
                <$ty as Event>::TYPE,
                <$ty as Event>::VERSION,
                <$ty as Event>::TOPIC,
                envelope_schema::<$ty>(),
            ), )* )* ]
        }
    };
}

published_language! {
    topics::SEAT => [
        SeatDefined,
        SeatReserved,
        ReservationConfirmed,
        ReservationRejected,
        ReservationPaid,
        ReservationPaymentFailed,
        ReservationRegistered,
        ReservationCancelled,
        ReservationExpired,
        ReservationCompleted,
    ],
    topics::REGISTRATION => [
        BookingConfirmed,
        BookingRejected,
        SeatRegistered,
        RegistrationCancelled,
    ],
    topics::PAYMENT => [
        PaymentCompleted,
        PaymentDeclined,
        PaymentRefunded,
    ],
}

/// The schema of `Envelope<T>` with `type` and `version` pinned to `T`'s.
fn envelope_schema<T: Event>() -> serde_json::Value {
    let mut schema = schemars::schema_for!(crate::Envelope<T>).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "title".into(),
            serde_json::Value::String(format!("{} v{}", T::TYPE, T::VERSION)),
        );
        object.insert(
            "description".into(),
            serde_json::Value::String(format!(
                "Envelope of a {} event, published on topic {}.",
                T::TYPE,
                T::TOPIC
            )),
        );
        if let Some(properties) = object
            .get_mut("properties")
            .and_then(serde_json::Value::as_object_mut)
        {
            properties.insert("type".into(), serde_json::json!({ "const": T::TYPE }));
            properties.insert("version".into(), serde_json::json!({ "const": T::VERSION }));
        }
    }
    schema
}
