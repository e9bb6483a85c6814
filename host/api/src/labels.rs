//! Well-known label and annotation keys, shared with Argo Rollouts so that existing tooling keeps
//! working.

/// Label on ReplicaSets, pods and Service selectors: the pod-template hash of a revision.
pub const POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";
/// Annotation on ReplicaSets: the rollout revision number.
pub const REVISION: &str = "rollout.argoproj.io/revision";
/// Annotation on Services and routing objects: the Rollout that manages them.
pub const MANAGED_BY: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";
/// Label on AnalysisRuns: `Step`, `Background`, `PrePromotion` or `PostPromotion`.
pub const ROLLOUT_TYPE: &str = "rollout-type";
/// Label on AnalysisRuns created by a step: the step index.
pub const STEP_INDEX: &str = "step-index";
/// Label selecting the controller instance (`--instance-id`) that owns an object.
pub const INSTANCE_ID: &str = "argo-rollouts.argoproj.io/controller-instance-id";

/// The [`INSTANCE_ID`] label of a parent's `labels`, to put on the AnalysisRuns and Experiments
/// created for it, so that they are reconciled by the same controller instance.
pub fn instance_id_label(
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<(String, String)> {
    labels?
        .get(INSTANCE_ID)
        .map(|id| (INSTANCE_ID.to_owned(), id.clone()))
}
/// Annotation on ReplicaSets: when a scaled-down-later ReplicaSet may be scaled down.
pub const SCALE_DOWN_DEADLINE: &str = "scale-down-deadline";
/// Annotation on ReplicaSets: the ephemeral metadata last applied to their pods.
pub const EPHEMERAL_METADATA: &str = "rollout.argoproj.io/ephemeral-metadata";
/// Annotation on an AnalysisRun or Experiment: the rollout revision it was created for.
pub const RUN_REVISION: &str = "rollout.argoproj.io/revision";
