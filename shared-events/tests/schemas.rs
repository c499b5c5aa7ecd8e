//! The checked-in JSON Schemas are exactly what the types generate, and real events validate
//! against their shapes.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use shared_events::*;

fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

#[test]
fn checked_in_schemas_are_current() {
    let mut expected_files = Vec::new();
    for (name, version, _topic, schema) in schemas() {
        let file = schema_file_name(name, version);
        let on_disk = std::fs::read_to_string(schema_dir().join(&file)).unwrap_or_default();
        assert_eq!(
            on_disk,
            render_schema(&schema),
            "{file} is stale: run `cargo run -p shared-events --bin generate-event-schemas`"
        );
        expected_files.push(file);
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(schema_dir())
        .expect("schemas dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    expected_files.sort();
    assert_eq!(
        on_disk, expected_files,
        "schema files without an event (or missing)"
    );
}

#[test]
fn every_event_type_is_unique_and_has_a_topic() {
    let all = schemas();
    let mut names: Vec<_> = all.iter().map(|(n, v, _, _)| (*n, *v)).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all.len());
    assert!(
        all.iter()
            .all(|(_, _, topic, _)| topics::ALL.contains(topic))
    );
}

fn sample() -> Envelope<SeatReserved> {
    let starts = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    Envelope::wrap(
        EventMeta::new(
            "seat",
            "0192f0c4-0000-7000-8000-000000000001",
            "req-1",
            starts,
        ),
        SeatReserved {
            reservation: ReservationRef {
                reservation_id: "0192f0c4-0000-7000-8000-000000000001".into(),
                seat_id: "A-01".into(),
                customer_id: "alice".into(),
                starts_at: starts,
                ends_at: starts + chrono::Duration::hours(2),
            },
            hours: 2,
            price: Money {
                amount: 6000,
                currency: Currency::Krw,
            },
            hold_expires_at: starts,
        },
    )
}

#[test]
fn round_trips_through_the_wire_format() {
    let event = sample();
    let bytes = event.to_json();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    // camelCase on the wire, flattened reservation reference, type and version in the envelope.
    assert_eq!(json["type"], "SeatReserved");
    assert_eq!(json["version"], 1);
    assert_eq!(
        json["correlationId"],
        "0192f0c4-0000-7000-8000-000000000001"
    );
    assert_eq!(json["data"]["seatId"], "A-01");
    assert_eq!(json["data"]["price"]["currency"], "KRW");
    assert_eq!(json["occurredAt"], "2026-12-01T09:00:00Z");

    let raw = RawEnvelope::from_json(&bytes).unwrap();
    match IntegrationEvent::decode(&raw).unwrap() {
        IntegrationEvent::SeatReserved(data) => assert_eq!(data, event.data),
        other => panic!("decoded as {other:?}"),
    }
}

#[test]
fn unknown_types_and_bad_data_are_decode_errors() {
    let mut raw = sample().to_raw();
    raw.event_type = "SeatTeleported".into();
    assert!(matches!(
        IntegrationEvent::decode(&raw),
        Err(DecodeError::UnknownType { .. })
    ));

    let mut raw = sample().to_raw();
    raw.version = 2;
    assert!(matches!(
        IntegrationEvent::decode(&raw),
        Err(DecodeError::UnknownType { .. })
    ));

    let mut raw = sample().to_raw();
    raw.data["hours"] = serde_json::json!("two");
    assert!(matches!(
        IntegrationEvent::decode(&raw),
        Err(DecodeError::Data { .. })
    ));

    assert!(matches!(
        RawEnvelope::from_json(b"{not json"),
        Err(DecodeError::Envelope(_))
    ));
}

#[test]
fn schema_pins_type_and_version_and_requires_the_envelope() {
    let (_, _, _, schema) = schemas()
        .into_iter()
        .find(|(n, ..)| *n == "PaymentRefunded")
        .unwrap();
    assert_eq!(schema["properties"]["type"]["const"], "PaymentRefunded");
    assert_eq!(schema["properties"]["version"]["const"], 1);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in [
        "id",
        "type",
        "version",
        "occurredAt",
        "source",
        "correlationId",
        "causationId",
        "data",
    ] {
        assert!(required.contains(&field), "{field} not required");
    }
}

#[test]
fn real_events_validate_against_their_checked_in_schema_and_wrong_ones_do_not() {
    let text =
        std::fs::read_to_string(schema_dir().join(schema_file_name("SeatReserved", 1))).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let event: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
    assert!(
        validator.is_valid(&event),
        "{:?}",
        validator
            .iter_errors(&event)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );

    let mut wrong_type = event.clone();
    wrong_type["type"] = "PaymentRefunded".into();
    assert!(!validator.is_valid(&wrong_type));
    let mut missing = event.clone();
    missing["data"].as_object_mut().unwrap().remove("seatId");
    assert!(!validator.is_valid(&missing));
}
