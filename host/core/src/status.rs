//! Rollout conditions and phase, with Argo Rollouts' reasons and messages.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sluice_api::rollout::{
    Rollout, RolloutCondition, RolloutPhase, RolloutStatus, condition_types,
};

/// Condition reasons and messages, as Argo Rollouts writes them.
pub mod reasons {
    /// The spec is invalid.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Reason of the `Available` condition.
    pub const AVAILABLE: &str = "AvailableReason";
    /// `Available=True` message.
    pub const AVAILABLE_MESSAGE: &str = "Rollout has minimum availability";
    /// `Available=False` message (also `ReplicaSetNotAvailable`).
    pub const NOT_AVAILABLE_MESSAGE: &str = "Rollout does not have minimum availability";
    /// Progressing: a ReplicaSet was updated.
    pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
    /// Progressing: the newest ReplicaSet is available.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// Progressing: a fully promoted rollout lost availability.
    pub const REPLICA_SET_NOT_AVAILABLE: &str = "ReplicaSetNotAvailable";
    /// Progressing: the deadline passed.
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Progressing: the update was aborted.
    pub const ROLLOUT_ABORTED: &str = "RolloutAborted";
    /// Progressing: retry after an abort.
    pub const ROLLOUT_RETRY: &str = "RolloutRetry";
    /// Progressing/Paused: the rollout is paused.
    pub const ROLLOUT_PAUSED: &str = "RolloutPaused";
    /// Progressing: the rollout was resumed.
    pub const ROLLOUT_RESUMED: &str = "RolloutResumed";
    /// Completed condition reason (and message).
    pub const ROLLOUT_COMPLETED: &str = "RolloutCompleted";
    /// Healthy condition reason.
    pub const ROLLOUT_HEALTHY: &str = "RolloutHealthy";
    /// `Paused` message.
    pub const PAUSED_MESSAGE: &str = "Rollout is paused";
    /// `RolloutResumed` message.
    pub const RESUMED_MESSAGE: &str = "Rollout is resumed";
    /// `RolloutRetry` message.
    pub const RETRY_MESSAGE: &str = "Retrying Rollout after abort";
    /// `Healthy=True` message.
    pub const HEALTHY_MESSAGE: &str = "Rollout is healthy";
    /// `Healthy=False` message.
    pub const NOT_HEALTHY_MESSAGE: &str = "Rollout is not healthy";
}

const TRUE: &str = "True";
const FALSE: &str = "False";
const UNKNOWN: &str = "Unknown";

/// A condition stamped with `now` as both update and transition time.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> RolloutCondition {
    RolloutCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// The condition of this type.
pub fn find_condition<'a>(
    conditions: &'a [RolloutCondition],
    type_: &str,
) -> Option<&'a RolloutCondition> {
    conditions.iter().find(|condition| condition.type_ == type_)
}

/// Sets a condition like Argo's `SetRolloutCondition`: nothing changes when status and reason are
/// the same; the transition time is kept when only the reason changes. Returns whether it changed.
pub fn set_condition(
    conditions: &mut Vec<RolloutCondition>,
    mut condition: RolloutCondition,
) -> bool {
    if let Some(current) = find_condition(conditions, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return false;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|existing| existing.type_ != condition.type_);
    conditions.push(condition);
    true
}

/// Removes the condition of this type.
pub fn remove_condition(conditions: &mut Vec<RolloutCondition>, type_: &str) {
    conditions.retain(|condition| condition.type_ != type_);
}

/// The `Rollout aborted update to revision N[: message]` text.
pub fn aborted_message(revision: i64, detail: Option<&str>) -> String {
    match detail {
        Some(detail) if !detail.is_empty() => {
            format!("Rollout aborted update to revision {revision}: {detail}")
        }
        _ => format!("Rollout aborted update to revision {revision}"),
    }
}

/// What the condition computation needs beyond the two statuses.
#[derive(Clone, Debug)]
pub(crate) struct ConditionInputs<'a> {
    pub rollout: &'a Rollout,
    pub previous: &'a RolloutStatus,
    pub now: Timestamp,
    pub aborted: bool,
    pub abort_detail: Option<&'a str>,
    pub revision: i64,
    pub new_replica_set_name: Option<&'a str>,
    pub indefinite_step: bool,
    pub available: bool,
}

/// Pause-related conditions derived from the incoming status (Argo's `checkPausedConditions`).
pub(crate) fn apply_pause_conditions(
    rollout: &Rollout,
    previous: &RolloutStatus,
    conditions: &mut Vec<RolloutCondition>,
    now: Timestamp,
) {
    let progressing = find_condition(conditions, condition_types::PROGRESSING).cloned();
    let progressing_paused = progressing
        .as_ref()
        .is_some_and(|condition| condition.reason == reasons::ROLLOUT_PAUSED);
    let abort_condition_exists = progressing
        .as_ref()
        .is_some_and(|condition| condition.reason == reasons::ROLLOUT_ABORTED);
    let paused = !previous.pause_conditions.is_empty() || rollout.spec.paused;
    if paused != progressing_paused && !abort_condition_exists {
        let (reason, message) = if paused {
            (reasons::ROLLOUT_PAUSED, reasons::PAUSED_MESSAGE)
        } else {
            (reasons::ROLLOUT_RESUMED, reasons::RESUMED_MESSAGE)
        };
        set_condition(
            conditions,
            new_condition(condition_types::PROGRESSING, UNKNOWN, reason, message, now),
        );
    }
    if !previous.abort && abort_condition_exists {
        set_condition(
            conditions,
            new_condition(
                condition_types::PROGRESSING,
                UNKNOWN,
                reasons::ROLLOUT_RETRY,
                reasons::RETRY_MESSAGE,
                now,
            ),
        );
    }
    let paused_true = find_condition(conditions, condition_types::PAUSED)
        .is_some_and(|condition| condition.status == TRUE);
    if paused != paused_true && !abort_condition_exists {
        let status = if paused { TRUE } else { FALSE };
        set_condition(
            conditions,
            new_condition(
                condition_types::PAUSED,
                status,
                reasons::ROLLOUT_PAUSED,
                reasons::PAUSED_MESSAGE,
                now,
            ),
        );
    }
}

/// Argo's `RolloutHealthy`: every desired pod is updated and available, the spec generation was
/// observed and the strategy finished (all steps done and old pods gone, or services switched).
pub(crate) fn rollout_healthy(
    rollout: &Rollout,
    previous: &RolloutStatus,
    status: &RolloutStatus,
) -> bool {
    let replicas = rollout.replicas();
    let completed_strategy = if let Some(blue_green) = rollout.blue_green() {
        let active_done = status.blue_green.active_selector == status.current_pod_hash;
        let preview_done = blue_green
            .preview_service
            .as_deref()
            .is_none_or(str::is_empty)
            || status.blue_green.preview_selector == status.current_pod_hash;
        active_done && preview_done
    } else if let Some(canary) = rollout.canary() {
        let step_count = canary.steps.len() as i32;
        let all_steps = step_count == 0
            || status
                .current_step_index
                .is_none_or(|index| index == step_count);
        let stable_is_current =
            status.stable_rs.is_some() && status.stable_rs == status.current_pod_hash;
        all_steps && stable_is_current && status.replicas == replicas
    } else {
        true
    };
    status.updated_replicas == replicas
        && status.available_replicas == replicas
        && previous.observed_generation == observed_generation(rollout)
        && completed_strategy
}

/// Argo's `RolloutProgressing`: pods moved or the strategy advanced since the last status.
fn rollout_progressing(
    rollout: &Rollout,
    previous: &RolloutStatus,
    status: &RolloutStatus,
) -> bool {
    let strategy_progress = if rollout.blue_green().is_some() {
        previous.blue_green.active_selector != status.blue_green.active_selector
            || previous.blue_green.preview_selector != status.blue_green.preview_selector
    } else {
        let step_changed = matches!(
            (previous.current_step_index, status.current_step_index),
            (Some(before), Some(after)) if before != after
        );
        previous.stable_rs != status.stable_rs
            || step_changed
            || previous.current_step_hash != status.current_step_hash
    };
    let old_before = previous.replicas - previous.updated_replicas;
    let old_after = status.replicas - status.updated_replicas;
    status.updated_replicas != previous.updated_replicas
        || old_after < old_before
        || status.ready_replicas > previous.ready_replicas
        || status.available_replicas > previous.available_replicas
        || strategy_progress
}

fn timed_out(rollout: &Rollout, conditions: &[RolloutCondition], now: Timestamp) -> bool {
    let Some(condition) = find_condition(conditions, condition_types::PROGRESSING) else {
        return false;
    };
    if condition.reason == reasons::ROLLOUT_ABORTED {
        return false;
    }
    if condition.reason == reasons::PROGRESS_DEADLINE_EXCEEDED {
        return true;
    }
    let Some(Time(last_update)) = condition.last_update_time else {
        return false;
    };
    let deadline = last_update.saturating_add(SignedDuration::from_secs(i64::from(
        rollout.progress_deadline_seconds(),
    )));
    deadline.is_ok_and(|deadline| deadline < now)
}

/// The `status.observedGeneration` string for the Rollout's generation.
pub(crate) fn observed_generation(rollout: &Rollout) -> Option<String> {
    Some(rollout.metadata.generation.unwrap_or(0).to_string())
}

/// Argo's `calculateRolloutConditions`. Returns the abort message when the progress deadline
/// passed and `progressDeadlineAbort` asks to abort.
pub(crate) fn calculate_conditions(
    inputs: &ConditionInputs<'_>,
    status: &mut RolloutStatus,
) -> Option<String> {
    let rollout = inputs.rollout;
    let previous = inputs.previous;
    let now = inputs.now;
    let paused = !previous.pause_conditions.is_empty() || rollout.spec.paused;
    let healthy = rollout_healthy(rollout, previous, status);

    let mut became_unhealthy = false;
    let had_healthy = find_condition(&previous.conditions, condition_types::HEALTHY).is_some();
    if !paused && healthy {
        set_condition(
            &mut status.conditions,
            new_condition(
                condition_types::HEALTHY,
                TRUE,
                reasons::ROLLOUT_HEALTHY,
                reasons::HEALTHY_MESSAGE,
                now,
            ),
        );
    } else if had_healthy {
        became_unhealthy = set_condition(
            &mut status.conditions,
            new_condition(
                condition_types::HEALTHY,
                FALSE,
                reasons::ROLLOUT_HEALTHY,
                reasons::NOT_HEALTHY_MESSAGE,
                now,
            ),
        );
    }

    if inputs.aborted {
        let message = aborted_message(inputs.revision, inputs.abort_detail);
        set_condition(
            &mut status.conditions,
            new_condition(
                condition_types::PROGRESSING,
                FALSE,
                reasons::ROLLOUT_ABORTED,
                &message,
                now,
            ),
        );
    }

    let mut deadline_abort = None;
    let rollout_name = rollout.metadata.name.as_deref().unwrap_or_default();
    if !inputs.aborted {
        let current = find_condition(&previous.conditions, condition_types::PROGRESSING).cloned();
        if healthy {
            let message = format!(
                "ReplicaSet {:?} has successfully progressed.",
                inputs.new_replica_set_name.unwrap_or_default()
            );
            set_condition(
                &mut status.conditions,
                new_condition(
                    condition_types::PROGRESSING,
                    TRUE,
                    reasons::NEW_RS_AVAILABLE,
                    &message,
                    now,
                ),
            );
        } else if rollout_progressing(rollout, previous, status) || became_unhealthy {
            let mut message = match inputs.new_replica_set_name {
                Some(name) => format!("ReplicaSet {name:?} is progressing."),
                None => format!("Rollout {rollout_name:?} is progressing."),
            };
            let reason = if status.stable_rs.is_some()
                && status.stable_rs == status.current_pod_hash
                && became_unhealthy
            {
                message = reasons::NOT_AVAILABLE_MESSAGE.to_string();
                reasons::REPLICA_SET_NOT_AVAILABLE
            } else {
                reasons::REPLICA_SET_UPDATED
            };
            let mut condition =
                new_condition(condition_types::PROGRESSING, TRUE, reason, &message, now);
            if let Some(current) = current {
                if current.status == TRUE {
                    condition.last_transition_time = current.last_transition_time;
                }
                remove_condition(&mut status.conditions, condition_types::PROGRESSING);
            }
            set_condition(&mut status.conditions, condition);
        } else if !inputs.indefinite_step && timed_out(rollout, &status.conditions, now) {
            let message = match inputs.new_replica_set_name {
                Some(name) => format!("ReplicaSet {name:?} has timed out progressing."),
                None => format!("Rollout {rollout_name:?} has timed out progressing."),
            };
            set_condition(
                &mut status.conditions,
                new_condition(
                    condition_types::PROGRESSING,
                    FALSE,
                    reasons::PROGRESS_DEADLINE_EXCEEDED,
                    &message,
                    now,
                ),
            );
            if rollout.spec.progress_deadline_abort {
                deadline_abort = Some(message);
            }
        }
    }

    let (available_status, available_message) = if inputs.available {
        (TRUE, reasons::AVAILABLE_MESSAGE)
    } else {
        (FALSE, reasons::NOT_AVAILABLE_MESSAGE)
    };
    set_condition(
        &mut status.conditions,
        new_condition(
            condition_types::AVAILABLE,
            available_status,
            reasons::AVAILABLE,
            available_message,
            now,
        ),
    );

    let completed = status.stable_rs.is_some() && status.stable_rs == status.current_pod_hash;
    set_condition(
        &mut status.conditions,
        new_condition(
            condition_types::COMPLETED,
            if completed { TRUE } else { FALSE },
            reasons::ROLLOUT_COMPLETED,
            reasons::ROLLOUT_COMPLETED,
            now,
        ),
    );
    deadline_abort
}

/// The phase and message of a Rollout (Argo's `CalculateRolloutPhase`), in order: invalid,
/// aborted or timed out → Degraded; paused by the user or a pause condition → Paused; restart,
/// update or availability pending → Progressing; strategy not finished → Progressing; else
/// Healthy.
pub fn calculate_phase(rollout: &Rollout, status: &RolloutStatus) -> (RolloutPhase, String) {
    for condition in &status.conditions {
        if condition.type_ == condition_types::INVALID_SPEC {
            return (
                RolloutPhase::Degraded,
                format!("{}: {}", condition_types::INVALID_SPEC, condition.message),
            );
        }
        if condition.reason == reasons::ROLLOUT_ABORTED
            || condition.reason == reasons::PROGRESS_DEADLINE_EXCEEDED
        {
            return (
                RolloutPhase::Degraded,
                format!("{}: {}", condition.reason, condition.message),
            );
        }
    }
    if rollout.spec.paused {
        return (RolloutPhase::Paused, "manually paused".into());
    }
    if let Some(pause) = status.pause_conditions.first() {
        return (RolloutPhase::Paused, pause_reason_text(pause.reason).into());
    }
    if let Some(restart_at) = &rollout.spec.restart_at
        && status.restarted_at.as_ref() != Some(restart_at)
    {
        return (RolloutPhase::Progressing, "rollout is restarting".into());
    }
    if status.updated_replicas < rollout.replicas() {
        return (
            RolloutPhase::Progressing,
            "more replicas need to be updated".into(),
        );
    }
    if status.available_replicas < status.updated_replicas {
        return (
            RolloutPhase::Progressing,
            "updated replicas are still becoming available".into(),
        );
    }
    let fully_promoted = status.stable_rs.is_some() && status.stable_rs == status.current_pod_hash;
    if let Some(blue_green) = rollout.blue_green() {
        if status.blue_green.active_selector.is_none()
            || status.blue_green.active_selector != status.current_pod_hash
        {
            return (
                RolloutPhase::Progressing,
                "active service cutover pending".into(),
            );
        }
        if !fully_promoted {
            let waiting_for_analysis = blue_green.post_promotion_analysis.is_some()
                && status
                    .blue_green
                    .post_promotion_analysis_run_status
                    .as_ref()
                    .and_then(|run| run.status)
                    .is_none_or(|phase| !phase.is_completed());
            if waiting_for_analysis {
                return (
                    RolloutPhase::Progressing,
                    "waiting for analysis to complete".into(),
                );
            }
            return (
                RolloutPhase::Progressing,
                "waiting for post-promotion verification to complete".into(),
            );
        }
    } else if let Some(canary) = rollout.canary() {
        if canary.traffic_routing.is_none() && status.replicas > status.updated_replicas {
            return (
                RolloutPhase::Progressing,
                "old replicas are pending termination".into(),
            );
        }
        if !fully_promoted {
            return (
                RolloutPhase::Progressing,
                "waiting for all steps to complete".into(),
            );
        }
    }
    (RolloutPhase::Healthy, String::new())
}

/// The pause reason as written in status.
pub fn pause_reason_text(reason: sluice_api::rollout::PauseReason) -> &'static str {
    use sluice_api::rollout::PauseReason;
    match reason {
        PauseReason::CanaryPauseStep => "CanaryPauseStep",
        PauseReason::BlueGreenPause => "BlueGreenPause",
        PauseReason::InconclusiveAnalysisRun => "InconclusiveAnalysisRun",
        PauseReason::InconclusiveExperiment => "InconclusiveExperiment",
    }
}

/// Writes `observedGeneration`, phase and message: the last step of every plan.
pub(crate) fn finish(rollout: &Rollout, status: &mut RolloutStatus) {
    status.observed_generation = observed_generation(rollout);
    let (phase, message) = calculate_phase(rollout, status);
    status.phase = Some(phase);
    status.message = if message.is_empty() {
        None
    } else {
        Some(message)
    };
}

/// Sets or clears the `InvalidSpec` condition.
pub(crate) fn apply_invalid_spec(
    conditions: &mut Vec<RolloutCondition>,
    violations: &[String],
    now: Timestamp,
) {
    if violations.is_empty() {
        remove_condition(conditions, condition_types::INVALID_SPEC);
        return;
    }
    let message = violations.join("; ");
    if let Some(existing) = conditions
        .iter_mut()
        .find(|condition| condition.type_ == condition_types::INVALID_SPEC)
        && existing.message == message
    {
        return;
    }
    remove_condition(conditions, condition_types::INVALID_SPEC);
    conditions.push(new_condition(
        condition_types::INVALID_SPEC,
        TRUE,
        reasons::INVALID_SPEC,
        &message,
        now,
    ));
}

/// A plan, plus the abort the progress deadline asked for (the planner then plans again with the
/// abort applied up front, so that traffic leaves the canary in the same plan).
pub(crate) struct Planned {
    pub plan: crate::plan::Plan,
    pub deadline_abort: Option<String>,
}

/// Argo's `requeueStuckRollout`: when to check the progress deadline again.
pub(crate) fn progress_check_after(
    rollout: &Rollout,
    previous: &RolloutStatus,
    status: &RolloutStatus,
    indefinite_step: bool,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let current = find_condition(&previous.conditions, condition_types::PROGRESSING)?;
    let paused = !previous.pause_conditions.is_empty() || rollout.spec.paused;
    if rollout_healthy(rollout, previous, status)
        || current.reason == reasons::PROGRESS_DEADLINE_EXCEEDED
        || paused
        || previous.abort
        || indefinite_step
    {
        return None;
    }
    let Time(last_update) = current.last_update_time.clone()?;
    let deadline =
        crate::context::add_seconds(last_update, i64::from(rollout.progress_deadline_seconds()));
    let remaining = crate::context::until(now, deadline);
    Some(remaining + std::time::Duration::from_secs(1))
}

/// The end of every plan: InvalidSpec cleared, pause conditions, pause/abort fields, conditions,
/// phase, and the progress-deadline requeue.
pub(crate) fn finish_plan(
    context: crate::context::Context<'_>,
    mut status: RolloutStatus,
    indefinite_step: bool,
    available: bool,
) -> Planned {
    let previous = context.previous;
    let rollout = context.rollout;
    apply_invalid_spec(&mut status.conditions, &[], context.now);
    apply_pause_conditions(rollout, previous, &mut status.conditions, context.now);
    context.pause.apply(previous, &mut status, context.now);
    let new_rs_name = context.new_rs().map(|rs| rs.name.clone());
    let inputs = ConditionInputs {
        rollout,
        previous,
        now: context.now,
        aborted: context.aborted(),
        abort_detail: context.pause.abort_message.as_deref(),
        revision: context.revision(),
        new_replica_set_name: new_rs_name.as_deref(),
        indefinite_step,
        available,
    };
    let deadline_abort = calculate_conditions(&inputs, &mut status);
    if deadline_abort.is_some() {
        status.abort = true;
        status.aborted_at = Some(Time(context.now));
        status.pause_conditions.clear();
        status.controller_pause = false;
    }
    finish(rollout, &mut status);
    let mut requeue_after = context.requeue;
    if let Some(after) =
        progress_check_after(rollout, previous, &status, indefinite_step, context.now)
    {
        requeue_after = Some(requeue_after.map_or(after, |current| current.min(after)));
    }
    Planned {
        plan: crate::plan::Plan {
            actions: context.actions,
            status,
            requeue_after,
        },
        deadline_abort,
    }
}
