//! Durations as Argo Rollouts writes them: Go duration strings (`"30s"`, `"1h30m"`, `"500ms"`)
//! and, for pauses, plain integers meaning seconds.

use std::fmt;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a duration could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration")]
    Empty,
    /// A number without a unit, such as `"30"` (write `"30s"`).
    #[error("invalid duration {0:?}: missing unit (use ns, us, ms, s, m or h, e.g. \"30s\")")]
    MissingUnit(String),
    /// An unknown unit, such as `"3d"`.
    #[error("invalid duration {0:?}: unknown unit {1:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit(String, String),
    /// Anything else that is not a Go duration.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A negative duration where only non-negative ones make sense.
    #[error("invalid duration {0:?}: must not be negative")]
    Negative(String),
}

/// Parses a Go duration string (`time.ParseDuration` syntax): a sequence of decimal numbers, each
/// with an optional fraction and a unit, e.g. `"300ms"`, `"1.5h"`, `"2h45m"`. `"0"` is allowed.
/// Negative durations are rejected because no Rollout field accepts them.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let input = text.trim();
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    if input.starts_with('-') {
        return Err(DurationError::Negative(text.to_string()));
    }
    let mut rest = input.strip_prefix('+').unwrap_or(input);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(DurationError::Invalid(text.to_string()));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| DurationError::Invalid(text.to_string()))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos_per_unit = match unit {
            "" => return Err(DurationError::MissingUnit(text.to_string())),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(DurationError::UnknownUnit(
                    text.to_string(),
                    other.to_string(),
                ));
            }
        };
        total_nanos += value * nanos_per_unit;
        rest = next;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(DurationError::Invalid(text.to_string()));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// A duration written as a Go duration string, as Argo's `DurationString` (metric `interval`,
/// `initialDelay`, experiment `duration`). The text is kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct DurationString(pub String);

impl DurationString {
    /// The parsed duration.
    pub fn parse(&self) -> Result<Duration, DurationError> {
        parse_go_duration(&self.0)
    }
}

impl fmt::Display for DurationString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for DurationString {
    fn from(text: &str) -> Self {
        Self(text.to_string())
    }
}

/// Parses a pause-style duration: an integer is a number of seconds, a string is a Go duration.
pub fn parse_int_or_duration(value: &IntOrString) -> Result<Duration, DurationError> {
    match value {
        IntOrString::Int(seconds) if *seconds < 0 => {
            Err(DurationError::Negative(seconds.to_string()))
        }
        IntOrString::Int(seconds) => Ok(Duration::from_secs(u64::from(seconds.unsigned_abs()))),
        IntOrString::String(text) => parse_go_duration(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        let cases = [
            ("0", Duration::ZERO),
            ("30s", Duration::from_secs(30)),
            ("1m", Duration::from_secs(60)),
            ("1h", Duration::from_secs(3600)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("1.5h", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("+5s", Duration::from_secs(5)),
            ("1m30.5s", Duration::from_millis(90_500)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_go_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn malformed_durations_say_why() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_go_duration("30"),
            Err(DurationError::MissingUnit("30".into()))
        );
        assert_eq!(
            parse_go_duration("3d"),
            Err(DurationError::UnknownUnit("3d".into(), "d".into()))
        );
        assert_eq!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative("-1s".into()))
        );
        assert_eq!(
            parse_go_duration("s"),
            Err(DurationError::Invalid("s".into()))
        );
        assert_eq!(
            parse_go_duration("1..2s"),
            Err(DurationError::Invalid("1..2s".into()))
        );
    }

    #[test]
    fn pause_durations_accept_ints_and_strings() {
        assert_eq!(
            parse_int_or_duration(&IntOrString::Int(30)),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            parse_int_or_duration(&IntOrString::String("1h".into())),
            Ok(Duration::from_secs(3600))
        );
        assert!(parse_int_or_duration(&IntOrString::Int(-3)).is_err());
    }
}
