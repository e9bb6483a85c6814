//! What the controller saw: the input of [`crate::plan()`].
//!
//! The controller reads these from its informers (and from the plugin runtime for traffic and
//! step plugins) and hands them over as plain data, so that the planner never performs I/O.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;
use sluice_api::analysis::AnalysisPhase;
use sluice_api::rollout::{Rollout, StepPluginStatus};

/// Everything the planner needs to decide the next actions of one Rollout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The Rollout (metadata, spec and last written status).
    pub rollout: Rollout,
    /// The ReplicaSets the Rollout owns.
    pub replica_sets: Vec<ObservedReplicaSet>,
    /// The Services the strategy names (canary/stable, active/preview); missing ones are absent.
    pub services: Vec<ObservedService>,
    /// The AnalysisRuns the Rollout owns.
    pub analysis_runs: Vec<ObservedAnalysisRun>,
    /// The Experiments the Rollout owns.
    pub experiments: Vec<ObservedExperiment>,
    /// The result of the last `verify-weight` router call, if one was made.
    pub weight_verification: Option<WeightVerification>,
    /// The step plugin statuses: the Rollout's `status.canary.stepPluginStatuses` with the
    /// outcomes of calls made since then merged in ([`crate::step_plugin::merge`]).
    pub step_plugin_reports: Vec<StepPluginStatus>,
    /// Spec violations (`path: message`), from `sluice_api::validation`; non-empty means
    /// `InvalidSpec`.
    pub validation_errors: Vec<String>,
    /// The pods of the Rollout's ReplicaSets, listed only while a restart is due
    /// ([`crate::restart::restart_due`]); `None` otherwise.
    pub pods: Option<Vec<crate::restart::ObservedPod>>,
}

/// A ReplicaSet owned by the Rollout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedReplicaSet {
    /// Its name (`<rollout>-<podTemplateHash>`).
    pub name: String,
    /// The `rollouts-pod-template-hash` label.
    pub pod_template_hash: String,
    /// The `rollout.argoproj.io/revision` annotation (0 when absent or unparsable).
    pub revision: i64,
    /// Its pod template (the hash label included); compared with the Rollout's template to find
    /// the ReplicaSet of the desired revision.
    pub template: PodTemplateSpec,
    /// `spec.replicas`.
    pub spec_replicas: i32,
    /// `status.replicas`.
    pub replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
    /// The `scale-down-deadline` annotation, parsed.
    pub scale_down_deadline: Option<Timestamp>,
    /// `metadata.creationTimestamp`.
    pub created_at: Timestamp,
}

/// A Service referenced by the strategy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedService {
    /// Its name.
    pub name: String,
    /// The value of `rollouts-pod-template-hash` in its selector, if present.
    pub selected_pod_template_hash: Option<String>,
    /// Whether it carries the `argo-rollouts.argoproj.io/managed-by-rollouts` annotation.
    pub managed_by_rollout: bool,
}

/// Which part of the strategy an AnalysisRun serves (its `rollout-type` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum RunKind {
    /// A canary `analysis` step, with its index.
    Step(i32),
    /// The canary background analysis.
    Background,
    /// Blue-green pre-promotion analysis.
    PrePromotion,
    /// Blue-green post-promotion analysis.
    PostPromotion,
}

impl RunKind {
    /// The `rollout-type` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Step(_) => "Step",
            Self::Background => "Background",
            Self::PrePromotion => "PrePromotion",
            Self::PostPromotion => "PostPromotion",
        }
    }
}

/// An AnalysisRun owned by the Rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedAnalysisRun {
    /// Its name.
    pub name: String,
    /// Its phase (`Pending` when it has none yet).
    pub phase: AnalysisPhase,
    /// `status.message`.
    pub message: Option<String>,
    /// `spec.terminate` is already set.
    pub terminating: bool,
    /// `metadata.creationTimestamp` (history limits delete the oldest first).
    pub created_at: Timestamp,
}

/// An Experiment owned by the Rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedExperiment {
    /// Its name.
    pub name: String,
    /// Its phase (`Pending` when it has none yet).
    pub phase: AnalysisPhase,
    /// `status.message`.
    pub message: Option<String>,
    /// `spec.terminate` is already set.
    pub terminating: bool,
    /// `metadata.creationTimestamp` (history limits delete the oldest first).
    pub created_at: Timestamp,
    /// Its templates' Services and pod-template hashes, as its status reports them (traffic
    /// goes to a template with a `weight` once both are known).
    pub templates: Vec<ExperimentTemplateTarget>,
}

/// Where one template of an Experiment can receive traffic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExperimentTemplateTarget {
    /// The template's name.
    pub name: String,
    /// `status.templateStatuses[].serviceName`.
    pub service_name: Option<String>,
    /// `status.templateStatuses[].podTemplateHash`.
    pub pod_template_hash: Option<String>,
}

/// The outcome of the last `verify-weight` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightVerification {
    /// The canary weight that was verified.
    pub weight: i32,
    /// `Some(true)`: verified; `Some(false)`: not yet; `None`: the routers cannot verify.
    pub verified: Option<bool>,
}

impl Observed {
    /// The ReplicaSet with this pod-template hash.
    pub fn replica_set_by_hash(&self, hash: &str) -> Option<&ObservedReplicaSet> {
        self.replica_sets
            .iter()
            .find(|rs| rs.pod_template_hash == hash)
    }

    /// The Service with this name.
    pub fn service(&self, name: &str) -> Option<&ObservedService> {
        self.services.iter().find(|service| service.name == name)
    }

    /// The AnalysisRun with this name.
    pub fn analysis_run(&self, name: &str) -> Option<&ObservedAnalysisRun> {
        self.analysis_runs.iter().find(|run| run.name == name)
    }

    /// The Experiment with this name.
    pub fn experiment(&self, name: &str) -> Option<&ObservedExperiment> {
        self.experiments
            .iter()
            .find(|experiment| experiment.name == name)
    }
}
