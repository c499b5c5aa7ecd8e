//! Property tests of every parser of outside input in registration (the admin API's path ids,
//! query values and bodies, and the ids its event consumer reads): arbitrary text never
//! panics them, what they accept is canonical, and valid values round-trip.

use proptest::prelude::*;
use registration_service::domain::{
    AdminId, BookingStatus, CafeId, CustomerId, EntryPassCode, RegistrationId, RejectionReason,
    ReservationId, SeatId,
};
use studycafe_testkit::properties::{check_parser, uuid_text};

/// 1 to `max` printable characters, no surrounding whitespace.
fn printable(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[^\\p{{Cc}}\\s][^\\p{{Cc}}]{{0,{}}}", max - 2))
        .unwrap()
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("not empty once trimmed", |s| !s.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reservation_and_registration_ids(anything in ".*", valid in uuid_text(), noise in ".{0,8}") {
        check_parser(|s| ReservationId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        check_parser(|s| RegistrationId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn text_ids(anything in ".*", valid in printable(32), noise in ".{0,8}") {
        check_parser(|s| SeatId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        check_parser(|s| CustomerId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        check_parser(|s| AdminId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        check_parser(|s| CafeId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn entry_pass_codes(anything in ".*", valid in "[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{8}", noise in ".{0,8}") {
        check_parser(|s| EntryPassCode::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn booking_statuses(
        anything in ".*",
        valid in prop::sample::select(vec!["pending", "CONFIRMED", "Rejected", "registered", "cancelled"]),
        noise in ".{0,8}",
    ) {
        check_parser(BookingStatus::parse, ToString::to_string, &anything, valid, &noise)?;
    }

    #[test]
    fn rejection_reasons(anything in ".*", valid in printable(200), noise in ".{0,8}") {
        check_parser(|s| RejectionReason::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }
}
