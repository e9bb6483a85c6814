//! Kubernetes Events, with Argo Rollouts' reasons, for what a plan changes.
//!
//! Events describe transitions: [`rollout_events`] and [`experiment_events`] compare the status a
//! plan starts from with the status it writes, and read the plan's actions. A plan that changes
//! nothing yields no event, so steady-state reconciles publish nothing.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sluice_api::analysis::AnalysisPhase;
use sluice_api::experiment::{Experiment, ExperimentStatus};
use sluice_api::rollout::{
    CanaryStep, RolloutAnalysisRunStatus, RolloutCondition, RolloutStatus, StepPluginOperation,
    StepPluginPhase, condition_types,
};

use crate::experiment::{
    ExperimentAction, ExperimentPlan, ObservedExperiment, TEMPLATE_ERROR, TEMPLATE_FAILED,
};
use crate::observed::Observed;
use crate::plan::{Action, Plan};
use crate::status::{find_condition, pause_reason_text, reasons};

/// One Kubernetes Event to publish about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Argo's reason, e.g. `RolloutAborted` or `MetricFailed`.
    pub reason: String,
    /// The human-readable message.
    pub message: String,
    /// A Warning event (failures, aborts, invalid specs) rather than a Normal one.
    pub warning: bool,
}

impl Event {
    fn normal(reason: &str, message: String) -> Self {
        Self {
            reason: reason.to_string(),
            message,
            warning: false,
        }
    }

    fn warning(reason: &str, message: String) -> Self {
        Self {
            reason: reason.to_string(),
            message,
            warning: true,
        }
    }
}

/// Event reasons Sluice emits on Rollouts, as Argo names them.
pub mod event_reasons {
    /// The template changed: a new revision.
    pub const ROLLOUT_UPDATED: &str = "RolloutUpdated";
    /// The ReplicaSet of a new revision was created.
    pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
    /// A ReplicaSet was scaled.
    pub const SCALING_REPLICA_SET: &str = "ScalingReplicaSet";
    /// A Service selector was switched to another revision.
    pub const SWITCH_SERVICE: &str = "SwitchService";
    /// The canary traffic weight changed.
    pub const TRAFFIC_WEIGHT_UPDATED: &str = "TrafficWeightUpdated";
    /// A canary step completed.
    pub const ROLLOUT_STEP_COMPLETED: &str = "RolloutStepCompleted";
    /// The desired revision became stable.
    pub const ROLLOUT_COMPLETED: &str = "RolloutCompleted";
    /// A step plugin operation changed phase (a successful Run is reported as the step's
    /// completion instead).
    pub const STEP_PLUGIN_TRANSITION: &str = "StepPluginTransition";
    /// An Experiment terminates a running AnalysisRun.
    pub const ANALYSIS_RUN_TERMINATING: &str = "AnalysisRunTerminating";
}

/// The events of one Rollout reconcile: `observed` is what the plan was made from (its Rollout
/// carries the status the plan started from), `plan` what was executed and written.
pub fn rollout_events(observed: &Observed, plan: &Plan) -> Vec<Event> {
    let default_status = RolloutStatus::default();
    let previous = observed.rollout.status.as_ref().unwrap_or(&default_status);
    let status = &plan.status;
    let mut events = Vec::new();

    if let Some(invalid) = became(previous, status, condition_types::INVALID_SPEC, |c| {
        c.status == "True"
    }) {
        events.push(Event::warning(
            reasons::INVALID_SPEC,
            invalid.message.clone(),
        ));
    }
    if previous.current_pod_hash.is_some() && previous.current_pod_hash != status.current_pod_hash {
        let revision = status
            .current_pod_hash
            .as_deref()
            .map_or(0, |hash| revision_of_hash(observed, plan, hash));
        events.push(Event::normal(
            event_reasons::ROLLOUT_UPDATED,
            format!("Rollout updated to revision {revision}"),
        ));
    }
    for action in &plan.actions {
        match action {
            Action::CreateReplicaSet(new) => events.push(Event::normal(
                event_reasons::NEW_REPLICA_SET_CREATED,
                format!(
                    "Created ReplicaSet {} (revision {}) with size {}",
                    new.name, new.revision, new.replicas
                ),
            )),
            Action::ScaleReplicaSet { name, from, to } => {
                let direction = if to > from { "up" } else { "down" };
                let revision = revision_of_name(observed, plan, name);
                events.push(Event::normal(
                    event_reasons::SCALING_REPLICA_SET,
                    format!(
                        "Scaled {direction} ReplicaSet {name} (revision {revision}) from {from} to {to}"
                    ),
                ));
            }
            Action::SetServiceSelector {
                service,
                pod_template_hash,
            } => {
                let from = observed
                    .service(service)
                    .and_then(|service| service.selected_pod_template_hash.as_deref())
                    .unwrap_or_default();
                events.push(Event::normal(
                    event_reasons::SWITCH_SERVICE,
                    format!(
                        "Switched selector for service '{service}' from '{from}' to '{pod_template_hash}'"
                    ),
                ));
            }
            _ => {}
        }
    }
    let weight = |status: &RolloutStatus| {
        status
            .canary
            .weights
            .as_ref()
            .map(|weights| weights.canary.weight)
    };
    if let Some(to) = weight(status) {
        let from = weight(previous).unwrap_or(0);
        if from != to {
            events.push(Event::normal(
                event_reasons::TRAFFIC_WEIGHT_UPDATED,
                format!("Traffic weight updated from {from} to {to}"),
            ));
        }
    }
    events.extend(analysis_run_events(previous, status));
    if let Some(step) = completed_step(observed, previous, status) {
        events.push(Event::normal(event_reasons::ROLLOUT_STEP_COMPLETED, step));
    }
    if became(previous, status, condition_types::PAUSED, |c| {
        c.status == "True"
    })
    .is_some()
    {
        events.push(Event::normal(
            reasons::ROLLOUT_PAUSED,
            format!(
                "{} ({})",
                reasons::PAUSED_MESSAGE,
                pause_detail(observed, status)
            ),
        ));
    }
    let was_paused = find_condition(&previous.conditions, condition_types::PAUSED)
        .is_some_and(|condition| condition.status == "True");
    let paused_now = find_condition(&status.conditions, condition_types::PAUSED)
        .is_some_and(|condition| condition.status == "True");
    if was_paused && !paused_now {
        events.push(Event::normal(
            reasons::ROLLOUT_RESUMED,
            reasons::RESUMED_MESSAGE.to_string(),
        ));
    }
    for (reason, warning) in [
        (reasons::ROLLOUT_ABORTED, true),
        (reasons::ROLLOUT_RETRY, false),
        (reasons::PROGRESS_DEADLINE_EXCEEDED, true),
    ] {
        if let Some(condition) = became(previous, status, condition_types::PROGRESSING, |c| {
            c.reason == reason
        }) {
            let event = if warning {
                Event::warning(reason, condition.message.clone())
            } else {
                Event::normal(reason, condition.message.clone())
            };
            events.push(event);
        }
    }
    events.extend(step_plugin_events(previous, status));
    if let Some(stable) = status.stable_rs.as_deref()
        && status.stable_rs != previous.stable_rs
        && status.current_pod_hash.as_deref() == Some(stable)
    {
        let revision = revision_of_hash(observed, plan, stable);
        let how = completion_detail(observed, previous);
        events.push(Event::normal(
            event_reasons::ROLLOUT_COMPLETED,
            format!("Rollout completed update to revision {revision} ({stable}): {how}"),
        ));
    }
    events
}

/// The events of one Experiment reconcile, as Argo's experiment controller reports them: the
/// template ReplicaSets created (`NewReplicaSetCreated`) and scaled (`ScalingReplicaSet`), the
/// AnalysisRuns terminated (`AnalysisRunTerminating`), then every template whose status changes
/// (`Template<Status>`), every analysis whose phase changes (`AnalysisRun<Phase>`) and the
/// Experiment's own phase change (`Experiment<Phase>`, e.g. `ExperimentRunning`). Failures are
/// Warning events. `experiment` carries the status the plan started from.
pub fn experiment_events(
    experiment: &Experiment,
    observed: &ObservedExperiment<'_>,
    plan: &ExperimentPlan,
) -> Vec<Event> {
    let default_status = ExperimentStatus::default();
    let previous = experiment.status.as_ref().unwrap_or(&default_status);
    let status = &plan.status;
    let mut events = Vec::new();
    for action in &plan.actions {
        match action {
            ExperimentAction::CreateReplicaSet(rs) => {
                let replicas = rs.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
                events.push(Event::normal(
                    event_reasons::NEW_REPLICA_SET_CREATED,
                    format!(
                        "Created ReplicaSet {} with size {replicas}",
                        rs.metadata.name.as_deref().unwrap_or_default()
                    ),
                ));
            }
            ExperimentAction::ScaleReplicaSet { name, replicas } => {
                let from = observed
                    .replica_sets
                    .iter()
                    .find(|rs| rs.name == *name)
                    .map_or(0, |rs| rs.spec_replicas);
                let direction = if *replicas > from { "up" } else { "down" };
                events.push(Event::normal(
                    event_reasons::SCALING_REPLICA_SET,
                    format!("Scaled {direction} ReplicaSet {name} from {from} to {replicas}"),
                ));
            }
            ExperimentAction::TerminateAnalysisRun { name } => {
                let analysis = status
                    .analysis_runs
                    .iter()
                    .find(|run| run.analysis_run == *name)
                    .map_or(name.as_str(), |run| run.name.as_str());
                events.push(Event::normal(
                    event_reasons::ANALYSIS_RUN_TERMINATING,
                    format!("Terminating {analysis} ({name})"),
                ));
            }
            ExperimentAction::CreateService(_) | ExperimentAction::CreateAnalysisRun(_) => {}
        }
    }
    for template in &status.template_statuses {
        let Some(now) = template.status.as_deref() else {
            continue;
        };
        let before = previous
            .template_statuses
            .iter()
            .find(|before| before.name == template.name)
            .and_then(|before| before.status.as_deref());
        if before == Some(now) {
            continue;
        }
        let message = transition(
            &format!("Template '{}'", template.name),
            before.unwrap_or_default(),
            now,
            template.message.as_deref(),
        );
        let reason = format!("Template{now}");
        events.push(if matches!(now, TEMPLATE_FAILED | TEMPLATE_ERROR) {
            Event::warning(&reason, message)
        } else {
            Event::normal(&reason, message)
        });
    }
    for run in &status.analysis_runs {
        let Some(now) = run.phase else {
            continue;
        };
        let before = previous
            .analysis_runs
            .iter()
            .find(|before| before.name == run.name)
            .and_then(|before| before.phase);
        if before == Some(now) {
            continue;
        }
        let message = transition(
            &format!("AnalysisRun '{}'", run.name),
            before.map_or("", AnalysisPhase::as_str),
            now.as_str(),
            run.message.as_deref(),
        );
        events.push(phase_event("AnalysisRun", now, message));
    }
    if let Some(now) = status.phase
        && previous.phase != Some(now)
    {
        let message = transition(
            "Experiment",
            previous.phase.map_or("", AnalysisPhase::as_str),
            now.as_str(),
            None,
        );
        events.push(phase_event("Experiment", now, message));
    }
    events
}

/// `<what> transitioned from <before> -> <now>[: <detail>]`, Argo's wording.
fn transition(what: &str, before: &str, now: &str, detail: Option<&str>) -> String {
    match detail.filter(|detail| !detail.is_empty()) {
        Some(detail) => format!("{what} transitioned from {before} -> {now}: {detail}"),
        None => format!("{what} transitioned from {before} -> {now}"),
    }
}

/// `<prefix><Phase>`, a Warning when the phase is Failed, Error or Inconclusive.
fn phase_event(prefix: &str, phase: AnalysisPhase, message: String) -> Event {
    let reason = format!("{prefix}{}", phase.as_str());
    if matches!(
        phase,
        AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
    ) {
        Event::warning(&reason, message)
    } else {
        Event::normal(&reason, message)
    }
}

/// The condition of `type_` in `status` when it matches `now_holds` and did not in `previous`.
fn became<'a>(
    previous: &RolloutStatus,
    status: &'a RolloutStatus,
    type_: &str,
    now_holds: impl Fn(&RolloutCondition) -> bool,
) -> Option<&'a RolloutCondition> {
    let current = find_condition(&status.conditions, type_).filter(|c| now_holds(c))?;
    let held = find_condition(&previous.conditions, type_).is_some_and(&now_holds);
    (!held).then_some(current)
}

/// `AnalysisRun<Phase>` for every run of the Rollout whose phase this plan changes.
fn analysis_run_events(previous: &RolloutStatus, status: &RolloutStatus) -> Vec<Event> {
    let runs = |status: &RolloutStatus| {
        [
            (
                "Step",
                status.canary.current_step_analysis_run_status.clone(),
            ),
            (
                "Background",
                status.canary.current_background_analysis_run_status.clone(),
            ),
            (
                "PrePromotion",
                status.blue_green.pre_promotion_analysis_run_status.clone(),
            ),
            (
                "PostPromotion",
                status.blue_green.post_promotion_analysis_run_status.clone(),
            ),
        ]
    };
    let before = runs(previous);
    runs(status)
        .into_iter()
        .zip(before)
        .filter_map(|((kind, now), (_, then))| {
            let now: RolloutAnalysisRunStatus = now?;
            let phase = now.status?;
            let previous_phase = then
                .filter(|then| then.name == now.name)
                .and_then(|then| then.status);
            if previous_phase == Some(phase) {
                return None;
            }
            let message = format!(
                "{kind} Analysis Run '{}' Status New: '{}' Previous: '{}'",
                now.name,
                phase.as_str(),
                previous_phase.map_or("", AnalysisPhase::as_str)
            );
            let reason = format!("AnalysisRun{}", phase.as_str());
            Some(
                if matches!(phase, AnalysisPhase::Failed | AnalysisPhase::Error) {
                    Event::warning(&reason, message)
                } else {
                    Event::normal(&reason, message)
                },
            )
        })
        .collect()
}

/// `StepPluginTransition` for every step plugin operation whose phase this plan changes.
fn step_plugin_events(previous: &RolloutStatus, status: &RolloutStatus) -> Vec<Event> {
    status
        .canary
        .step_plugin_statuses
        .iter()
        .filter(|now| !now.disabled)
        .filter_map(|now| {
            let phase = now.phase?;
            let before = previous
                .canary
                .step_plugin_statuses
                .iter()
                .find(|then| then.index == now.index && then.operation == now.operation)
                .and_then(|then| then.phase);
            let run_succeeded =
                now.operation == StepPluginOperation::Run && phase == StepPluginPhase::Successful;
            if before == Some(phase) || run_succeeded {
                return None;
            }
            let mut message = format!(
                "Step plugin {} (step {}) {:?}: {}",
                now.name,
                now.index + 1,
                now.operation,
                phase.as_str()
            );
            if let Some(detail) = &now.message {
                message = format!("{message}: {detail}");
            }
            Some(
                if matches!(phase, StepPluginPhase::Failed | StepPluginPhase::Error) {
                    Event::warning(event_reasons::STEP_PLUGIN_TRANSITION, message)
                } else {
                    Event::normal(event_reasons::STEP_PLUGIN_TRANSITION, message)
                },
            )
        })
        .collect()
}

/// `Rollout step i/n completed (step)` when the plan moves from one step to the next of the
/// same revision.
fn completed_step(
    observed: &Observed,
    previous: &RolloutStatus,
    status: &RolloutStatus,
) -> Option<String> {
    let steps = &observed.rollout.canary()?.steps;
    if status.abort || previous.current_pod_hash != status.current_pod_hash {
        return None;
    }
    let (Some(before), Some(after)) = (previous.current_step_index, status.current_step_index)
    else {
        return None;
    };
    if after != before + 1 {
        return None;
    }
    let step = steps.get(usize::try_from(before).ok()?)?;
    Some(format!(
        "Rollout step {after}/{} completed ({})",
        steps.len(),
        describe_step(step)
    ))
}

/// A step as users write it, e.g. `setWeight: 20` or `pause: 30s`.
fn describe_step(step: &CanaryStep) -> String {
    if let Some(weight) = step.set_weight {
        return format!("setWeight: {weight}");
    }
    if let Some(pause) = &step.pause {
        return match &pause.duration {
            Some(IntOrString::Int(seconds)) => format!("pause: {seconds}"),
            Some(IntOrString::String(duration)) => format!("pause: {duration}"),
            None => "pause".to_string(),
        };
    }
    step.kinds().first().copied().unwrap_or("step").to_string()
}

/// Why the Rollout is paused: the controller's pause reasons, or a manual pause.
fn pause_detail(observed: &Observed, status: &RolloutStatus) -> String {
    if observed.rollout.spec.paused {
        return "manually paused".to_string();
    }
    let reasons: Vec<&str> = status
        .pause_conditions
        .iter()
        .map(|condition| pause_reason_text(condition.reason))
        .collect();
    reasons.join(", ")
}

/// How the update completed, for `RolloutCompleted`.
fn completion_detail(observed: &Observed, previous: &RolloutStatus) -> String {
    if previous.stable_rs.is_none() {
        return "Initial deploy".to_string();
    }
    if previous.promote_full {
        return "Full promotion requested".to_string();
    }
    match observed.rollout.canary() {
        Some(canary) if !canary.steps.is_empty() => {
            format!("Completed all {} canary steps", canary.steps.len())
        }
        Some(_) => "Completed canary update".to_string(),
        None => "Completed blue-green update".to_string(),
    }
}

/// The revision of the ReplicaSet with this pod-template hash, as the plan leaves it; the next
/// revision when that ReplicaSet is still to be created.
fn revision_of_hash(observed: &Observed, plan: &Plan, hash: &str) -> i64 {
    let created = plan.actions.iter().find_map(|action| match action {
        Action::CreateReplicaSet(new) if new.pod_template_hash == hash => Some(new.revision),
        _ => None,
    });
    created
        .or_else(|| {
            observed
                .replica_set_by_hash(hash)
                .map(|rs| revision_of_name(observed, plan, &rs.name))
        })
        .unwrap_or_else(|| {
            observed
                .replica_sets
                .iter()
                .map(|rs| rs.revision)
                .max()
                .unwrap_or(0)
                + 1
        })
}

/// The revision of a ReplicaSet by name, as the plan leaves it.
fn revision_of_name(observed: &Observed, plan: &Plan, name: &str) -> i64 {
    plan.actions
        .iter()
        .rev()
        .find_map(|action| match action {
            Action::CreateReplicaSet(new) if new.name == name => Some(new.revision),
            Action::SetReplicaSetRevision {
                name: revised,
                revision,
            } if revised == name => Some(*revision),
            _ => None,
        })
        .or_else(|| {
            observed
                .replica_sets
                .iter()
                .find(|rs| rs.name == name)
                .map(|rs| rs.revision)
        })
        .unwrap_or(0)
}
