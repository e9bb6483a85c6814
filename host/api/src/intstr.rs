//! Int-or-percent quantities (`maxSurge: "25%"` or `maxSurge: 3`).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A quantity given as an absolute count or as a percentage of a total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOrPercent {
    /// An absolute number.
    Count(i32),
    /// A percentage (`"25%"` is `Percent(25)`).
    Percent(i32),
}

/// Why an int-or-percent value is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntOrPercentError {
    /// A string that is not `<integer>%`.
    #[error("{0:?} is neither an integer nor a percentage such as \"25%\"")]
    NotAPercentage(String),
    /// A negative value.
    #[error("{0} must not be negative")]
    Negative(String),
}

impl IntOrPercent {
    /// Parses an `IntOrString`: an int is a count, `"N%"` a percentage. A numeric string without
    /// `%` is rejected, as Kubernetes does.
    pub fn parse(value: &IntOrString) -> Result<Self, IntOrPercentError> {
        let parsed = match value {
            IntOrString::Int(count) => Self::Count(*count),
            IntOrString::String(text) => {
                let percent = text
                    .trim()
                    .strip_suffix('%')
                    .and_then(|number| number.trim().parse::<i32>().ok())
                    .ok_or_else(|| IntOrPercentError::NotAPercentage(text.clone()))?;
                Self::Percent(percent)
            }
        };
        match parsed {
            Self::Count(n) | Self::Percent(n) if n < 0 => {
                Err(IntOrPercentError::Negative(display(value)))
            }
            _ => Ok(parsed),
        }
    }

    /// The value scaled against `total`, rounding a percentage up or down.
    pub fn scaled(self, total: i32, round_up: bool) -> i32 {
        match self {
            Self::Count(count) => count,
            Self::Percent(percent) => {
                let product = i64::from(percent) * i64::from(total);
                let scaled = if round_up {
                    (product + 99) / 100
                } else {
                    product / 100
                };
                i32::try_from(scaled).unwrap_or(i32::MAX)
            }
        }
    }

    /// Whether the quantity is zero.
    pub fn is_zero(self) -> bool {
        matches!(self, Self::Count(0) | Self::Percent(0))
    }
}

fn display(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(count) => count.to_string(),
        IntOrString::String(text) => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_percentages() {
        assert_eq!(
            IntOrPercent::parse(&IntOrString::Int(3)),
            Ok(IntOrPercent::Count(3))
        );
        assert_eq!(
            IntOrPercent::parse(&IntOrString::String("25%".into())),
            Ok(IntOrPercent::Percent(25))
        );
        assert!(IntOrPercent::parse(&IntOrString::String("25".into())).is_err());
        assert!(IntOrPercent::parse(&IntOrString::String("abc%".into())).is_err());
        assert!(IntOrPercent::parse(&IntOrString::Int(-1)).is_err());
    }

    #[test]
    fn scales_with_rounding() {
        assert_eq!(IntOrPercent::Percent(25).scaled(5, true), 2);
        assert_eq!(IntOrPercent::Percent(25).scaled(5, false), 1);
        assert_eq!(IntOrPercent::Percent(25).scaled(4, true), 1);
        assert_eq!(IntOrPercent::Count(7).scaled(5, true), 7);
    }
}
