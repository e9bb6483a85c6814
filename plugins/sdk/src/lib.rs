//! The guest SDK for Sluice plugins: traits, typed Kubernetes helpers and export macros over the
//! WIT bindings of `sluice:plugin@0.1.0`.
//!
//! A plugin crate is a `cdylib` built for `wasm32-wasip2` that enables exactly one world feature
//! of this crate (`traffic-router`, `metric-provider` or `step`), implements [`TrafficRouter`],
//! [`MetricProvider`] or [`StepPlugin`], and exports it:
//!
//! ```
//! use sluice_plugin_sdk::{PluginError, RolloutContext, TrafficRouter, WeightDestination};
//!
//! struct Router;
//!
//! impl TrafficRouter for Router {
//!     fn plugin_type() -> String { "example".into() }
//!     fn set_weight(ctx: RolloutContext, weight: i32, _: Vec<WeightDestination>) -> Result<(), PluginError> {
//!         sluice_plugin_sdk::info!("setting weight {weight} for {}", ctx.name);
//!         Ok(())
//!     }
//! }
//!
//! sluice_plugin_sdk::export_traffic_router!(Router);
//! ```
//!
//! The export macros expand to nothing off `wasm32`, so plugin crates also build natively and
//! their logic can be unit-tested with `cargo test`; off `wasm32`, host calls ([`kube`],
//! `http`) return an "unavailable" error and log macros print to stderr.

#[cfg(all(
    target_arch = "wasm32",
    any(
        all(feature = "traffic-router", feature = "metric-provider"),
        all(feature = "traffic-router", feature = "step"),
        all(feature = "metric-provider", feature = "step"),
    )
))]
compile_error!(
    "enable only one of the `traffic-router`, `metric-provider` and `step` features in a plugin crate"
);

#[doc(hidden)]
pub mod wit;

pub mod kube;
pub mod log;

#[cfg(any(feature = "metric-provider", feature = "step"))]
pub mod http;

mod traits;

pub use crate::kube::KubeError;
pub use crate::traits::*;
#[cfg(feature = "step")]
pub use crate::wit::step::exports::sluice::plugin::step::{StepContext, StepPhase, StepResult};
pub use crate::wit::types::{
    AnalysisContext, AnalysisPhase, HeaderMatch, HeaderRoute, Measurement, MirrorRoute,
    PluginError, RolloutContext, RouteMatch, StringMatch, Verification, WeightDestination,
};

/// Re-exported for the export macros.
#[doc(hidden)]
pub use wit_bindgen;

impl From<KubeError> for PluginError {
    fn from(error: KubeError) -> Self {
        match error {
            KubeError::AccessDenied(m) => Self::AccessDenied(m),
            KubeError::NotFound(m) => Self::NotFound(m),
            KubeError::Conflict(m) => Self::Conflict(m),
            KubeError::Invalid(m) => Self::Internal(m),
            KubeError::Unavailable(m) => Self::Transient(m),
        }
    }
}

impl PluginError {
    /// Parses the plugin configuration JSON of a context into `T`, or an `invalid-config` error.
    pub fn parse_config<T: serde::de::DeserializeOwned>(
        config_json: &str,
    ) -> Result<T, PluginError> {
        let text = if config_json.trim().is_empty() {
            "{}"
        } else {
            config_json
        };
        serde_json::from_str(text)
            .map_err(|e| PluginError::InvalidConfig(format!("plugin config: {e}")))
    }
}
