//! What the CLI derives from a Rollout for display, as Argo's CLI does (`utils/rollout`,
//! `utils/replicaset` and `pkg/kubectl-argo-rollouts/info`): the phase and message, the current
//! step, the set weight, and the role of each ReplicaSet.

use k8s_openapi::api::apps::v1::ReplicaSet;
use sluice_api::labels;
use sluice_api::rollout::{Rollout, RolloutPhase, RolloutStatus};

/// The phase and message the CLI shows (Argo's `GetRolloutPhase`): `Progressing` while the
/// controller has not observed the latest spec or is unpausing, then the controller-computed
/// `status.phase`, or (for objects no controller has written a phase into) the phase computed
/// from spec and status as Argo's `CalculateRolloutPhase` does.
pub fn rollout_phase(rollout: &Rollout) -> (RolloutPhase, String) {
    let status = rollout.status.clone().unwrap_or_default();
    if !is_generation_observed(rollout, &status) {
        return (
            RolloutPhase::Progressing,
            "waiting for rollout spec update to be observed".to_owned(),
        );
    }
    if status.controller_pause && status.pause_conditions.is_empty() {
        return (
            RolloutPhase::Progressing,
            "waiting for rollout to unpause".to_owned(),
        );
    }
    if let Some(phase) = status.phase {
        return (phase, status.message.clone().unwrap_or_default());
    }
    calculate_phase(rollout, &status)
}

/// True when the user paused the rollout (`spec.paused`) and the controller reports it Paused: it
/// stays so until someone runs `promote`.
pub fn is_paused_by_user(rollout: &Rollout) -> bool {
    rollout.spec.paused && rollout_phase(rollout).0 == RolloutPhase::Paused
}

fn is_generation_observed(rollout: &Rollout, status: &RolloutStatus) -> bool {
    let Some(observed) = status
        .observed_generation
        .as_deref()
        .and_then(|text| text.parse::<i64>().ok())
    else {
        return true;
    };
    let generation = rollout.metadata.generation.unwrap_or(0);
    observed >= generation
}

fn calculate_phase(rollout: &Rollout, status: &RolloutStatus) -> (RolloutPhase, String) {
    for condition in &status.conditions {
        if condition.type_ == "InvalidSpec" {
            return (
                RolloutPhase::Degraded,
                format!("InvalidSpec: {}", condition.message),
            );
        }
        if condition.reason == "RolloutAborted" || condition.reason == "ProgressDeadlineExceeded" {
            return (
                RolloutPhase::Degraded,
                format!("{}: {}", condition.reason, condition.message),
            );
        }
    }
    if rollout.spec.paused {
        return (RolloutPhase::Paused, "manually paused".to_owned());
    }
    if let Some(condition) = status.pause_conditions.first() {
        return (RolloutPhase::Paused, format!("{:?}", condition.reason));
    }
    if let Some(restart_at) = &rollout.spec.restart_at
        && status.restarted_at.as_ref() != Some(restart_at)
    {
        return (
            RolloutPhase::Progressing,
            "rollout is restarting".to_owned(),
        );
    }
    if status.updated_replicas < rollout.replicas() {
        return (
            RolloutPhase::Progressing,
            "more replicas need to be updated".to_owned(),
        );
    }
    if status.available_replicas < status.updated_replicas {
        return (
            RolloutPhase::Progressing,
            "updated replicas are still becoming available".to_owned(),
        );
    }
    let stable = status.stable_rs.as_deref().unwrap_or("");
    let fully_promoted = !stable.is_empty() && Some(stable) == status.current_pod_hash.as_deref();
    if rollout.blue_green().is_some() {
        let active = status.blue_green.active_selector.as_deref().unwrap_or("");
        if active.is_empty() || Some(active) != status.current_pod_hash.as_deref() {
            return (
                RolloutPhase::Progressing,
                "active service cutover pending".to_owned(),
            );
        }
        if !fully_promoted {
            return (
                RolloutPhase::Progressing,
                "waiting for post-promotion verification to complete".to_owned(),
            );
        }
    } else if let Some(canary) = rollout.canary() {
        if canary.traffic_routing.is_none() && status.replicas > status.updated_replicas {
            return (
                RolloutPhase::Progressing,
                "old replicas are pending termination".to_owned(),
            );
        }
        if !fully_promoted {
            return (
                RolloutPhase::Progressing,
                "waiting for all steps to complete".to_owned(),
            );
        }
    }
    (RolloutPhase::Healthy, String::new())
}

/// The current canary step index (`status.currentStepIndex`, 0 when unset), for a canary with
/// steps; `None` otherwise (Argo's `GetCurrentCanaryStep`). The index may equal the number of
/// steps once every step is done.
pub fn current_step_index(rollout: &Rollout) -> Option<i32> {
    let canary = rollout.canary()?;
    if canary.steps.is_empty() {
        return None;
    }
    Some(
        rollout
            .status
            .as_ref()
            .and_then(|status| status.current_step_index)
            .unwrap_or(0),
    )
}

/// `i/n` for a canary with steps whose status has a current step index.
pub fn step_text(rollout: &Rollout) -> Option<String> {
    let canary = rollout.canary()?;
    let index = rollout.status.as_ref()?.current_step_index?;
    (!canary.steps.is_empty()).then(|| format!("{index}/{}", canary.steps.len()))
}

/// The weight the current step asks for (Argo's `GetCurrentSetWeight`): 0 when aborted, 100 when
/// there is no current step, else the last `setWeight` at or before the current step (0 if none).
pub fn set_weight(rollout: &Rollout) -> i32 {
    if rollout.status.as_ref().is_some_and(|status| status.abort) {
        return 0;
    }
    let Some(canary) = rollout.canary() else {
        return 100;
    };
    let Some(index) = current_step_index(rollout) else {
        return 100;
    };
    let Ok(index) = usize::try_from(index) else {
        return 100;
    };
    if index >= canary.steps.len() {
        return 100;
    }
    canary.steps[..=index]
        .iter()
        .rev()
        .find_map(|step| step.set_weight)
        .unwrap_or(0)
}

/// The role a ReplicaSet plays in its Rollout, shown next to it and its images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaSetRoles {
    /// It runs the stable revision.
    pub stable: bool,
    /// It runs the canary (desired, not yet stable) revision.
    pub canary: bool,
    /// The blue-green active Service selects it.
    pub active: bool,
    /// The blue-green preview Service selects it.
    pub preview: bool,
    /// It is behind the ping Service (ping-pong canary).
    pub ping: bool,
    /// It is behind the pong Service (ping-pong canary).
    pub pong: bool,
}

impl ReplicaSetRoles {
    /// The role tags, in Argo's order (`stable`, `canary`|`active`|`preview`, `ping`, `pong`).
    pub fn tags(self) -> Vec<&'static str> {
        let mut tags = Vec::new();
        if self.stable {
            tags.push("stable");
        }
        if self.canary {
            tags.push("canary");
        } else if self.active {
            tags.push("active");
        } else if self.preview {
            tags.push("preview");
        }
        if self.ping {
            tags.push("ping");
        }
        if self.pong {
            tags.push("pong");
        }
        tags
    }
}

/// The roles of a ReplicaSet of `rollout` (Argo's `GetReplicaSetInfo`).
pub fn replica_set_roles(rollout: &Rollout, replica_set: &ReplicaSet) -> ReplicaSetRoles {
    let status = rollout.status.clone().unwrap_or_default();
    let hash = replica_set
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(labels::POD_TEMPLATE_HASH))
        .map(String::as_str)
        .unwrap_or("");
    let mut roles = ReplicaSetRoles::default();
    if let Some(canary) = rollout.canary() {
        let ping_pong = canary.ping_pong.is_some();
        let stable_is_ping = status.canary.stable_ping_pong.as_deref() == Some("ping");
        if status.stable_rs.as_deref() == Some(hash) {
            roles.stable = true;
            roles.ping = ping_pong && stable_is_ping;
            roles.pong = ping_pong && !stable_is_ping;
        } else if status.current_pod_hash.as_deref() == Some(hash) {
            roles.canary = true;
            roles.ping = ping_pong && !stable_is_ping;
            roles.pong = ping_pong && stable_is_ping;
        }
    }
    if rollout.blue_green().is_some() {
        roles.stable = status.stable_rs.as_deref() == Some(hash);
        if status.blue_green.active_selector.as_deref() == Some(hash) {
            roles.active = true;
        } else if status.blue_green.preview_selector.as_deref() == Some(hash) {
            roles.preview = true;
        }
    }
    roles
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::canary_rollout;

    fn phase(spec: serde_json::Value, status: serde_json::Value) -> (RolloutPhase, String) {
        rollout_phase(&canary_rollout(spec, status))
    }

    #[test]
    fn the_controller_phase_is_shown_once_the_spec_is_observed() {
        let observed = json!({"phase": "Paused", "message": "CanaryPauseStep", "observedGeneration": "3",
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2025-03-01T11:58:00Z"}]});
        assert_eq!(
            phase(json!({}), observed),
            (RolloutPhase::Paused, "CanaryPauseStep".to_owned())
        );
        assert_eq!(
            phase(
                json!({}),
                json!({"phase": "Healthy", "observedGeneration": "2"})
            ),
            (
                RolloutPhase::Progressing,
                "waiting for rollout spec update to be observed".to_owned()
            )
        );
        assert_eq!(
            phase(
                json!({}),
                json!({"phase": "Paused", "controllerPause": true})
            ),
            (
                RolloutPhase::Progressing,
                "waiting for rollout to unpause".to_owned()
            )
        );
    }

    #[test]
    fn without_a_controller_phase_it_is_computed_as_argo_does() {
        let healthy = json!({"replicas": 5, "updatedReplicas": 5, "availableReplicas": 5,
            "stableRS": "abc", "currentPodHash": "abc"});
        assert_eq!(
            phase(json!({}), healthy.clone()),
            (RolloutPhase::Healthy, String::new())
        );
        assert_eq!(
            phase(json!({"paused": true}), healthy.clone()),
            (RolloutPhase::Paused, "manually paused".to_owned())
        );
        let mut aborted = healthy.clone();
        aborted["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "RolloutAborted", "message": "Rollout aborted update to revision 2"}]);
        assert_eq!(
            phase(json!({}), aborted),
            (
                RolloutPhase::Degraded,
                "RolloutAborted: Rollout aborted update to revision 2".to_owned()
            )
        );
        let mut updating = healthy;
        updating["currentPodHash"] = json!("def");
        assert_eq!(
            phase(json!({}), updating),
            (
                RolloutPhase::Progressing,
                "waiting for all steps to complete".to_owned()
            )
        );
    }

    #[test]
    fn set_weight_follows_the_last_set_weight_step() {
        let weight = |status| set_weight(&canary_rollout(json!({}), status));
        assert_eq!(weight(json!({})), 20);
        assert_eq!(weight(json!({"currentStepIndex": 2})), 20);
        assert_eq!(weight(json!({"currentStepIndex": 3})), 60);
        assert_eq!(weight(json!({"currentStepIndex": 4})), 100);
        assert_eq!(weight(json!({"currentStepIndex": 3, "abort": true})), 0);
        let pause_first = canary_rollout(
            json!({"strategy": {"canary": {"steps": [{"pause": {}}, {"setWeight": 50}]}}}),
            json!({}),
        );
        assert_eq!(set_weight(&pause_first), 0);
    }

    #[test]
    fn paused_by_user_needs_spec_paused_and_the_paused_phase() {
        let paused = canary_rollout(
            json!({"paused": true}),
            json!({"phase": "Paused", "message": "manually paused"}),
        );
        assert!(is_paused_by_user(&paused));
        let step_pause = canary_rollout(
            json!({}),
            json!({"phase": "Paused", "message": "CanaryPauseStep"}),
        );
        assert!(!is_paused_by_user(&step_pause));
    }
}
