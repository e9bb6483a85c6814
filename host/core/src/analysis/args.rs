//! Arguments passed from a Rollout to its analysis templates.
//!
//! - [`build_rollout_args`] is Argo's `BuildArgumentsForRolloutAnalysisRun`
//!   (`utils/analysis/factory.go`): every Rollout argument becomes a literal value, read from
//!   `value`, the stable or latest pod-template hash, or a field of the Rollout;
//! - [`merge_args`] is Argo's `MergeArgs` (`utils/analysis/helpers.go`): Rollout arguments
//!   override the template's arguments of the same name, arguments the templates do not declare
//!   are dropped, and an argument left without a value or a `valueFrom` is an error.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice_api::analysis::{Argument, PodTemplateHashValue, RolloutAnalysisArgument};
use sluice_api::rollout::Rollout;

use super::template::go_quote_inner;

/// Why an argument could not be built or merged. The `Display` texts follow Argo's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// A template argument has neither a value nor a `valueFrom` after merging.
    #[error("args.{0} was not resolved")]
    NotResolved(String),
    /// `podTemplateHashValue` asks for a revision that does not exist yet.
    #[error("args.{argument}: no {revision:?} pod template hash is known")]
    PodTemplateHashUnavailable {
        /// The argument.
        argument: String,
        /// Which revision was asked for.
        revision: PodTemplateHashValue,
    },
    /// A `metadata.*` field path the Kubernetes downward API does not support.
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    /// A subscript on a `metadata` field that is not `labels` or `annotations`.
    #[error("fieldPath \"{0}\" does not support subscript")]
    SubscriptNotSupported(String),
    /// A field path that leads nowhere in the Rollout.
    #[error("invalid path {0} in rollout")]
    InvalidPath(String),
    /// A list index that is not a number.
    #[error("invalid index '{0}'")]
    InvalidIndex(String),
    /// A list index past the end.
    #[error("index {0} out of range")]
    IndexOutOfRange(usize),
    /// A field path that leads to an object or a list.
    #[error("path {0} in rollout must terminate in a primitive value")]
    NotPrimitive(String),
}

/// The pod-template hashes a Rollout's arguments may refer to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodTemplateHashes<'a> {
    /// `rollouts-pod-template-hash` of the stable ReplicaSet.
    pub stable: Option<&'a str>,
    /// `rollouts-pod-template-hash` of the newest ReplicaSet.
    pub latest: Option<&'a str>,
}

/// Turns a Rollout's analysis arguments into literal arguments.
///
/// `valueFrom.podTemplateHashValue` takes the given hash; `valueFrom.fieldRef` reads the Rollout:
/// paths starting with `metadata` follow the Kubernetes downward API (`metadata.name`,
/// `metadata.namespace`, `metadata.uid`, `metadata.labels`, `metadata.annotations`,
/// `metadata.labels['key']`, `metadata.annotations['key']`), other paths walk the Rollout's JSON
/// (`spec.template.spec.containers[0].image`) and must end in a string, number or boolean, which is
/// formatted as Go's `%v` formats it. An argument with neither `value` nor `valueFrom` becomes an
/// empty string, as in Argo.
pub fn build_rollout_args(
    args: &[RolloutAnalysisArgument],
    rollout: &Rollout,
    hashes: PodTemplateHashes<'_>,
) -> Result<Vec<Argument>, ArgsError> {
    let mut rollout_json = None;
    args.iter()
        .map(|argument| {
            let from = argument.value_from.as_ref();
            let value = if let Some(revision) = from.and_then(|from| from.pod_template_hash_value) {
                let hash = match revision {
                    PodTemplateHashValue::Stable => hashes.stable,
                    PodTemplateHashValue::Latest => hashes.latest,
                };
                hash.map(str::to_string)
                    .ok_or_else(|| ArgsError::PodTemplateHashUnavailable {
                        argument: argument.name.clone(),
                        revision,
                    })?
            } else if let Some(field) = from.and_then(|from| from.field_ref.as_ref()) {
                let path = field.field_path.as_str();
                if path.starts_with("metadata") {
                    metadata_field(&rollout.metadata, path)?
                } else {
                    let json = rollout_json.get_or_insert_with(|| {
                        serde_json::to_value(rollout).unwrap_or(serde_json::Value::Null)
                    });
                    json_path_value(json, path)?
                }
            } else {
                argument.value.clone().unwrap_or_default()
            };
            Ok(Argument {
                name: argument.name.clone(),
                value: Some(value),
                value_from: None,
            })
        })
        .collect()
}

/// Merges incoming (Rollout) arguments into the templates' arguments, by name (Argo's
/// `MergeArgs`). An incoming `value` replaces the template's value; otherwise an incoming
/// `valueFrom` replaces the template's `valueFrom`. Incoming arguments the templates do not
/// declare are dropped. Every resulting argument needs a value or a `valueFrom`.
pub fn merge_args(
    incoming: &[Argument],
    template: &[Argument],
) -> Result<Vec<Argument>, ArgsError> {
    let mut merged = template.to_vec();
    for argument in incoming {
        let Some(target) = merged.iter_mut().find(|known| known.name == argument.name) else {
            continue;
        };
        if argument.value.is_some() {
            target.value.clone_from(&argument.value);
        } else if argument.value_from.is_some() {
            target.value_from.clone_from(&argument.value_from);
        }
    }
    match merged
        .iter()
        .find(|argument| argument.value.is_none() && argument.value_from.is_none())
    {
        Some(unresolved) => Err(ArgsError::NotResolved(unresolved.name.clone())),
        None => Ok(merged),
    }
}

/// The Kubernetes downward API's `ExtractFieldPathAsString` on the Rollout's metadata.
fn metadata_field(metadata: &ObjectMeta, path: &str) -> Result<String, ArgsError> {
    if let Some((field, key)) = split_subscript(path) {
        let map = match field {
            "metadata.labels" => &metadata.labels,
            "metadata.annotations" => &metadata.annotations,
            _ => return Err(ArgsError::SubscriptNotSupported(path.to_string())),
        };
        return Ok(map
            .as_ref()
            .and_then(|map| map.get(key))
            .cloned()
            .unwrap_or_default());
    }
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    match path {
        "metadata.name" => Ok(text(&metadata.name)),
        "metadata.namespace" => Ok(text(&metadata.namespace)),
        "metadata.uid" => Ok(text(&metadata.uid)),
        "metadata.labels" => Ok(format_map(metadata.labels.as_ref())),
        "metadata.annotations" => Ok(format_map(metadata.annotations.as_ref())),
        _ => Err(ArgsError::UnsupportedFieldPath(path.to_string())),
    }
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (field, key) = inner.split_once("['")?;
    (!field.is_empty()).then_some((field, key))
}

/// The downward API's `FormatMap`: sorted `key="value"` lines, values Go-quoted.
fn format_map(map: Option<&std::collections::BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}=\"{}\"", go_quote_inner(value)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Argo's `extractValueFromRollout`: splits the path on runs of `.`, `[` and `]`, walks maps by
/// key and lists by index, and formats the primitive at the end with Go's `%v`.
fn json_path_value(root: &serde_json::Value, path: &str) -> Result<String, ArgsError> {
    let mut current = root;
    for section in path
        .split(['.', '[', ']'])
        .filter(|section| !section.is_empty())
    {
        current = match current {
            serde_json::Value::Array(items) => {
                let index: usize = section
                    .parse()
                    .map_err(|_| ArgsError::InvalidIndex(section.to_string()))?;
                items.get(index).ok_or(ArgsError::IndexOutOfRange(index))?
            }
            serde_json::Value::Object(fields) => {
                fields.get(section).unwrap_or(&serde_json::Value::Null)
            }
            _ => return Err(ArgsError::InvalidPath(path.to_string())),
        };
    }
    match current {
        serde_json::Value::Null => Err(ArgsError::InvalidPath(path.to_string())),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            Err(ArgsError::NotPrimitive(path.to_string()))
        }
        serde_json::Value::String(text) => Ok(text.clone()),
        serde_json::Value::Bool(flag) => Ok(flag.to_string()),
        serde_json::Value::Number(number) => Ok(go_format_float(number.as_f64().unwrap_or(0.0))),
    }
}

/// Go's `%v` for a `float64` (every JSON number is one in Go): `strconv.FormatFloat(v, 'g', -1)`,
/// the shortest representation, in exponent form (`1e+06`) when the decimal exponent is below -4
/// or at least 6 (so `replicas: 1000000` reads `1e+06`, as it does in Argo).
pub fn go_format_float(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        return format!("{value}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_like_go_percent_v() {
        let cases = [
            (3.0, "3"),
            (1.5, "1.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
            (-2.5, "-2.5"),
        ];
        for (value, expected) in cases {
            assert_eq!(go_format_float(value), expected, "{value}");
        }
    }
}
