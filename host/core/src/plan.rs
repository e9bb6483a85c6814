//! The output of [`crate::plan()`]: ordered actions and the new status.
//!
//! # Contract with the controller
//!
//! The controller executes [`Plan::actions`] **in order**. If an action fails, it stops, does not
//! write [`Plan::status`], and reconciles again later: the planner compares what it wants with
//! what it observes (and with the status it last wrote, e.g. `status.canary.weights`), so the
//! next plan repeats whatever did not happen. Once every action succeeded, the controller writes
//! `status` (a merge patch on the status subresource) and requeues after
//! [`Plan::requeue_after`], if set.
//!
//! Router calls ([`RouterCall`]) go to every traffic router configured on the Rollout, in the
//! order they are configured.
//!
//! The order of the actions is part of the contract: traffic leaves the canary (router weight,
//! canary Service) before any ReplicaSet is scaled down, and a router never gets weight for a
//! canary that has no available pod.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;
use sluice_api::rollout::{
    RolloutAnalysis, RolloutExperimentStep, RolloutStatus, SetHeaderRoute, SetMirrorRoute,
    WeightDestination,
};

use crate::observed::RunKind;

/// Requeue delay while a router has not yet verified a weight (Argo's
/// `ROLLOUT_VERIFY_RETRY_INTERVAL`).
pub const VERIFY_RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// What to do next for one Rollout.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Plan {
    /// Actions to execute in order.
    pub actions: Vec<Action>,
    /// The status to write once every action succeeded.
    pub status: RolloutStatus,
    /// Reconcile again after this delay (e.g. for a timed pause, a scale-down deadline or a
    /// pending weight verification); `Duration::ZERO` means right after executing this plan.
    pub requeue_after: Option<Duration>,
}

impl Plan {
    /// True when the plan changes nothing in the cluster (status writes aside).
    pub fn has_no_actions(&self) -> bool {
        self.actions.is_empty()
    }

    /// The canary weights this plan sends to the routers, in order.
    pub fn weights_set(&self) -> impl Iterator<Item = i32> + '_ {
        self.actions.iter().filter_map(|action| match action {
            Action::Router(RouterCall::SetWeight { weight, .. }) => Some(*weight),
            _ => None,
        })
    }
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Action {
    /// Create the ReplicaSet of the desired revision.
    CreateReplicaSet(Box<NewReplicaSet>),
    /// Set a ReplicaSet's `spec.replicas`.
    ScaleReplicaSet {
        /// ReplicaSet name.
        name: String,
        /// Its current `spec.replicas`.
        from: i32,
        /// The new `spec.replicas`.
        to: i32,
    },
    /// Set the `rollout.argoproj.io/revision` annotation of a ReplicaSet that becomes the
    /// desired revision again (undo).
    SetReplicaSetRevision {
        /// ReplicaSet name.
        name: String,
        /// The new revision.
        revision: i64,
    },
    /// Add (or move) the `scale-down-deadline` annotation of a ReplicaSet.
    SetScaleDownDeadline {
        /// ReplicaSet name.
        name: String,
        /// When it may be scaled down (RFC 3339 in the annotation).
        deadline: Timestamp,
    },
    /// Remove the `scale-down-deadline` annotation of a ReplicaSet.
    RemoveScaleDownDeadline {
        /// ReplicaSet name.
        name: String,
    },
    /// Delete an old, scaled-down ReplicaSet beyond `revisionHistoryLimit`.
    DeleteReplicaSet {
        /// ReplicaSet name.
        name: String,
    },
    /// Set the Rollout's own `rollout.argoproj.io/revision` annotation.
    SetRolloutRevision {
        /// The revision of the desired ReplicaSet.
        revision: i64,
    },
    /// Point a Service's selector at a revision (`rollouts-pod-template-hash: <hash>`) and mark
    /// it managed by the Rollout.
    SetServiceSelector {
        /// Service name.
        service: String,
        /// The pod-template hash to select.
        pod_template_hash: String,
    },
    /// A call to the traffic routers.
    Router(RouterCall),
    /// Create an AnalysisRun; the analysis engine builds it from the templates.
    CreateAnalysisRun(Box<AnalysisRunRequest>),
    /// Set `spec.terminate: true` on an AnalysisRun.
    TerminateAnalysisRun {
        /// AnalysisRun name.
        name: String,
    },
    /// Create the Experiment of an `experiment` step.
    CreateExperiment(Box<ExperimentRequest>),
    /// Set `spec.terminate: true` on an Experiment.
    TerminateExperiment {
        /// Experiment name.
        name: String,
    },
    /// Delete a completed AnalysisRun beyond the Rollout's history limits.
    DeleteAnalysisRun {
        /// AnalysisRun name.
        name: String,
    },
    /// Delete a completed Experiment beyond the Rollout's history limits.
    DeleteExperiment {
        /// Experiment name.
        name: String,
    },
    /// Evict a pod created before `spec.restartAt` (a rolling restart).
    EvictPod {
        /// Pod name.
        name: String,
    },
    /// Call a step plugin (Run, Terminate or Abort); the status its outcome is recorded as
    /// ([`crate::step_plugin::record`]) comes back in [`crate::Observed::step_plugin_reports`].
    StepPlugin(crate::step_plugin::StepPluginCall),
}

/// The ReplicaSet to create for the desired revision.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NewReplicaSet {
    /// `<rollout>-<podTemplateHash>`.
    pub name: String,
    /// The `rollouts-pod-template-hash` label (also added to the selector and pod template).
    pub pod_template_hash: String,
    /// The `rollout.argoproj.io/revision` annotation.
    pub revision: i64,
    /// Initial `spec.replicas`.
    pub replicas: i32,
    /// The pod template, with the hash label added.
    pub template: PodTemplateSpec,
}

/// A traffic-router call (the `traffic-router` WIT interface).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum RouterCall {
    /// Point the canary and stable destinations at these revisions.
    UpdateHash {
        /// Canary pod-template hash.
        canary_hash: String,
        /// Stable pod-template hash.
        stable_hash: String,
        /// Experiment destinations.
        additional: Vec<WeightDestination>,
    },
    /// Send `weight` (out of `maxTrafficWeight`) to the canary.
    SetWeight {
        /// Canary weight.
        weight: i32,
        /// Experiment destinations.
        additional: Vec<WeightDestination>,
    },
    /// Apply (or, with no matches, remove) a header route.
    SetHeaderRoute(SetHeaderRoute),
    /// Apply (or, with no matches, remove) a mirror route.
    SetMirrorRoute(SetMirrorRoute),
    /// Check that the routers apply `weight`; report the result in
    /// [`crate::Observed::weight_verification`].
    VerifyWeight {
        /// Canary weight to verify.
        weight: i32,
        /// Experiment destinations.
        additional: Vec<WeightDestination>,
    },
    /// Remove every header and mirror route the Rollout manages.
    RemoveManagedRoutes,
}

/// What the analysis engine needs to create an AnalysisRun for the Rollout.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AnalysisRunRequest {
    /// `<rollout>-<podHash>-<revision>[-<stepIndex>|-pre|-post]` (plus `.N` after a name clash).
    pub name: String,
    /// Which part of the strategy it serves (`rollout-type`, `step-index` labels).
    pub kind: RunKind,
    /// Templates, args, dry-run, retention and metadata, as written in the Rollout.
    pub analysis: RolloutAnalysis,
    /// Pod-template hash of the desired revision (`rollouts-pod-template-hash` label, and
    /// `podTemplateHashValue: Latest`).
    pub pod_template_hash: String,
    /// Pod-template hash of the stable revision (`podTemplateHashValue: Stable`).
    pub stable_pod_template_hash: Option<String>,
    /// The revision (`rollout.argoproj.io/revision` annotation).
    pub revision: i64,
}

/// What the experiment controller needs to create a step's Experiment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ExperimentRequest {
    /// `<rollout>-<podHash>-<revision>-<stepIndex>` (plus `.N` after a name clash).
    pub name: String,
    /// The step index.
    pub step_index: i32,
    /// The step, as written in the Rollout.
    pub step: RolloutExperimentStep,
    /// Pod-template hash of the desired revision (`specRef: canary`).
    pub pod_template_hash: String,
    /// Pod-template hash of the stable revision (`specRef: stable`).
    pub stable_pod_template_hash: Option<String>,
    /// The revision.
    pub revision: i64,
}
