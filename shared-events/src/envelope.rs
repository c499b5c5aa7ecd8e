use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::Event;

/// The envelope every event travels in, with its payload still untyped: what a consumer reads
/// off the wire before it knows whether it understands the `type`.
pub type RawEnvelope = Envelope<serde_json::Value>;

/// The metadata every event carries, in front of its `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    /// Unique id of this event (UUID v7, so ids sort by creation time). Consumers deduplicate
    /// on it.
    pub id: Uuid,
    /// The event's name, e.g. `SeatReserved`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The version of this event's `data` shape.
    pub version: u16,
    /// When the fact happened (not when it was published).
    pub occurred_at: DateTime<Utc>,
    /// The publishing service, e.g. `seat`.
    pub source: String,
    /// The correlation key tying every event and policy of one saga together: the reservation
    /// id (for seat catalogue events, the seat id). Also the Kafka message key.
    pub correlation_id: String,
    /// The id of the event or command that caused this one.
    pub causation_id: String,
    pub data: T,
}

/// Everything of an envelope but its payload: what a producer decides besides the event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub source: String,
    pub correlation_id: String,
    pub causation_id: String,
}

impl EventMeta {
    /// Metadata for a new event caused by `causation_id`, correlated by `correlation_id`.
    pub fn new(
        source: impl Into<String>,
        correlation_id: impl Into<String>,
        causation_id: impl Into<String>,
        occurred_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            occurred_at,
            source: source.into(),
            correlation_id: correlation_id.into(),
            causation_id: causation_id.into(),
        }
    }
}

/// Why bytes off the wire are not an event this consumer understands.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a valid event envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    #[error("unknown event type {event_type:?} version {version}")]
    UnknownType { event_type: String, version: u16 },
    #[error("{event_type} v{version} has invalid data: {source}")]
    Data {
        event_type: String,
        version: u16,
        #[source]
        source: serde_json::Error,
    },
}

impl<T> Envelope<T> {
    pub fn meta(&self) -> EventMeta {
        EventMeta {
            id: self.id,
            occurred_at: self.occurred_at,
            source: self.source.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
        }
    }
}

impl<T: Event> Envelope<T> {
    /// Wraps one typed event.
    pub fn wrap(meta: EventMeta, data: T) -> Self {
        Self {
            id: meta.id,
            event_type: T::TYPE.to_owned(),
            version: T::VERSION,
            occurred_at: meta.occurred_at,
            source: meta.source,
            correlation_id: meta.correlation_id,
            causation_id: meta.causation_id,
            data,
        }
    }
}

impl<T: Serialize> Envelope<T> {
    /// The JSON bytes that go on the wire.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data structs with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The same envelope with its payload as JSON, as the outbox stores it.
    pub fn to_raw(&self) -> RawEnvelope {
        Envelope {
            id: self.id,
            event_type: self.event_type.clone(),
            version: self.version,
            occurred_at: self.occurred_at,
            source: self.source.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            data: serde_json::to_value(&self.data).unwrap_or_default(),
        }
    }
}

impl RawEnvelope {
    /// Parses the envelope from the wire without interpreting `data`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(DecodeError::Envelope)
    }

    /// Interprets `data` as event `T`, if this envelope holds one.
    pub fn is<T: Event>(&self) -> bool {
        self.event_type == T::TYPE && self.version == T::VERSION
    }

    /// Decodes `data` as `T`; the caller has checked [`RawEnvelope::is`].
    pub fn data_as<T: Event + DeserializeOwned>(&self) -> Result<T, DecodeError> {
        serde_json::from_value(self.data.clone()).map_err(|source| DecodeError::Data {
            event_type: self.event_type.clone(),
            version: self.version,
            source,
        })
    }
}
