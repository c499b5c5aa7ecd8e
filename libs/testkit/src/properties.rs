//! Property-test support for the parsers of outside input (request fields, ids, newtypes):
//! each crate's `tests/properties.rs` drives [`check_parser`] with proptest's arbitrary text.

use proptest::{
    prelude::{Strategy, any},
    prop_assert,
    test_runner::TestCaseError,
};

/// Any UUID's canonical text: the valid input of every id parser that takes one.
pub fn uuid_text() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string())
}

/// The properties every parser of outside input keeps, whatever text it meets: it never
/// panics; what it accepts is canonical (the accepted value's own text parses back to it);
/// and a valid value's text round-trips. `near` makes candidates from a valid text that
/// parsers often get wrong (padded, cut, cased, followed by junk).
pub fn check_parser<T: PartialEq>(
    parse: impl Fn(&str) -> Option<T>,
    text: impl Fn(&T) -> String,
    anything: &str,
    valid: &str,
    noise: &str,
) -> Result<(), TestCaseError> {
    let cut: String = valid.chars().take(valid.chars().count() / 2).collect();
    let candidates = [
        anything.to_owned(),
        format!(" {valid}\t"),
        format!("{valid}{noise}"),
        format!("{noise}{valid}"),
        valid.to_lowercase(),
        valid.to_uppercase(),
        cut,
    ];
    for candidate in &candidates {
        if let Some(value) = parse(candidate) {
            let again = text(&value);
            prop_assert!(
                parse(&again).is_some_and(|v| v == value),
                "{candidate:?} was accepted as {again:?}, which does not parse back to it"
            );
        }
    }
    let value = parse(valid);
    prop_assert!(value.is_some(), "the valid {valid:?} was refused");
    let value = value.unwrap();
    let again = text(&value);
    prop_assert!(
        parse(&again).is_some_and(|v| v == value),
        "{valid:?} does not round-trip via {again:?}"
    );
    Ok(())
}
