//! Sluice's Kubernetes API: the `argoproj.io/v1alpha1` types, their defaults, validation and CRD
//! generation.
//!
//! Sluice serves Argo Rollouts' API unchanged, so every type here keeps Argo's field names and
//! JSON shape: a manifest written for Argo Rollouts parses into these types and serializes back to
//! the same document. Defaults are not written into objects; they are applied by the accessor
//! methods (`Rollout::replicas()`, `Metric::consecutive_error_limit()`, ...), exactly where Argo
//! applies them.
//!
//! - [`rollout`] holds `Rollout` (canary and blue-green strategies, status);
//! - [`analysis`] holds `AnalysisTemplate`, `ClusterAnalysisTemplate`, `AnalysisRun` and metrics;
//! - [`experiment`] holds `Experiment`;
//! - [`validation`] checks the rules Argo enforces, as precise `path: message` violations;
//! - [`manifest`] parses multi-document YAML into typed objects (used by `sluice lint`);
//! - [`crd`] renders the CustomResourceDefinitions committed under `crds/`.

pub mod analysis;
pub mod crd;
pub mod duration;
pub mod experiment;
pub mod intstr;
pub mod labels;
pub mod manifest;
pub mod rollout;
mod schema;
pub mod selector;
pub mod validation;

pub use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The API group Sluice serves.
pub const GROUP: &str = "argoproj.io";
/// The API version Sluice serves.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Sluice object.
pub const API_VERSION: &str = "argoproj.io/v1alpha1";
