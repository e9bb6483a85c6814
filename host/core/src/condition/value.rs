//! [`MetricValue`]: the value a metric provider hands to the conditions as `result`.

use std::collections::BTreeMap;

use expr::Value;

/// The value a metric provider measured, seen by the conditions as `result`.
///
/// It mirrors the Go values Argo's providers pass to `EvaluateResult`, which come out of
/// `encoding/json` or the provider's client library:
///
/// - every number is a 64-bit float, as Go decodes JSON numbers into `float64`; so `result % 2`
///   is an error, exactly as it is in Argo;
/// - a float may be NaN or ±Inf, which JSON cannot carry: Prometheus returns `"NaN"` and
///   `"+Inf"` sample values and Argo's provider parses them into `float64`. A provider that has
///   such a value builds [`MetricValue::Number`] directly (or uses `From<f64>`/`From<Vec<f64>>`)
///   rather than going through JSON;
/// - a Prometheus scalar is a [`MetricValue::Number`]; a vector or matrix is an
///   [`MetricValue::Array`] of all the samples' values, flattened;
/// - `Nil` is Go's nil: a provider that measured nothing (Datadog without data points).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MetricValue {
    /// No value (Go `nil`, JSON `null`).
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// A number; any `f64`, including NaN and the infinities.
    Number(f64),
    /// A string.
    String(String),
    /// A list, such as a Prometheus vector's samples.
    Array(Vec<MetricValue>),
    /// An object with string keys, such as a Web provider's JSON document.
    Object(BTreeMap<String, MetricValue>),
}

impl MetricValue {
    /// Whether Argo considers this result "nil or empty" (Argo's `isNilOrEmpty`): nil, or a list
    /// without elements. An empty string or an empty object is *not* empty in that sense.
    ///
    /// When a condition fails to evaluate against such a result, the measurement's error says
    /// that the provider returned no data instead of quoting the evaluation error.
    pub fn is_nil_or_empty(&self) -> bool {
        match self {
            MetricValue::Nil => true,
            MetricValue::Array(elements) => elements.is_empty(),
            _ => false,
        }
    }

    /// The value in the evaluator's representation.
    pub(super) fn to_expr_value(&self) -> Value {
        match self {
            MetricValue::Nil => Value::Nil,
            MetricValue::Bool(flag) => Value::Bool(*flag),
            MetricValue::Number(number) => Value::Float(*number),
            MetricValue::String(text) => Value::String(text.clone()),
            MetricValue::Array(elements) => {
                Value::Array(elements.iter().map(MetricValue::to_expr_value).collect())
            }
            MetricValue::Object(fields) => Value::Map(
                fields
                    .iter()
                    .map(|(key, value)| (key.clone(), value.to_expr_value()))
                    .collect(),
            ),
        }
    }
}

/// Converts JSON the way Go's `encoding/json` decodes into `interface{}`: every number becomes a
/// float (integers above 2^53 lose precision, as they do in Argo).
impl From<serde_json::Value> for MetricValue {
    fn from(json: serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => MetricValue::Nil,
            serde_json::Value::Bool(flag) => MetricValue::Bool(flag),
            serde_json::Value::Number(number) => {
                // A serde_json number always has an f64 form unless the `arbitrary_precision`
                // feature is on; then one out of f64's range is an infinity of its sign.
                MetricValue::Number(number.as_f64().unwrap_or_else(|| {
                    if number.to_string().starts_with('-') {
                        f64::NEG_INFINITY
                    } else {
                        f64::INFINITY
                    }
                }))
            }
            serde_json::Value::String(text) => MetricValue::String(text),
            serde_json::Value::Array(elements) => {
                MetricValue::Array(elements.into_iter().map(MetricValue::from).collect())
            }
            serde_json::Value::Object(fields) => MetricValue::Object(
                fields
                    .into_iter()
                    .map(|(key, value)| (key, MetricValue::from(value)))
                    .collect(),
            ),
        }
    }
}

impl From<f64> for MetricValue {
    fn from(number: f64) -> Self {
        MetricValue::Number(number)
    }
}

impl From<bool> for MetricValue {
    fn from(flag: bool) -> Self {
        MetricValue::Bool(flag)
    }
}

impl From<String> for MetricValue {
    fn from(text: String) -> Self {
        MetricValue::String(text)
    }
}

impl From<&str> for MetricValue {
    fn from(text: &str) -> Self {
        MetricValue::String(text.to_owned())
    }
}

/// A list, such as a Prometheus vector (`Vec<f64>`).
impl<T: Into<MetricValue>> From<Vec<T>> for MetricValue {
    fn from(elements: Vec<T>) -> Self {
        MetricValue::Array(elements.into_iter().map(Into::into).collect())
    }
}

/// `None` is nil, as a provider's nil pointer is in Argo.
impl<T: Into<MetricValue>> From<Option<T>> for MetricValue {
    fn from(value: Option<T>) -> Self {
        value.map_or(MetricValue::Nil, Into::into)
    }
}

impl From<BTreeMap<String, MetricValue>> for MetricValue {
    fn from(fields: BTreeMap<String, MetricValue>) -> Self {
        MetricValue::Object(fields)
    }
}

impl MetricValue {
    /// Reads a measurement's `value` text back into the value the conditions see as `result`.
    ///
    /// Providers hand results to the host as text (`Measurement.value`), and Argo's providers
    /// write Go values with `fmt`/`strconv`, so the text is read in this order:
    ///
    /// 1. JSON (`0.95`, `true`, `{"p99": 0.2}`, `[1,2]`, `"text"`), decoded as [`From<serde_json::Value>`];
    /// 2. a Go float token: `NaN`, `+Inf`, `-Inf` or `Inf` (what `strconv.FormatFloat` writes
    ///    for the values JSON cannot carry);
    /// 3. a bracketed list of numbers and such tokens, as Prometheus vectors are written:
    ///    `[0.97,NaN]`, `[+Inf, 1]`; `[]` is an empty list (JSON already covers it);
    /// 4. otherwise the text itself, as a [`MetricValue::String`].
    pub fn from_measurement_value(text: &str) -> MetricValue {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
            return MetricValue::from(json);
        }
        let trimmed = text.trim();
        if let Some(number) = go_float_token(trimmed) {
            return MetricValue::Number(number);
        }
        if let Some(inner) = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            let elements: Option<Vec<MetricValue>> = inner
                .split(',')
                .map(|element| {
                    let element = element.trim();
                    go_float_token(element)
                        .or_else(|| {
                            element
                                .parse::<f64>()
                                .ok()
                                .filter(|_| is_decimal_number(element))
                        })
                        .map(MetricValue::Number)
                })
                .collect();
            if let Some(elements) = elements {
                return MetricValue::Array(elements);
            }
        }
        MetricValue::String(text.to_owned())
    }
}

/// The non-finite float tokens Go's `strconv.FormatFloat` writes (and `ParseFloat` reads).
fn go_float_token(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Whether `text` is a plain decimal number (digits, sign, point, exponent), so that words Rust's
/// float parser also accepts (`inf`, `nan`, `infinity`) stay strings.
fn is_decimal_number(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
}

#[cfg(test)]
mod measurement_value_tests {
    use super::MetricValue;

    fn numbers(value: &MetricValue) -> Vec<f64> {
        match value {
            MetricValue::Array(elements) => elements
                .iter()
                .map(|element| match element {
                    MetricValue::Number(number) => *number,
                    other => panic!("not a number: {other:?}"),
                })
                .collect(),
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn json_text_is_read_as_json() {
        assert_eq!(
            MetricValue::from_measurement_value("0.95"),
            MetricValue::Number(0.95)
        );
        assert_eq!(
            MetricValue::from_measurement_value("true"),
            MetricValue::Bool(true)
        );
        assert_eq!(
            MetricValue::from_measurement_value("[]"),
            MetricValue::Array(vec![])
        );
        assert_eq!(
            MetricValue::from_measurement_value("\"ok\""),
            MetricValue::String("ok".into())
        );
        assert_eq!(
            MetricValue::from_measurement_value("null"),
            MetricValue::Nil
        );
        let object = MetricValue::from_measurement_value(r#"{"p99": 0.2, "ok": true}"#);
        let MetricValue::Object(fields) = object else {
            panic!("not an object: {object:?}")
        };
        assert_eq!(fields["p99"], MetricValue::Number(0.2));
        assert_eq!(fields["ok"], MetricValue::Bool(true));
    }

    #[test]
    fn go_float_tokens_are_numbers() {
        let nan = MetricValue::from_measurement_value("NaN");
        assert!(
            matches!(nan, MetricValue::Number(n) if n.is_nan()),
            "{nan:?}"
        );
        assert_eq!(
            MetricValue::from_measurement_value("+Inf"),
            MetricValue::Number(f64::INFINITY)
        );
        assert_eq!(
            MetricValue::from_measurement_value("Inf"),
            MetricValue::Number(f64::INFINITY)
        );
        assert_eq!(
            MetricValue::from_measurement_value("-Inf"),
            MetricValue::Number(f64::NEG_INFINITY)
        );
    }

    #[test]
    fn bracketed_lists_of_numbers_and_tokens_are_lists() {
        let vector = numbers(&MetricValue::from_measurement_value("[0.97,NaN]"));
        assert_eq!(vector.len(), 2);
        assert_eq!(vector[0], 0.97);
        assert!(vector[1].is_nan());
        assert_eq!(
            numbers(&MetricValue::from_measurement_value(
                "[+Inf, -Inf, 1e3, -2]"
            )),
            vec![f64::INFINITY, f64::NEG_INFINITY, 1000.0, -2.0]
        );
    }

    #[test]
    fn anything_else_is_the_text_itself() {
        for text in ["inf", "nan", "[1, two]", "[0.5", "hello world", "1.2.3", ""] {
            assert_eq!(
                MetricValue::from_measurement_value(text),
                MetricValue::String(text.into()),
                "{text:?}"
            );
        }
    }
}
