//! History limits (`spec.analysis.successfulRunHistoryLimit` and
//! `unsuccessfulRunHistoryLimit`, 5 each by default): completed AnalysisRuns and Experiments of a
//! Rollout beyond the limits are deleted, oldest first. "Unsuccessful" is Failed, Error or
//! Inconclusive. Runs and Experiments the status refers to (before or after the plan), and
//! unfinished ones, are kept.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use sluice_api::analysis::AnalysisPhase;
use sluice_api::rollout::{Rollout, RolloutStatus};

use crate::observed::Observed;
use crate::plan::{Action, Plan};

/// Argo's default for both history limits.
pub const DEFAULT_RUN_HISTORY_LIMIT: i32 = 5;

/// Adds the deletions of AnalysisRuns and Experiments beyond the history limits to `plan`.
pub(crate) fn collect_history(observed: &Observed, plan: &mut Plan) {
    let (successful, unsuccessful) = limits(&observed.rollout);
    // What the status refers to, before and after this plan.
    let previous = observed.rollout.status.clone().unwrap_or_default();
    let mut referenced = referenced(&previous);
    referenced.extend(self::referenced(&plan.status));
    let runs = observed
        .analysis_runs
        .iter()
        .map(|run| (run.name.as_str(), run.phase, run.created_at));
    for name in beyond_limits(runs, &referenced, successful, unsuccessful) {
        plan.actions.push(Action::DeleteAnalysisRun { name });
    }
    let experiments = observed.experiments.iter().map(|experiment| {
        (
            experiment.name.as_str(),
            experiment.phase,
            experiment.created_at,
        )
    });
    for name in beyond_limits(experiments, &referenced, successful, unsuccessful) {
        plan.actions.push(Action::DeleteExperiment { name });
    }
}

fn limits(rollout: &Rollout) -> (usize, usize) {
    let strategy = rollout.spec.analysis.as_ref();
    let limit = |value: Option<i32>| {
        usize::try_from(value.unwrap_or(DEFAULT_RUN_HISTORY_LIMIT).max(0)).unwrap_or_default()
    };
    (
        limit(strategy.and_then(|s| s.successful_run_history_limit)),
        limit(strategy.and_then(|s| s.unsuccessful_run_history_limit)),
    )
}

/// Names the status refers to (current step, background, pre/post-promotion runs; the current
/// experiment).
fn referenced(status: &RolloutStatus) -> BTreeSet<&str> {
    let canary = &status.canary;
    let blue_green = &status.blue_green;
    [
        canary.current_step_analysis_run_status.as_ref(),
        canary.current_background_analysis_run_status.as_ref(),
        blue_green.pre_promotion_analysis_run_status.as_ref(),
        blue_green.post_promotion_analysis_run_status.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|run| run.name.as_str())
    .chain(canary.current_experiment.as_deref())
    .collect()
}

/// The completed, unreferenced objects beyond the limits, oldest first within each kind.
fn beyond_limits<'a>(
    objects: impl Iterator<Item = (&'a str, AnalysisPhase, Timestamp)>,
    referenced: &BTreeSet<&str>,
    successful_limit: usize,
    unsuccessful_limit: usize,
) -> Vec<String> {
    let mut successful = Vec::new();
    let mut unsuccessful = Vec::new();
    for (name, phase, created_at) in objects {
        if referenced.contains(name) {
            continue;
        }
        match phase {
            AnalysisPhase::Successful => successful.push((created_at, name)),
            AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive => {
                unsuccessful.push((created_at, name));
            }
            AnalysisPhase::Pending | AnalysisPhase::Running => {}
        }
    }
    let mut beyond = Vec::new();
    for (mut group, limit) in [
        (successful, successful_limit),
        (unsuccessful, unsuccessful_limit),
    ] {
        // Newest first; everything after the first `limit` goes.
        group.sort_by(|a, b| b.cmp(a));
        let mut excess: Vec<_> = group.into_iter().skip(limit).collect();
        excess.sort();
        beyond.extend(excess.into_iter().map(|(_, name)| name.to_string()));
    }
    beyond
}
