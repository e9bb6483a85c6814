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
