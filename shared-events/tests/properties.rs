//! Property tests of the event decoders: whatever bytes arrive on a topic, decoding never
//! panics (a poison message is an error the consumer dead-letters, never a crashed consumer),
//! and every event of the published language, with any field values, survives the wire
//! unchanged (encode, then decode, gives it back, envelope and all).

use chrono::{DateTime, TimeZone as _, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use shared_events::*;
use uuid::Uuid;

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // Years 1970 to 9999: what RFC 3339 can write.
    (0i64..253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| Utc.timestamp_opt(secs, nanos).unwrap())
}

fn money() -> impl Strategy<Value = Money> {
    any::<i64>().prop_map(|amount| Money {
        amount,
        currency: Currency::Krw,
    })
}

fn reference() -> impl Strategy<Value = ReservationRef> {
    (
        any::<String>(),
        any::<String>(),
        any::<String>(),
        instant(),
        instant(),
    )
        .prop_map(
            |(reservation_id, seat_id, customer_id, starts_at, ends_at)| ReservationRef {
                reservation_id,
                seat_id,
                customer_id,
                starts_at,
                ends_at,
            },
        )
}

/// Any event of the published language, with any field values.
fn event() -> impl Strategy<Value = IntegrationEvent> {
    use IntegrationEvent as E;
    let s = any::<String>;
    prop_oneof![
        (s(), s(), s(), money(), any::<bool>()).prop_map(
            |(seat_id, zone, kind, hourly_price, enabled)| {
                E::SeatDefined(SeatDefined {
                    seat_id,
                    zone,
                    kind,
                    hourly_price,
                    enabled,
                })
            }
        ),
        (reference(), any::<u8>(), money(), instant()).prop_map(
            |(reservation, hours, price, hold_expires_at)| {
                E::SeatReserved(SeatReserved {
                    reservation,
                    hours,
                    price,
                    hold_expires_at,
                })
            }
        ),
        reference()
            .prop_map(|reservation| E::ReservationConfirmed(ReservationConfirmed { reservation })),
        (reference(), s()).prop_map(|(reservation, reason)| {
            E::ReservationRejected(ReservationRejected {
                reservation,
                reason,
            })
        }),
        (reference(), s(), money()).prop_map(|(reservation, payment_id, amount)| {
            E::ReservationPaid(ReservationPaid {
                reservation,
                payment_id,
                amount,
            })
        }),
        (reference(), s()).prop_map(|(reservation, reason)| {
            E::ReservationPaymentFailed(ReservationPaymentFailed {
                reservation,
                reason,
            })
        }),
        (reference(), s()).prop_map(|(reservation, registration_id)| {
            E::ReservationRegistered(ReservationRegistered {
                reservation,
                registration_id,
            })
        }),
        (
            reference(),
            prop_oneof![Just(CancelledBy::Customer), Just(CancelledBy::Admin)],
            any::<bool>()
        )
            .prop_map(|(reservation, cancelled_by, was_paid)| {
                E::ReservationCancelled(ReservationCancelled {
                    reservation,
                    cancelled_by,
                    was_paid,
                })
            }),
        (reference(), s()).prop_map(|(reservation, expired_in)| {
            E::ReservationExpired(ReservationExpired {
                reservation,
                expired_in,
            })
        }),
        reference()
            .prop_map(|reservation| E::ReservationCompleted(ReservationCompleted { reservation })),
        (s(), s()).prop_map(|(reservation_id, confirmed_by)| {
            E::BookingConfirmed(BookingConfirmed {
                reservation_id,
                confirmed_by,
            })
        }),
        (s(), s(), s()).prop_map(|(reservation_id, rejected_by, reason)| {
            E::BookingRejected(BookingRejected {
                reservation_id,
                rejected_by,
                reason,
            })
        }),
        (s(), s(), s(), s(), instant(), instant()).prop_map(
            |(reservation_id, registration_id, seat_id, entry_pass_code, starts_at, ends_at)| {
                E::SeatRegistered(SeatRegistered {
                    reservation_id,
                    registration_id,
                    seat_id,
                    entry_pass_code,
                    starts_at,
                    ends_at,
                })
            }
        ),
        (s(), proptest::option::of(s()), s()).prop_map(
            |(reservation_id, registration_id, reason)| {
                E::RegistrationCancelled(RegistrationCancelled {
                    reservation_id,
                    registration_id,
                    reason,
                })
            }
        ),
        (s(), s(), money()).prop_map(|(reservation_id, payment_id, amount)| {
            E::PaymentCompleted(PaymentCompleted {
                reservation_id,
                payment_id,
                amount,
            })
        }),
        (s(), s(), s()).prop_map(|(reservation_id, payment_id, reason)| {
            E::PaymentDeclined(PaymentDeclined {
                reservation_id,
                payment_id,
                reason,
            })
        }),
        (s(), s(), s(), money()).prop_map(|(reservation_id, payment_id, refund_id, amount)| {
            E::PaymentRefunded(PaymentRefunded {
                reservation_id,
                payment_id,
                refund_id,
                amount,
            })
        }),
    ]
}

fn meta() -> impl Strategy<Value = EventMeta> {
    (
        any::<u128>(),
        instant(),
        any::<String>(),
        any::<String>(),
        any::<String>(),
    )
        .prop_map(
            |(id, occurred_at, source, correlation_id, causation_id)| EventMeta {
                id: Uuid::from_u128(id),
                occurred_at,
                source,
                correlation_id,
                causation_id,
            },
        )
}

/// The wire bytes of `event` in an envelope with `meta`.
fn encode(event: &IntegrationEvent, meta: EventMeta) -> Vec<u8> {
    macro_rules! wrap {
        ($($ty:ident),* $(,)?) => {
            match event {
                $( IntegrationEvent::$ty(e) => Envelope::wrap(meta, e.clone()).to_json(), )*
            }
        };
    }
    wrap!(
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
        BookingConfirmed,
        BookingRejected,
        SeatRegistered,
        RegistrationCancelled,
        PaymentCompleted,
        PaymentDeclined,
        PaymentRefunded,
    )
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        // Plausible field values, so decoding gets past the first field more often.
        instant().prop_map(|t| Value::from(t.to_rfc3339())),
        Just(json!({"amount": 1000, "currency": "KRW"})),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    any::<String>(),
                    // The fields events have, so some objects are nearly events.
                    prop::sample::select(vec![
                        "reservationId",
                        "seatId",
                        "customerId",
                        "startsAt",
                        "endsAt",
                        "hours",
                        "price",
                        "holdExpiresAt",
                        "reason",
                        "paymentId",
                        "amount",
                        "registrationId",
                        "cancelledBy",
                        "wasPaid",
                        "expiredIn",
                        "zone",
                        "kind",
                        "hourlyPrice",
                        "enabled",
                        "refundId",
                        "confirmedBy",
                        "rejectedBy",
                        "entryPassCode",
                    ])
                    .prop_map(str::to_owned),
                ],
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every event type name on the wire, plus a few that are not.
fn event_type() -> impl Strategy<Value = String> {
    let mut names: Vec<String> = schemas()
        .into_iter()
        .map(|(name, ..)| name.to_owned())
        .collect();
    names.extend(["", "SeatReservedd", "seatReserved"].map(str::to_owned));
    prop_oneof![prop::sample::select(names), any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(raw) = RawEnvelope::from_json(&bytes) {
            let _ = IntegrationEvent::decode(&raw);
        }
    }

    #[test]
    fn arbitrary_envelopes_of_any_type_and_data_decode_or_fail_cleanly(
        event_type in event_type(),
        version in prop_oneof![Just(1u16), any::<u16>()],
        data in json_value(),
        meta in meta(),
    ) {
        let bytes = serde_json::to_vec(&json!({
            "id": meta.id,
            "type": event_type,
            "version": version,
            "occurredAt": meta.occurred_at,
            "source": meta.source,
            "correlationId": meta.correlation_id,
            "causationId": meta.causation_id,
            "data": data,
        })).unwrap();
        let raw = RawEnvelope::from_json(&bytes).expect("a well-formed envelope");
        let known = schemas().iter().any(|(name, v, ..)| *name == event_type && *v == version);
        match IntegrationEvent::decode(&raw) {
            Ok(decoded) => prop_assert_eq!(decoded.event_type(), event_type.as_str()),
            Err(DecodeError::UnknownType { .. }) => prop_assert!(!known),
            Err(DecodeError::Data { .. }) => prop_assert!(known),
            Err(DecodeError::Envelope(e)) => prop_assert!(false, "the envelope was valid: {e}"),
        }
    }

    #[test]
    fn every_event_round_trips_through_the_wire(event in event(), meta in meta()) {
        let bytes = encode(&event, meta.clone());
        let raw = RawEnvelope::from_json(&bytes).expect("our own bytes are an envelope");
        prop_assert_eq!(raw.meta(), meta);
        prop_assert_eq!(raw.version, 1);
        prop_assert_eq!(raw.event_type.as_str(), event.event_type());
        let decoded = IntegrationEvent::decode(&raw).expect("our own event decodes");
        prop_assert_eq!(decoded, event);
    }

    #[test]
    fn damaged_events_never_panic_the_decoder(
        event in event(),
        meta in meta(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut bytes = encode(&event, meta);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(raw) = RawEnvelope::from_json(&bytes) {
            let _ = IntegrationEvent::decode(&raw);
        }
    }
}
