//! Step plugins: the canary `plugin` step.
//!
//! The planner decides which operation to call ([`calls`]): `Run` for the current step until it
//! stops Running (again after each backoff), `Abort` for every step that ran when the Rollout is
//! aborted (newest first), `Terminate` for a step still Running when the Rollout is fully
//! promoted. The controller performs the call and turns its outcome into the operation's status
//! with [`record`]; the next plan reads it back from [`crate::Observed::step_plugin_reports`].

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sluice_api::duration::DurationString;
use sluice_api::rollout::{CanaryStep, StepPluginOperation, StepPluginPhase, StepPluginStatus};

/// How long a Running step waits before the next `Run` when the plugin asks for less than
/// [`MIN_REQUEUE`] (or nothing).
pub const DEFAULT_REQUEUE: Duration = Duration::from_secs(30);
/// The shortest `Run` interval a plugin may ask for.
pub const MIN_REQUEUE: Duration = Duration::from_secs(10);
/// How long a failed call waits before it is retried.
pub const ERROR_BACKOFF: Duration = Duration::from_secs(30);

/// One call of a step plugin.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepPluginCall {
    /// What the plugin is asked to do.
    pub operation: StepPluginOperation,
    /// Index of the `plugin` step.
    pub step_index: i32,
    /// The plugin's name (`steps[].plugin.name`).
    pub name: String,
    /// The step's `plugin.config`, verbatim.
    pub config: Option<serde_json::Value>,
    /// The status of the step's `Run` operation so far, if it has run.
    pub run_status: Option<StepPluginStatus>,
}

impl StepPluginCall {
    /// The plugin-defined state the plugin returned last time for this step.
    pub fn plugin_state(&self) -> Option<&serde_json::Value> {
        self.run_status.as_ref()?.status.as_ref()
    }
}

/// What came of a call.
#[derive(Clone, Debug, PartialEq)]
pub enum StepPluginOutcome {
    /// The plugin answered.
    Answered(StepPluginAnswer),
    /// The call failed (plugin error, trap, timeout, plugin not configured); it is retried.
    CallFailed(String),
    /// The plugin is disabled in the controller's configuration.
    Disabled,
}

/// A plugin's answer to a call.
#[derive(Clone, Debug, PartialEq)]
pub struct StepPluginAnswer {
    /// Running, Successful or Failed.
    pub phase: StepPluginPhase,
    /// Shown in the Rollout's status.
    pub message: String,
    /// When to call `Run` again while Running (below [`MIN_REQUEUE`]: [`DEFAULT_REQUEUE`]).
    pub requeue_after: Duration,
    /// Plugin-defined state to keep (`None` keeps none).
    pub status: Option<serde_json::Value>,
}

/// What the planner decided about step plugins.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    /// The calls to make, in order.
    pub calls: Vec<StepPluginCall>,
    /// The statuses to keep in the Rollout's status.
    pub statuses: Vec<StepPluginStatus>,
    /// When to plan again to make a backed-off call.
    pub requeue_after: Option<Duration>,
}

/// Where the Rollout stands, as far as step plugins are concerned.
pub(crate) struct Situation<'a> {
    /// `spec.strategy.canary.steps`.
    pub steps: &'a [CanaryStep],
    /// The current step index.
    pub index: Option<i32>,
    /// The statuses recorded so far (persisted and just reported).
    pub statuses: &'a [StepPluginStatus],
    /// The statuses as last written to the Rollout's status.
    pub persisted: &'a [StepPluginStatus],
    /// The Rollout is aborted.
    pub aborted: bool,
    /// A full promotion was requested, or the update is fully promoted.
    pub promoting_fully: bool,
    /// The Rollout is paused (or about to be): the current step waits.
    pub paused: bool,
    /// The current time.
    pub now: Timestamp,
}

/// Decides the step plugin calls of one plan.
pub(crate) fn calls(situation: &Situation<'_>) -> Decision {
    let mut decision = Decision {
        statuses: situation.statuses.to_vec(),
        ..Decision::default()
    };
    if situation.aborted {
        decision.calls = abort_calls(situation);
        return decision;
    }
    if retrying(situation) {
        decision.statuses.clear();
        return decision;
    }
    if situation.promoting_fully {
        decision.calls.extend(terminate_call(situation));
        return decision;
    }
    let (Some(index), false) = (situation.index, situation.paused) else {
        return decision;
    };
    let Some(plugin) = step_at(situation.steps, index).and_then(|step| step.plugin.as_ref()) else {
        return decision;
    };
    let run_status = run_status(situation.statuses, index);
    let due = match run_status {
        None => Duration::ZERO,
        Some(status) => match status.phase {
            Some(StepPluginPhase::Successful | StepPluginPhase::Failed) => return decision,
            _ if status.disabled => return decision,
            _ => remaining_backoff(status, situation.now),
        },
    };
    if due.is_zero() {
        decision.calls.push(StepPluginCall {
            operation: StepPluginOperation::Run,
            step_index: index,
            name: plugin.name.clone(),
            config: plugin.config.clone(),
            run_status: run_status.cloned(),
        });
    } else {
        decision.requeue_after = Some(due);
    }
    decision
}

/// The current step's `Run` status, when the step is a `plugin` step.
fn run_status(statuses: &[StepPluginStatus], index: i32) -> Option<&StepPluginStatus> {
    find(statuses, index, StepPluginOperation::Run)
}

/// Whether the `plugin` step at `index` is done: its plugin succeeded or is disabled.
pub(crate) fn step_completed(statuses: &[StepPluginStatus], index: i32) -> bool {
    run_status(statuses, index)
        .is_some_and(|status| status.disabled || status.phase == Some(StepPluginPhase::Successful))
}

/// The abort message when the current step's plugin Failed.
pub(crate) fn failure_message(statuses: &[StepPluginStatus], index: i32) -> Option<String> {
    let status = run_status(statuses, index)?;
    (status.phase == Some(StepPluginPhase::Failed)).then(|| {
        format!(
            "Step Plugin {} ({}) failed: {}",
            index + 1,
            status.name,
            status.message.as_deref().unwrap_or_default()
        )
    })
}

/// Turns a call's outcome into the status of its operation.
pub fn record(
    call: &StepPluginCall,
    outcome: StepPluginOutcome,
    now: Timestamp,
) -> StepPluginStatus {
    let time = Time(now);
    match call.operation {
        StepPluginOperation::Run => {
            let mut status = call.run_status.clone().unwrap_or_else(|| StepPluginStatus {
                index: call.step_index,
                name: call.name.clone(),
                operation: StepPluginOperation::Run,
                phase: Some(StepPluginPhase::Running),
                started_at: Some(time.clone()),
                ..StepPluginStatus::default()
            });
            status.updated_at = Some(time.clone());
            status.executions += 1;
            status.backoff = None;
            match outcome {
                StepPluginOutcome::CallFailed(message) => {
                    status.phase = Some(StepPluginPhase::Error);
                    status.message = Some(message);
                    status.backoff = Some(duration_string(ERROR_BACKOFF));
                }
                StepPluginOutcome::Disabled => {
                    status.disabled = true;
                    status.phase = Some(StepPluginPhase::Successful);
                    status.message = Some(format!("step plugin {} is disabled", call.name));
                    status.finished_at = Some(time);
                }
                StepPluginOutcome::Answered(answer) => {
                    status.phase = Some(answer.phase);
                    status.message = Some(answer.message).filter(|message| !message.is_empty());
                    status.status = answer.status;
                    match answer.phase {
                        StepPluginPhase::Running => {
                            let requeue = if answer.requeue_after < MIN_REQUEUE {
                                DEFAULT_REQUEUE
                            } else {
                                answer.requeue_after
                            };
                            status.backoff = Some(duration_string(requeue));
                        }
                        _ => status.finished_at = Some(time),
                    }
                }
            }
            status
        }
        StepPluginOperation::Terminate | StepPluginOperation::Abort => {
            let (phase, message) = match outcome {
                StepPluginOutcome::CallFailed(message) => (StepPluginPhase::Error, message),
                StepPluginOutcome::Disabled => (
                    StepPluginPhase::Successful,
                    format!("step plugin {} is disabled", call.name),
                ),
                // Terminate and Abort cannot run asynchronously.
                StepPluginOutcome::Answered(answer) => (
                    match answer.phase {
                        StepPluginPhase::Running => StepPluginPhase::Failed,
                        phase => phase,
                    },
                    answer.message,
                ),
            };
            StepPluginStatus {
                index: call.step_index,
                name: call.name.clone(),
                operation: call.operation,
                phase: Some(phase),
                message: Some(message).filter(|message| !message.is_empty()),
                started_at: Some(time.clone()),
                updated_at: Some(time.clone()),
                finished_at: Some(time),
                executions: 1,
                ..StepPluginStatus::default()
            }
        }
    }
}

/// Replaces the status of the same step and operation with `report`, or appends it.
pub fn merge(statuses: &mut Vec<StepPluginStatus>, report: StepPluginStatus) {
    match statuses
        .iter_mut()
        .find(|status| status.index == report.index && status.operation == report.operation)
    {
        Some(status) => *status = report,
        None => statuses.push(report),
    }
}

/// `Abort` for every step whose `Run` was Running or Successful and that was not aborted yet,
/// newest first.
fn abort_calls(situation: &Situation<'_>) -> Vec<StepPluginCall> {
    situation
        .statuses
        .iter()
        .rev()
        .filter(|status| {
            status.operation == StepPluginOperation::Run
                && !status.disabled
                && matches!(
                    status.phase,
                    Some(StepPluginPhase::Running | StepPluginPhase::Successful)
                )
                && find(situation.statuses, status.index, StepPluginOperation::Abort).is_none()
        })
        .filter_map(|status| {
            let plugin = step_at(situation.steps, status.index)?.plugin.as_ref()?;
            Some(StepPluginCall {
                operation: StepPluginOperation::Abort,
                step_index: status.index,
                name: plugin.name.clone(),
                config: plugin.config.clone(),
                run_status: Some(status.clone()),
            })
        })
        .collect()
}

/// `Terminate` for the newest step still Running, unless it was terminated already.
fn terminate_call(situation: &Situation<'_>) -> Option<StepPluginCall> {
    let running = situation.statuses.iter().rev().find(|status| {
        status.operation == StepPluginOperation::Run
            && status.phase == Some(StepPluginPhase::Running)
            && !status.disabled
    })?;
    if find(
        situation.statuses,
        running.index,
        StepPluginOperation::Terminate,
    )
    .is_some()
    {
        return None;
    }
    let plugin = step_at(situation.steps, running.index)?.plugin.as_ref()?;
    Some(StepPluginCall {
        operation: StepPluginOperation::Terminate,
        step_index: running.index,
        name: plugin.name.clone(),
        config: plugin.config.clone(),
        run_status: Some(running.clone()),
    })
}

/// A retry after an abort starts the steps again from 0 with the statuses of the aborted
/// attempt still written: those are dropped. Step 0's own written status belongs to the aborted
/// attempt only once it completed (a fresh outcome is not written yet).
fn retrying(situation: &Situation<'_>) -> bool {
    if situation.persisted.is_empty() || situation.index != Some(0) {
        return false;
    }
    match step_at(situation.steps, 0).and_then(|step| step.plugin.as_ref()) {
        None => true,
        Some(_) => run_status(situation.persisted, 0).is_some_and(|status| {
            status.disabled
                || matches!(
                    status.phase,
                    Some(StepPluginPhase::Successful | StepPluginPhase::Failed)
                )
        }),
    }
}

fn find(
    statuses: &[StepPluginStatus],
    index: i32,
    operation: StepPluginOperation,
) -> Option<&StepPluginStatus> {
    statuses
        .iter()
        .find(|status| status.index == index && status.operation == operation)
}

fn step_at(steps: &[CanaryStep], index: i32) -> Option<&CanaryStep> {
    usize::try_from(index)
        .ok()
        .and_then(|index| steps.get(index))
}

/// Time left before a Running or Error `Run` may be called again.
fn remaining_backoff(status: &StepPluginStatus, now: Timestamp) -> Duration {
    let (Some(updated), Some(backoff)) = (&status.updated_at, &status.backoff) else {
        return Duration::ZERO;
    };
    let Ok(backoff) = backoff.parse() else {
        return Duration::ZERO;
    };
    let due = updated.0.checked_add(backoff).unwrap_or(Timestamp::MAX);
    if due <= now {
        Duration::ZERO
    } else {
        Duration::try_from(due.duration_since(now)).unwrap_or(Duration::ZERO)
    }
}

fn duration_string(duration: Duration) -> DurationString {
    DurationString(format!("{}s", duration.as_secs()))
}
