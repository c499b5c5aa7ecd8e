//! Property tests of every parser of outside input in seat (the reserve request of the REST
//! and gRPC APIs, path ids, the ids and names its event consumer and store read): arbitrary
//! text never panics them, what they accept is canonical, and valid values round-trip.

use chrono::{DateTime, SecondsFormat, TimeZone as _, Utc};
use proptest::prelude::*;
use seat_service::{
    domain::{CustomerId, PaymentToken, ReservationId, ReservationStatus, SeatId, SeatKind},
    inbound::commands::{self, KeyInput, RawReservation},
};
use studycafe_testkit::properties::{check_parser, uuid_text};

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..253_402_300_799).prop_map(|secs| Utc.timestamp_opt(secs, 0).unwrap())
}

fn key_input() -> impl Strategy<Value = Option<Option<String>>> {
    // Absent, unreadable, or given (any text).
    prop_oneof![
        Just(None),
        Just(Some(None)),
        ".{0,210}".prop_map(|k| Some(Some(k)))
    ]
}

fn key_of(key: &Option<Option<String>>) -> KeyInput<'_> {
    match key {
        None => KeyInput::Absent,
        Some(None) => KeyInput::Unreadable,
        Some(Some(k)) => KeyInput::Given(k),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reservation_ids(anything in ".*", valid in uuid_text(), noise in ".{0,8}") {
        check_parser(|s| ReservationId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        check_parser(|s| commands::reservation_id(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn seat_ids(anything in ".*", valid in "[A-Z]{1,3}-[0-9]{1,3}", noise in ".{0,8}") {
        check_parser(|s| SeatId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn customer_ids(anything in ".*", valid in "[!-~]([ -~]{0,100}[!-~])?", noise in ".{0,8}") {
        check_parser(|s| CustomerId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn payment_tokens(anything in ".*", valid in "[A-Za-z0-9_.-]{1,200}", noise in ".{0,8}") {
        check_parser(|s| PaymentToken::parse(s).ok(), |t| t.expose().to_owned(), &anything, &valid, &noise)?;
    }

    #[test]
    fn wire_names(anything in ".*", noise in ".{0,8}", pick in any::<prop::sample::Index>()) {
        check_parser(SeatKind::parse, |k| k.as_str().to_owned(), &anything, pick.get::<&str>(&["open-desk", "focus-booth", "group-room"]), &noise)?;
        let statuses: Vec<&str> = ReservationStatus::ALL.iter().map(|s| s.as_str()).collect();
        check_parser(ReservationStatus::parse, |s| s.as_str().to_owned(), &anything, pick.get::<&str>(&statuses), &noise)?;
    }

    #[test]
    fn the_reserve_request_parser_never_panics(
        seat in ".{0,12}",
        starts in ".{0,40}",
        hours in any::<i64>(),
        token in ".{0,24}",
        key in key_input(),
    ) {
        let raw = RawReservation { seat_id: &seat, starts_at: &starts, hours, payment_token: &token };
        let customer = CustomerId::parse("alice").unwrap();
        let _ = commands::reserve_command(customer, raw, key_of(&key), "test".into());
    }

    #[test]
    fn a_valid_reserve_request_round_trips(
        seat in "[A-Z]{1,3}-[0-9]{1,3}",
        starts_at in instant(),
        offset_hours in -12i32..=14,
        hours in any::<i64>(),
        token in "[A-Za-z0-9_.-]{1,200}",
        key in "[!-~]{1,200}",
    ) {
        // The same instant written with any offset.
        let zone = chrono::FixedOffset::east_opt(offset_hours * 3600).unwrap();
        let text = starts_at.with_timezone(&zone).to_rfc3339_opts(SecondsFormat::AutoSi, false);
        let raw = RawReservation { seat_id: &seat, starts_at: &text, hours, payment_token: &token };
        let customer = CustomerId::parse("alice").unwrap();
        let command = commands::reserve_command(customer.clone(), raw, KeyInput::Given(&key), "cause".into())
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert!(command.customer == customer);
        prop_assert_eq!(command.seat_id.as_str(), seat.as_str());
        prop_assert_eq!(command.starts_at, starts_at);
        prop_assert_eq!(command.hours, hours);
        prop_assert_eq!(command.payment_token.expose(), token.as_str());
        let claim = command.idempotency.expect("a key was given");
        prop_assert_eq!(claim.key.as_str(), key.as_str());
        // The same request, the same fingerprint: a retry is recognised.
        let again = commands::reserve_command(
            CustomerId::parse("alice").unwrap(),
            raw,
            KeyInput::Given(&key),
            "another cause".into(),
        ).unwrap();
        prop_assert_eq!(again.idempotency.unwrap().request_hash, claim.request_hash);
    }
}
