//! The controller's errors.

use sluice_runtime::CallError;

/// Why a reconcile (or starting the controller) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API request failed.
    #[error("{action}: {source}")]
    Kube {
        /// What the controller was doing, e.g. `create ReplicaSet web-6c5f7d9b8`.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A traffic-router plugin call failed.
    #[error("traffic router {router}: {source}")]
    Router {
        /// The router's name, as the Rollout refers to it.
        router: String,
        /// The plugin call error.
        #[source]
        source: CallError,
    },
    /// The Rollout configures a traffic router Sluice does not serve.
    #[error("traffic router {0} is not supported: use a traffic-router plugin")]
    UnsupportedRouter(String),
    /// The AnalysisRun a Rollout requests could not be built from its templates.
    #[error("building AnalysisRun {run}: {source}")]
    AnalysisBuild {
        /// The AnalysisRun's name.
        run: String,
        /// Why.
        #[source]
        source: sluice_core::analysis::BuildError,
    },
    /// The Experiment of a Rollout's `experiment` step could not be built.
    #[error("building Experiment {experiment}: {source}")]
    ExperimentBuild {
        /// The Experiment's name.
        experiment: String,
        /// Why.
        #[source]
        source: sluice_core::experiment::StepExperimentError,
    },
    /// An object could not be converted to or from JSON.
    #[error("serializing {what}: {source}")]
    Serialization {
        /// The object.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The plugin engine could not be created.
    #[error("creating the plugin engine: {0}")]
    Engine(#[source] sluice_runtime::EngineError),
    /// The plugins' HTTP client could not be created.
    #[error("creating the plugins' HTTP client: {0}")]
    HttpBackend(#[source] sluice_runtime::HttpFailure),
    /// Another replica took the leader lease, or it could not be renewed in time.
    #[error("lost leadership of the controller lease")]
    LeadershipLost,
    /// An object from the cache has no namespace or name.
    #[error("object without {0}")]
    MissingMetadata(&'static str),
}

impl Error {
    /// A short, stable label for metrics (`reconcile_errors_total{error=...}`).
    pub fn metric_label(&self) -> String {
        match self {
            Self::Kube { .. } => "kube",
            Self::Router { .. } => "router",
            Self::UnsupportedRouter(_) => "unsupported_router",
            Self::AnalysisBuild { .. } => "analysis_build",
            Self::ExperimentBuild { .. } => "experiment_build",
            Self::Serialization { .. } => "serialization",
            Self::MissingMetadata(_) => "missing_metadata",
            Self::Engine(_) => "engine",
            Self::HttpBackend(_) => "http_backend",
            Self::LeadershipLost => "leadership_lost",
        }
        .to_string()
    }

    /// Whether the error is the Rollout's traffic router failing (a plugin error, a trap, a
    /// timeout, a plugin that is not loaded, or a router Sluice does not serve): it is recorded
    /// in the Rollout's status, not only logged.
    pub fn is_router_failure(&self) -> bool {
        matches!(self, Self::Router { .. } | Self::UnsupportedRouter(_))
    }

    /// Wraps a Kubernetes client error with what the controller was doing.
    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source,
        }
    }
}

/// The controller's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
