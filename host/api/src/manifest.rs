//! Multi-document YAML manifests parsed into typed Sluice objects.
//!
//! Documents of other kinds (Services, Ingresses, routes) are kept as untyped objects so a
//! manifest file can be linted as a whole.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::API_VERSION;
use crate::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use crate::experiment::Experiment;
use crate::rollout::Rollout;
use crate::validation::{self, Violation};

/// A typed object from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// A Rollout.
    Rollout(Box<Rollout>),
    /// An AnalysisTemplate.
    AnalysisTemplate(Box<AnalysisTemplate>),
    /// A ClusterAnalysisTemplate.
    ClusterAnalysisTemplate(Box<ClusterAnalysisTemplate>),
    /// An AnalysisRun.
    AnalysisRun(Box<AnalysisRun>),
    /// An Experiment.
    Experiment(Box<Experiment>),
    /// Any other object, kept as JSON.
    Other(serde_json::Value),
}

impl Object {
    /// `Kind/name`, as lint messages show it.
    pub fn describe(&self) -> String {
        let (kind, name) = match self {
            Self::Rollout(object) => ("Rollout", object.metadata.name.clone()),
            Self::AnalysisTemplate(object) => ("AnalysisTemplate", object.metadata.name.clone()),
            Self::ClusterAnalysisTemplate(object) => {
                ("ClusterAnalysisTemplate", object.metadata.name.clone())
            }
            Self::AnalysisRun(object) => ("AnalysisRun", object.metadata.name.clone()),
            Self::Experiment(object) => ("Experiment", object.metadata.name.clone()),
            Self::Other(value) => {
                let kind = value["kind"].as_str().unwrap_or("Unknown");
                let name = value["metadata"]["name"].as_str().map(str::to_string);
                return format!("{kind}/{}", name.as_deref().unwrap_or("<unnamed>"));
            }
        };
        format!("{kind}/{}", name.as_deref().unwrap_or("<unnamed>"))
    }

    /// The object's violations of Sluice's rules (none for other kinds).
    pub fn violations(&self) -> Vec<Violation> {
        match self {
            Self::Rollout(rollout) => validation::validate_rollout(rollout),
            Self::AnalysisTemplate(template) => {
                validation::validate_analysis_template(&template.spec)
            }
            Self::ClusterAnalysisTemplate(template) => {
                validation::validate_analysis_template(&template.spec.template)
            }
            Self::AnalysisRun(run) => validation::validate_analysis_run(&run.spec),
            Self::Experiment(experiment) => validation::validate_experiment(experiment),
            Self::Other(_) => Vec::new(),
        }
    }

    /// The object as JSON, in the shape it would be sent to the API server.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Self::Rollout(object) => serde_json::to_value(object),
            Self::AnalysisTemplate(object) => serde_json::to_value(object),
            Self::ClusterAnalysisTemplate(object) => serde_json::to_value(object),
            Self::AnalysisRun(object) => serde_json::to_value(object),
            Self::Experiment(object) => serde_json::to_value(object),
            Self::Other(value) => return value.clone(),
        };
        value.expect("Sluice objects always serialize")
    }
}

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// The text is not valid YAML.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A document is not a mapping with `apiVersion` and `kind`.
    #[error("document {document}: {message}")]
    NotAnObject {
        /// 1-based document number in the file.
        document: usize,
        /// What is wrong.
        message: String,
    },
    /// A Sluice object does not fit its type.
    #[error("{object}: {path}: {message}")]
    Shape {
        /// `Kind/name` of the object.
        object: String,
        /// The offending field.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Parses every document of a multi-document YAML text, one result per non-empty document.
/// A YAML syntax error ends the list, since the parser cannot find the next document.
pub fn parse_documents(text: &str) -> Vec<Result<Object, ManifestError>> {
    let mut results = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(value) => value,
            Err(error) => {
                results.push(Err(syntax_error(error)));
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let parsed = serde_json::to_value(&value)
            .map_err(|error| ManifestError::NotAnObject {
                document: index + 1,
                message: error.to_string(),
            })
            .and_then(|json| parse_object(index + 1, json));
        results.push(parsed);
    }
    results
}

/// Parses one object given as JSON.
pub fn parse_object(document: usize, json: serde_json::Value) -> Result<Object, ManifestError> {
    let not_an_object = |message: &str| ManifestError::NotAnObject {
        document,
        message: message.to_string(),
    };
    if !json.is_object() {
        return Err(not_an_object("expected a Kubernetes object (a mapping)"));
    }
    let api_version = json["apiVersion"]
        .as_str()
        .ok_or_else(|| not_an_object("apiVersion is required"))?;
    let kind = json["kind"]
        .as_str()
        .ok_or_else(|| not_an_object("kind is required"))?;
    if api_version != API_VERSION {
        return Ok(Object::Other(json));
    }
    let described = format!(
        "{kind}/{}",
        json["metadata"]["name"].as_str().unwrap_or("<unnamed>")
    );
    let kind = kind.to_string();
    let mut json = json;
    prune_nulls(&mut json);
    let object = match kind.as_str() {
        "Rollout" => Object::Rollout(typed(&described, json)?),
        "AnalysisTemplate" => Object::AnalysisTemplate(typed(&described, json)?),
        "ClusterAnalysisTemplate" => Object::ClusterAnalysisTemplate(typed(&described, json)?),
        "AnalysisRun" => Object::AnalysisRun(typed(&described, json)?),
        "Experiment" => Object::Experiment(typed(&described, json)?),
        other => {
            return Err(not_an_object(&format!(
                "{API_VERSION} has no kind {other:?} (expected Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun or Experiment)"
            )));
        }
    };
    Ok(object)
}

/// Fields whose content is opaque configuration, kept verbatim (nulls included).
const OPAQUE_FIELDS: [&str; 4] = ["plugins", "plugin", "config", "jsonBody"];

/// Drops `null` values from mappings, as the API server does for fields that are not nullable
/// (a bare `args:` in YAML is null); opaque plugin configuration is left as written.
fn prune_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, field| !field.is_null());
            for (key, field) in map.iter_mut() {
                if !OPAQUE_FIELDS.contains(&key.as_str()) {
                    prune_nulls(field);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

fn typed<T: DeserializeOwned>(
    described: &str,
    json: serde_json::Value,
) -> Result<Box<T>, ManifestError> {
    serde_path_to_error::deserialize(json)
        .map(Box::new)
        .map_err(|error| ManifestError::Shape {
            object: described.to_string(),
            path: error.path().to_string(),
            message: error.into_inner().to_string(),
        })
}

fn syntax_error(error: serde_yaml::Error) -> ManifestError {
    let (line, column) = error
        .location()
        .map_or((0, 0), |location| (location.line(), location.column()));
    let message = error.to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    ManifestError::Syntax {
        line,
        column,
        message,
    }
}
