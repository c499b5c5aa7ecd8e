//! Property tests of every parser of outside input in payment (seat's pay request, the
//! payments query, the ids its event consumer reads): arbitrary text never panics them, what
//! they accept is canonical, and valid values round-trip.

use payment_service::domain::{
    Currency, CustomerId, Money, PaymentId, PaymentStatus, PaymentToken, RefundId, RefundStatus,
    ReservationId,
};
use proptest::prelude::*;
use studycafe_testkit::properties::{check_parser, uuid_text};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn uuid_ids(anything in ".*", valid in uuid_text(), noise in ".{0,8}") {
        check_parser(|s| ReservationId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        check_parser(|s| PaymentId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        check_parser(|s| RefundId::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
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
    fn statuses_and_currencies(anything in ".*", noise in ".{0,8}", pick in any::<prop::sample::Index>()) {
        check_parser(PaymentStatus::parse, |s| s.as_str().to_owned(), &anything, pick.get::<&str>(&["PENDING", "COMPLETED", "DECLINED"]), &noise)?;
        check_parser(RefundStatus::parse, |s| s.as_str().to_owned(), &anything, pick.get::<&str>(&["PENDING", "COMPLETED"]), &noise)?;
        check_parser(Currency::parse, |c| c.as_str().to_owned(), &anything, "KRW", &noise)?;
    }

    #[test]
    fn amounts_are_positive_won(amount in any::<i64>(), currency in prop_oneof![Just("KRW".to_owned()), ".{0,6}"]) {
        match Money::parse(amount, &currency) {
            Ok(money) => {
                prop_assert!(amount > 0 && currency.trim() == "KRW");
                prop_assert_eq!(money.amount(), amount);
                prop_assert_eq!(Money::parse(money.amount(), money.currency().as_str()), Ok(money));
            }
            Err(_) => prop_assert!(amount <= 0 || currency.trim() != "KRW"),
        }
    }
}
