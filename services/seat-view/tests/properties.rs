//! Property tests of every parser of outside input in seat-view (the ids and names its event
//! consumer reads, the board's and timeline's query values): arbitrary text never panics them,
//! what they accept is canonical, and valid values round-trip.

use proptest::prelude::*;
use seat_view_service::domain::{
    BookingDecision, CustomerId, ExternalRef, PageLimit, PaymentStatus, RegistrationStatus,
    ReservationId, ReservationStatus, SeatId, SeatKind,
};
use studycafe_testkit::properties::{check_parser, uuid_text};

/// 1 to `max` printable ASCII characters, no surrounding space.
fn printable(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[!-~]([ -~]{{0,{}}}[!-~])?", max - 2)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn reservation_ids(anything in ".*", valid in uuid_text(), noise in ".{0,8}") {
        check_parser(|s| ReservationId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn text_ids(anything in ".*", valid in printable(32), noise in ".{0,8}") {
        check_parser(|s| SeatId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        check_parser(|s| CustomerId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        check_parser(|s| ExternalRef::parse("payment id", s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn seat_kinds(anything in ".*", valid in "[a-z0-9-]{1,32}", noise in ".{0,8}") {
        check_parser(|s| SeatKind::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn wire_names(anything in ".*", noise in ".{0,8}", pick in any::<prop::sample::Index>()) {
        let statuses = ["REQUESTED", "CONFIRMED", "REJECTED", "PAID", "PAYMENT_FAILED", "REGISTERED", "CANCELLED", "EXPIRED", "COMPLETED"];
        check_parser(ReservationStatus::parse, |s| s.as_str().to_owned(), &anything, pick.get::<&str>(&statuses), &noise)?;
        check_parser(PaymentStatus::parse, |s| s.as_str().to_owned(), &anything, pick.get::<&str>(&["PAID", "DECLINED", "REFUNDED"]), &noise)?;
        check_parser(RegistrationStatus::parse, |s| s.as_str().to_owned(), &anything, pick.get::<&str>(&["REGISTERED", "CANCELLED"]), &noise)?;
        check_parser(BookingDecision::parse, |s| s.as_str().to_owned(), &anything, pick.get::<&str>(&["CONFIRMED", "REJECTED"]), &noise)?;
    }

    #[test]
    fn page_limits_accept_exactly_1_to_200(limit in any::<i64>(), valid in 1i64..=200) {
        let parsed = PageLimit::new(limit);
        prop_assert_eq!(parsed.is_ok(), (1..=200).contains(&limit));
        prop_assert_eq!(PageLimit::new(valid).map(|l| i64::from(l.get())), Ok(valid));
    }
}
