//! Property tests of every parser of outside input in identity (sign-up fields, client ids,
//! user ids and roles read back from tokens and the store): arbitrary text never panics them,
//! what they accept is canonical, and valid values round-trip.

use identity_service::domain::{ClientId, DisplayName, Password, Role, UserId, Username};
use proptest::prelude::*;
use studycafe_testkit::properties::{check_parser, uuid_text};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn user_ids(anything in ".*", valid in uuid_text(), noise in ".{0,8}") {
        check_parser(UserId::parse, ToString::to_string, &anything, &valid, &noise)?;
    }

    #[test]
    fn usernames(anything in ".*", valid in "[a-zA-Z0-9._-]{3,32}", noise in ".{0,8}") {
        check_parser(|s| Username::parse(s).ok(), ToString::to_string, &anything, &valid, &noise)?;
        // Stored lowercase: `Alice` and `alice` are one account.
        let stored = Username::parse(&valid).unwrap();
        prop_assert_eq!(stored.as_str(), valid.to_ascii_lowercase());
    }

    #[test]
    fn display_names(anything in ".*", valid in "[^\\p{Cc}\\s][^\\p{Cc}]{0,40}[^\\p{Cc}\\s]", noise in ".{0,8}") {
        check_parser(|s| DisplayName::parse(s).ok(), |d| d.as_str().to_owned(), &anything, &valid, &noise)?;
    }

    #[test]
    fn passwords_are_kept_exactly(anything in ".*", valid in ".{8,128}") {
        // Never trimmed or changed: what was typed is what is hashed.
        if let Ok(password) = Password::parse(anything.clone()) {
            prop_assert_eq!(password.expose(), anything.as_str());
        }
        prop_assert_eq!(Password::parse(valid.clone()).map(|p| p.expose().to_owned()).ok(), Some(valid));
    }

    #[test]
    fn client_ids(anything in ".*", valid in "[A-Za-z0-9._-]{1,64}", noise in ".{0,8}") {
        check_parser(|s| ClientId::parse(s).ok(), |c| c.as_str().to_owned(), &anything, &valid, &noise)?;
    }

    #[test]
    fn roles(anything in ".*", valid in prop::sample::select(vec!["customer", "admin"]), noise in ".{0,8}") {
        check_parser(Role::parse, |r| r.as_str().to_owned(), &anything, valid, &noise)?;
    }
}
