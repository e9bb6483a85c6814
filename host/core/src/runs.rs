//! AnalysisRuns, Experiments and step plugins a Rollout drives: naming, creation, termination,
//! and what their outcome means for the rollout (Inconclusive pauses, Failed or Error aborts).
//!
//! Outcomes are read *before* traffic is reconciled, so that an abort caused by a failed run
//! sends traffic back to stable in the same plan.

use sluice_api::analysis::AnalysisPhase;
use sluice_api::rollout::{PauseReason, RolloutAnalysis, RolloutAnalysisRunStatus};

use crate::context::Context;
use crate::observed::RunKind;
use crate::plan::{Action, AnalysisRunRequest, ExperimentRequest};

/// A run the status points at, with its phase as last observed.
#[derive(Clone, Debug)]
pub(crate) struct CurrentRun {
    pub name: String,
    pub phase: AnalysisPhase,
    pub message: Option<String>,
}

impl CurrentRun {
    pub fn to_status(&self) -> RolloutAnalysisRunStatus {
        RolloutAnalysisRunStatus {
            name: self.name.clone(),
            status: Some(self.phase),
            message: self.message.clone(),
        }
    }
}

/// Resolves a status reference against the observed runs; a recorded run not yet seen by the
/// informer counts as Pending (it is never re-created).
pub(crate) fn current_run(
    context: &Context<'_>,
    reference: Option<&RolloutAnalysisRunStatus>,
) -> Option<CurrentRun> {
    let reference = reference?;
    match context.observed.analysis_run(&reference.name) {
        Some(run) => Some(CurrentRun {
            name: run.name.clone(),
            phase: run.phase,
            message: run.message.clone(),
        }),
        None => Some(CurrentRun {
            name: reference.name.clone(),
            phase: reference.status.unwrap_or(AnalysisPhase::Pending),
            message: reference.message.clone(),
        }),
    }
}

/// Turns a completed run's phase into a pause or an abort.
pub(crate) fn apply_outcome(
    context: &mut Context<'_>,
    run: &CurrentRun,
    inconclusive: PauseReason,
) {
    match run.phase {
        AnalysisPhase::Inconclusive => context.pause.add.push(inconclusive),
        AnalysisPhase::Failed | AnalysisPhase::Error => context.pause.abort(run.message.clone()),
        AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::Successful => {}
    }
}

/// Argo's `needsNewAnalysisRun`: no run yet; or, after the controller paused for an inconclusive
/// run and the user resumed, a fresh one; or a fresh one after a retry.
pub(crate) fn needs_new_run(context: &Context<'_>, current: Option<&CurrentRun>) -> bool {
    let Some(current) = current else {
        return true;
    };
    let previous = context.previous;
    let blue_green_pause = previous
        .pause_conditions
        .iter()
        .any(|condition| condition.reason == PauseReason::BlueGreenPause);
    if previous.controller_pause && !blue_green_pause {
        return current.phase == AnalysisPhase::Inconclusive;
    }
    previous.aborted_at.is_some()
}

/// `<rollout>-<podHash>-<revision>[-<suffix>]`, with `.N` appended when the name is taken.
pub(crate) fn unique_name(
    context: &Context<'_>,
    suffix: Option<&str>,
    taken: impl Fn(&str) -> bool,
) -> String {
    let mut base = format!(
        "{}-{}-{}",
        context.rollout_name(),
        context.desired_hash(),
        context.revision()
    );
    if let Some(suffix) = suffix {
        base.push('-');
        base.push_str(suffix);
    }
    if !taken(&base) {
        return base;
    }
    (1..)
        .map(|attempt| format!("{base}.{attempt}"))
        .find(|candidate| !taken(candidate))
        .unwrap_or(base)
}

/// Plans the creation of an AnalysisRun and returns it as the new current run.
pub(crate) fn create_run(
    context: &Context<'_>,
    actions: &mut Vec<Action>,
    analysis: &RolloutAnalysis,
    kind: RunKind,
) -> CurrentRun {
    let suffix = match kind {
        RunKind::Step(index) => Some(index.to_string()),
        RunKind::Background => None,
        RunKind::PrePromotion => Some("pre".to_string()),
        RunKind::PostPromotion => Some("post".to_string()),
    };
    let name = unique_name(context, suffix.as_deref(), |name| {
        context.observed.analysis_run(name).is_some()
    });
    actions.push(Action::CreateAnalysisRun(Box::new(AnalysisRunRequest {
        name: name.clone(),
        kind,
        analysis: analysis.clone(),
        pod_template_hash: context.desired_hash(),
        stable_pod_template_hash: context.previous.stable_rs.clone(),
        revision: context.revision(),
    })));
    CurrentRun {
        name,
        phase: AnalysisPhase::Pending,
        message: None,
    }
}

/// Terminates a run unless it already completed or is terminating.
pub(crate) fn terminate_run(context: &Context<'_>, actions: &mut Vec<Action>, name: &str) {
    let running = context
        .observed
        .analysis_run(name)
        .is_some_and(|run| !run.phase.is_completed() && !run.terminating);
    let already_planned = actions
        .iter()
        .any(|action| matches!(action, Action::TerminateAnalysisRun { name: planned } if planned == name));
    if running && !already_planned {
        actions.push(Action::TerminateAnalysisRun {
            name: name.to_string(),
        });
    }
}

/// Terminates every running AnalysisRun that is not one of `keep`.
pub(crate) fn terminate_other_runs(
    context: &Context<'_>,
    actions: &mut Vec<Action>,
    keep: &[&str],
) {
    for run in &context.observed.analysis_runs {
        if !keep.contains(&run.name.as_str()) {
            terminate_run(context, actions, &run.name);
        }
    }
}

/// Terminates every running Experiment that is not `keep`.
pub(crate) fn terminate_other_experiments(
    context: &Context<'_>,
    actions: &mut Vec<Action>,
    keep: Option<&str>,
) {
    for experiment in &context.observed.experiments {
        if Some(experiment.name.as_str()) != keep
            && !experiment.phase.is_completed()
            && !experiment.terminating
        {
            actions.push(Action::TerminateExperiment {
                name: experiment.name.clone(),
            });
        }
    }
}

/// Plans the Experiment of an `experiment` step.
pub(crate) fn create_experiment(
    context: &Context<'_>,
    actions: &mut Vec<Action>,
    step_index: i32,
    step: &sluice_api::rollout::RolloutExperimentStep,
) -> String {
    let name = unique_name(context, Some(&step_index.to_string()), |name| {
        context.observed.experiment(name).is_some()
    });
    actions.push(Action::CreateExperiment(Box::new(ExperimentRequest {
        name: name.clone(),
        step_index,
        step: step.clone(),
        pod_template_hash: context.desired_hash(),
        stable_pod_template_hash: context.previous.stable_rs.clone(),
        revision: context.revision(),
    })));
    name
}
