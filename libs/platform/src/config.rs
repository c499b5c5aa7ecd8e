//! Reading typed configuration from environment variables.
//!
//! Every service has one config struct built through [`Env`] at start-up. A missing or
//! malformed value stops the process with a message that names the variable, so a typo in a
//! manifest fails loudly instead of running with a surprise default.

use std::{collections::HashMap, fmt::Display, str::FromStr, time::Duration};

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(variable: &str, message: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            message: message.into(),
        }
    }
}

/// A snapshot of the environment (or of a map, in tests).
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment.
    pub fn from_process() -> Self {
        // `std::env::vars` panics on a variable that is not UTF-8 (anyone's, not just ours);
        // such a value is kept lossily and fails validation if it is one we read.
        Self {
            vars: std::env::vars_os()
                .map(|(k, v)| {
                    (
                        k.to_string_lossy().into_owned(),
                        v.to_string_lossy().into_owned(),
                    )
                })
                .collect(),
        }
    }

    /// A fixed set of variables (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The raw value, if set and not blank.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A required value.
    pub fn required<T>(&self, name: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self
            .raw(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))?;
        parse(name, raw)
    }

    /// An optional value.
    pub fn optional<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.raw(name).map(|raw| parse(name, raw)).transpose()
    }

    /// A value with a default.
    pub fn or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    /// A number with a default, within `range`.
    pub fn within<T>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display,
        T::Err: Display,
    {
        let value = self.or(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                name,
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    }

    /// A boolean (`true/false`, `1/0`, `yes/no`, `on/off`) with a default.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::new(
                name,
                format!("{other:?} is not a boolean (use true or false)"),
            )),
        }
    }

    /// A duration in milliseconds with a default, within `[min, max]`.
    pub fn millis(
        &self,
        name: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let value = match self.optional::<u64>(name)? {
            Some(ms) => Duration::from_millis(ms),
            None => default,
        };
        if value < min || value > max {
            return Err(ConfigError::new(
                name,
                format!(
                    "must be between {} and {} milliseconds",
                    min.as_millis(),
                    max.as_millis()
                ),
            ));
        }
        Ok(value)
    }
}

fn parse<T>(name: &str, raw: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    raw.parse::<T>()
        .map_err(|e| ConfigError::new(name, format!("{raw:?} is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable() {
        let env = Env::from_pairs([("PORT", "eighty"), ("FLAG", "maybe")]);
        let err = env.required::<u16>("PORT").unwrap_err();
        assert_eq!(err.variable, "PORT");
        assert!(err.to_string().starts_with("PORT: \"eighty\" is invalid"));
        assert_eq!(env.flag("FLAG", false).unwrap_err().variable, "FLAG");
        assert_eq!(
            env.required::<String>("MISSING").unwrap_err().to_string(),
            "MISSING: is required but not set"
        );
    }

    #[test]
    fn defaults_and_bounds() {
        let env = Env::from_pairs([("MS", "5"), ("BLANK", "  ")]);
        assert_eq!(env.or("BLANK", 7u32).unwrap(), 7);
        assert!(
            env.millis(
                "MS",
                Duration::from_secs(1),
                Duration::from_millis(10),
                Duration::from_secs(5)
            )
            .is_err()
        );
        assert!(env.flag("NOPE", true).unwrap());
        assert_eq!(env.within("BLANK", 10u32, 1..=20).unwrap(), 10);
        assert_eq!(env.within("MS", 10u32, 1..=20).unwrap(), 5);
        let err = env.within("MS", 10u32, 6..=20).unwrap_err();
        assert!(err.to_string().contains("MS"), "{err}");
        assert!(err.to_string().contains("between 6 and 20"), "{err}");
    }
}
