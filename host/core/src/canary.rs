//! The canary step machine: replica sizing per step, traffic weights, services, pauses,
//! analysis/experiment/plugin steps, abort, retry, promotion and rollback.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use sluice_api::analysis::AnalysisPhase;
use sluice_api::duration::parse_int_or_duration;
use sluice_api::rollout::{
    CanaryStatus, CanaryStep, CanaryStrategy, PauseReason, RolloutStatus, SetCanaryScale,
    TrafficWeights, WeightDestination,
};

use crate::context::{Context, add_seconds, format_selector, until};
use crate::hash::step_hash;
use crate::observed::{Observed, RunKind};
use crate::plan::{Action, RouterCall, VERIFY_RETRY_INTERVAL};
use crate::replicas::{
    BasicCanaryInput, CanaryCounts, ReplicaSetCounts, TrafficRoutedInput, basic_canary_counts,
    canary_fenceposts, progress_threshold, traffic_routed_counts,
};
use crate::runs::{self, CurrentRun};
use crate::status::{Planned, finish_plan};
use crate::step_plugin;

/// The canary strategy with the derived facts every section needs.
struct Canary<'a> {
    strategy: &'a CanaryStrategy,
    steps: &'a [CanaryStep],
    step_count: i32,
    step_hash: String,
    traffic_routed: bool,
    max_weight: i32,
    /// The current step index (`status.currentStepIndex`, default 0) when there are steps.
    index: Option<i32>,
}

impl<'a> Canary<'a> {
    fn new(strategy: &'a CanaryStrategy, previous: &RolloutStatus) -> Self {
        let steps = strategy.steps.as_slice();
        let index = if steps.is_empty() {
            None
        } else {
            Some(previous.current_step_index.unwrap_or(0).max(0))
        };
        Self {
            strategy,
            steps,
            step_count: steps.len() as i32,
            step_hash: step_hash(steps),
            traffic_routed: strategy.traffic_routing.is_some(),
            max_weight: strategy.max_traffic_weight(),
            index,
        }
    }

    /// The current step, unless every step is done.
    fn step(&self) -> Option<&'a CanaryStep> {
        let index = usize::try_from(self.index?).ok()?;
        self.steps.get(index)
    }

    /// Steps at or before the current one, newest first.
    fn steps_back_from(&self, index: i32) -> impl Iterator<Item = &'a CanaryStep> {
        let end = usize::try_from(index).map_or(0, |index| (index + 1).min(self.steps.len()));
        self.steps[..end].iter().rev()
    }

    fn canary_service(&self) -> &'a str {
        self.strategy.canary_service.as_deref().unwrap_or_default()
    }

    fn stable_service(&self) -> &'a str {
        self.strategy.stable_service.as_deref().unwrap_or_default()
    }

    /// `abortScaleDownDelaySeconds` as Argo resolves it for the canary: only with traffic
    /// routing; `None` when explicitly 0 ("never scale down"). Also says whether it was set.
    fn abort_scale_down_delay(&self) -> (Option<i32>, bool) {
        if !self.traffic_routed {
            return (Some(0), false);
        }
        match self.strategy.abort_scale_down_delay_seconds {
            Some(0) => (None, true),
            Some(seconds) => (Some(seconds), true),
            None => (Some(self.strategy.abort_scale_down_delay_seconds()), false),
        }
    }

    fn scale_down_delay_seconds(&self) -> i32 {
        if self.traffic_routed {
            self.strategy.scale_down_delay_seconds()
        } else {
            0
        }
    }
}

fn fully_promoted(status: &RolloutStatus) -> bool {
    status.stable_rs.is_some() && status.stable_rs == status.current_pod_hash
}

/// Plans one canary reconcile. `forced_abort` aborts up front (used when the progress deadline
/// asks for an abort).
pub(crate) fn plan(
    observed: &Observed,
    now: Timestamp,
    strategy: &CanaryStrategy,
    forced_abort: Option<String>,
) -> Planned {
    let default_status = RolloutStatus::default();
    let previous = observed.rollout.status.as_ref().unwrap_or(&default_status);
    let mut context = Context::new(observed, previous, now);
    if let Some(message) = forced_abort {
        context.pause.abort(Some(message));
    }
    let canary = Canary::new(strategy, previous);

    let steps_changed = previous.current_step_hash.as_deref() != Some(canary.step_hash.as_str());
    let pod_changed = previous
        .current_pod_hash
        .as_ref()
        .is_some_and(|current| *current != context.desired_hash());
    if steps_changed || pod_changed {
        return plan_reset(context, &canary);
    }

    context.create_new_rs_if_missing(|context| {
        new_rs_replicas(context, &canary, previous.canary.weights.as_ref())
    });
    context.sync_revision();
    delete_old_replica_sets(&mut context);

    // Outcomes first: a failed run aborts in this very plan.
    let mut run_actions = Vec::new();
    let runs = decide_and_reconcile_runs(&mut context, &canary, &mut run_actions);

    let aborted = context.aborted();
    let weights = if aborted {
        let weights = reconcile_traffic(&mut context, &canary);
        reconcile_services(&mut context, &canary);
        weights
    } else {
        reconcile_services(&mut context, &canary);
        reconcile_traffic(&mut context, &canary)
    };
    context.actions.append(&mut run_actions);

    let paused_now = !context.pause.add.is_empty();
    if !paused_now {
        let scaled = reconcile_replica_sets(
            &mut context,
            &canary,
            weights.as_ref().map(|(weights, _)| weights),
        );
        if !scaled {
            reconcile_pause_step(&mut context, &canary);
        }
    }
    sync_status(context, &canary, weights, runs)
}

/// The template or the steps changed: restart the steps (Argo's `resetRolloutStatus`), skipping
/// them when going back to the stable revision or within the rollback window.
fn plan_reset(mut context: Context<'_>, canary: &Canary<'_>) -> Planned {
    context.sync_revision();
    let previous = context.previous;
    let mut status = RolloutStatus {
        current_pod_hash: Some(context.desired_hash()),
        current_step_hash: Some(canary.step_hash.clone()),
        stable_rs: previous.stable_rs.clone(),
        restarted_at: previous.restarted_at.clone(),
        conditions: previous.conditions.clone(),
        canary: CanaryStatus {
            weights: previous.canary.weights.clone(),
            stable_ping_pong: previous.canary.stable_ping_pong.clone(),
            current_experiment: None,
            ..CanaryStatus::default()
        },
        ..RolloutStatus::default()
    };
    context.base_counters(&mut status);
    status.hpa_replicas = status.replicas;
    status.selector = format_selector(context.rollout);
    status.current_step_index = if canary.step_count > 0 { Some(0) } else { None };
    if let Some(new_rs) = context.new_rs()
        && canary.step_count > 0
    {
        let back_to_stable = previous.stable_rs.as_deref() == Some(new_rs.hash.as_str());
        if back_to_stable || (rollback_within_window(&context) && new_rs.spec > 0) {
            status.current_step_index = Some(canary.step_count);
        }
    }
    context.pause.clear = true;
    context.pause.remove_abort = true;
    finish(context, canary, status)
}

/// Argo's `isRollbackWithinWindow`: the desired ReplicaSet is older than the stable one and fewer
/// than `rollbackWindow.revisions` revisions lie between them.
pub(crate) fn rollback_within_window(context: &Context<'_>) -> bool {
    let (Some(new_rs), Some(stable_rs)) = (context.new_rs(), context.stable_rs()) else {
        return false;
    };
    if new_rs.created_at >= stable_rs.created_at {
        return false;
    }
    let Some(window) = context
        .rollout
        .spec
        .rollback_window
        .as_ref()
        .and_then(|window| window.revisions)
        .filter(|revisions| *revisions > 0)
    else {
        return false;
    };
    let between = context
        .replica_sets
        .iter()
        .filter(|rs| rs.created_at < stable_rs.created_at && new_rs.created_at < rs.created_at)
        .count() as i32;
    between < window
}

/// Deletes scaled-down old ReplicaSets beyond `revisionHistoryLimit`, oldest first.
pub(crate) fn delete_old_replica_sets(context: &mut Context<'_>) {
    let limit = context.rollout.revision_history_limit().max(0) as usize;
    let others = context.other_indices();
    if others.len() <= limit {
        return;
    }
    let excess = others.len() - limit;
    for index in others.into_iter().take(excess) {
        let rs = &context.replica_sets[index];
        if rs.spec == 0 && rs.replicas == 0 {
            context.actions.push(Action::DeleteReplicaSet {
                name: rs.name.clone(),
            });
        }
    }
}

/// Argo's `GetCurrentSetWeight`: 0 when aborted, the last `setWeight` at or before the current
/// step, the maximum weight once every step is done.
fn current_set_weight(context: &Context<'_>, canary: &Canary<'_>) -> i32 {
    if context.aborted() {
        return 0;
    }
    let (Some(_), Some(index)) = (canary.step(), canary.index) else {
        return canary.max_weight;
    };
    canary
        .steps_back_from(index)
        .find_map(|step| step.set_weight)
        .unwrap_or(0)
}

/// The `setCanaryScale` in effect, if any (traffic routing only; ignored after an abort unless
/// the canary is kept with `abortScaleDownDelaySeconds: 0`).
fn set_canary_scale<'a>(context: &Context<'_>, canary: &Canary<'a>) -> Option<&'a SetCanaryScale> {
    if !canary.traffic_routed {
        return None;
    }
    if context.aborted() && canary.abort_scale_down_delay().0.is_some() {
        return None;
    }
    canary.step()?;
    let scale = canary
        .steps_back_from(canary.index?)
        .find_map(|step| step.set_canary_scale.as_ref())?;
    if scale.match_traffic_weight {
        None
    } else {
        Some(scale)
    }
}

/// Argo's `GetCanaryReplicasOrWeight`: an explicit canary size, or the weight to size for.
fn replicas_or_weight(context: &Context<'_>, canary: &Canary<'_>) -> (Option<i32>, i32) {
    let previous = context.previous;
    if previous.promote_full || previous.stable_rs.is_none() || fully_promoted(previous) {
        return (None, canary.max_weight);
    }
    if let Some(scale) = set_canary_scale(context, canary) {
        if let Some(replicas) = scale.replicas {
            return (Some(replicas), 0);
        }
        if let Some(weight) = scale.weight {
            return (None, weight);
        }
    }
    (None, current_set_weight(context, canary))
}

fn counts_of(context: &Context<'_>, index: Option<usize>) -> Option<ReplicaSetCounts> {
    index.map(|index| {
        let rs = &context.replica_sets[index];
        ReplicaSetCounts {
            spec: rs.spec,
            available: rs.available,
        }
    })
}

fn basic_counts(context: &Context<'_>, canary: &Canary<'_>) -> CanaryCounts {
    let (_, weight) = replicas_or_weight(context, canary);
    let fenceposts = canary_fenceposts(
        &canary.strategy.max_surge(),
        &canary.strategy.max_unavailable(),
        context.replicas,
    );
    let other_replicas = context
        .other_indices()
        .into_iter()
        .map(|index| context.replica_sets[index].spec)
        .sum();
    basic_canary_counts(&BasicCanaryInput {
        replicas: context.replicas,
        weight,
        fenceposts,
        canary: counts_of(context, context.new_index),
        stable: counts_of(context, context.distinct_stable_index()),
        other_replicas,
    })
}

fn routed_counts(
    context: &Context<'_>,
    canary: &Canary<'_>,
    weights: Option<&TrafficWeights>,
) -> CanaryCounts {
    let (explicit, weight) = replicas_or_weight(context, canary);
    traffic_routed_counts(&TrafficRoutedInput {
        replicas: context.replicas,
        weight,
        max_weight: canary.max_weight,
        explicit_canary_replicas: explicit,
        dynamic_stable_scale: canary.strategy.dynamic_stable_scale,
        min_pods_per_replica_set: canary.strategy.min_pods_per_replica_set,
        current_weights: weights.map(|weights| (weights.canary.weight, weights.stable.weight)),
        aborted: context.aborted(),
    })
}

fn desired_counts(
    context: &Context<'_>,
    canary: &Canary<'_>,
    weights: Option<&TrafficWeights>,
) -> CanaryCounts {
    if canary.traffic_routed {
        routed_counts(context, canary, weights)
    } else {
        basic_counts(context, canary)
    }
}

fn new_rs_replicas(
    context: &Context<'_>,
    canary: &Canary<'_>,
    weights: Option<&TrafficWeights>,
) -> i32 {
    desired_counts(context, canary, weights).canary
}

/// Argo's `AtDesiredReplicaCountsForCanary`, with `replicaProgressThreshold`.
fn at_desired_replica_counts(
    context: &Context<'_>,
    canary: &Canary<'_>,
    weights: Option<&TrafficWeights>,
) -> bool {
    let desired = desired_counts(context, canary, weights);
    let Some(new_rs) = context.new_rs() else {
        return false;
    };
    let threshold = progress_threshold(
        desired.canary,
        canary.strategy.replica_progress_threshold.as_ref(),
    );
    if new_rs.spec != desired.canary || new_rs.available < threshold {
        return false;
    }
    if !canary.traffic_routed || !canary.strategy.dynamic_stable_scale {
        let Some(stable) = context.stable_rs() else {
            return false;
        };
        if stable.spec != desired.stable || stable.replicas != desired.stable {
            return false;
        }
    }
    if !canary.traffic_routed {
        let old_available: i32 = context
            .other_indices()
            .into_iter()
            .map(|index| context.replica_sets[index].available)
            .sum();
        if old_available != 0 {
            return false;
        }
    }
    true
}

/// The runs, experiment and plugin statuses this pass settles on.
#[derive(Default)]
struct Runs {
    step: Option<CurrentRun>,
    background: Option<CurrentRun>,
    experiment: Option<(String, AnalysisPhase)>,
    plugin_statuses: Vec<sluice_api::rollout::StepPluginStatus>,
}

fn decide_and_reconcile_runs(
    context: &mut Context<'_>,
    canary: &Canary<'_>,
    actions: &mut Vec<Action>,
) -> Runs {
    let previous = context.previous;
    let step = canary.step();
    let paused_or_aborted = !previous.pause_conditions.is_empty() || previous.abort;
    let mut current_step_run = runs::current_run(
        context,
        previous.canary.current_step_analysis_run_status.as_ref(),
    );
    let mut background = runs::current_run(
        context,
        previous
            .canary
            .current_background_analysis_run_status
            .as_ref(),
    );
    let current_experiment = previous.canary.current_experiment.as_ref().map(|name| {
        let (phase, message) = context
            .observed
            .experiment(name)
            .map_or((AnalysisPhase::Pending, None), |experiment| {
                (experiment.phase, experiment.message.clone())
            });
        (name.clone(), phase, message)
    });
    let plugin_statuses = context.observed.step_plugin_reports.as_slice();

    // Outcomes.
    let inconclusive_paused = previous
        .pause_conditions
        .iter()
        .any(|condition| condition.reason == PauseReason::InconclusiveAnalysisRun);
    let promote_full = previous.promote_full;
    let initial_deploy = previous.stable_rs.is_none();
    let rollback_to_delayed = context.new_rs().is_some_and(|rs| rs.deadline.is_some());
    let skip = promote_full || rollback_to_delayed || initial_deploy;
    if !skip && !context.aborted() {
        if !paused_or_aborted
            && step.is_some_and(|step| step.analysis.is_some())
            && let Some(run) = &current_step_run
        {
            runs::apply_outcome(context, run, PauseReason::InconclusiveAnalysisRun);
        }
        let background_active = canary.strategy.analysis.is_some()
            && !fully_promoted(previous)
            && !before_starting_step(canary)
            && !inconclusive_paused;
        if background_active
            && !runs::needs_new_run(context, background.as_ref())
            && let Some(run) = &background
        {
            runs::apply_outcome(context, run, PauseReason::InconclusiveAnalysisRun);
        }
        if let (Some(step), Some((_, phase, message))) = (step, &current_experiment)
            && step.experiment.is_some()
        {
            match phase {
                AnalysisPhase::Inconclusive => {
                    context.pause.add.push(PauseReason::InconclusiveExperiment)
                }
                AnalysisPhase::Failed | AnalysisPhase::Error => {
                    context.pause.abort(message.clone())
                }
                _ => {}
            }
        }
        if let (Some(step), Some(index)) = (step, canary.index)
            && step.plugin.is_some()
            && let Some(message) = step_plugin::failure_message(plugin_statuses, index)
        {
            context.pause.abort(Some(message));
        }
    }

    let mut result = Runs::default();
    let aborted = context.aborted();
    if aborted || skip {
        result.plugin_statuses = reconcile_step_plugins(context, canary, actions, skip, true);
        for run in [&current_step_run, &background].into_iter().flatten() {
            runs::terminate_run(context, actions, &run.name);
        }
        runs::terminate_other_runs(context, actions, &[]);
        runs::terminate_other_experiments(context, actions, None);
        result.step = current_step_run;
        result.background = background;
        result.experiment = current_experiment.map(|(name, phase, _)| (name, phase));
        return result;
    }

    // Step analysis.
    let paused = paused_or_aborted || !context.pause.add.is_empty();
    if !paused {
        match (step.and_then(|step| step.analysis.as_ref()), canary.index) {
            (Some(analysis), Some(index)) => {
                if runs::needs_new_run(context, current_step_run.as_ref()) {
                    current_step_run = Some(runs::create_run(
                        context,
                        actions,
                        analysis,
                        RunKind::Step(index),
                    ));
                }
            }
            _ => {
                if let Some(run) = current_step_run.take() {
                    runs::terminate_run(context, actions, &run.name);
                }
            }
        }
    }

    // Background analysis.
    match &canary.strategy.analysis {
        None => {
            if let Some(run) = background.take() {
                runs::terminate_run(context, actions, &run.name);
            }
        }
        Some(background_analysis) => {
            if fully_promoted(previous)
                || previous.current_pod_hash.is_none()
                || before_starting_step(canary)
            {
                background = None;
            } else if !inconclusive_paused && runs::needs_new_run(context, background.as_ref()) {
                background = Some(runs::create_run(
                    context,
                    actions,
                    &background_analysis.analysis,
                    RunKind::Background,
                ));
            }
        }
    }

    // Experiment step.
    let mut experiment = current_experiment.map(|(name, phase, _)| (name, phase));
    match (step.and_then(|step| step.experiment.as_ref()), canary.index) {
        (Some(experiment_step), Some(index)) => {
            if experiment.is_none() && !paused && context.stable_rs().is_some() {
                let name = runs::create_experiment(context, actions, index, experiment_step);
                experiment = Some((name, AnalysisPhase::Pending));
            }
        }
        _ => {
            if let Some((name, _)) = experiment.take()
                && context
                    .observed
                    .experiment(&name)
                    .is_some_and(|found| !found.phase.is_completed() && !found.terminating)
            {
                actions.push(Action::TerminateExperiment { name });
            }
        }
    }

    result.plugin_statuses = reconcile_step_plugins(context, canary, actions, false, paused);

    let keep: Vec<&str> = [current_step_run.as_ref(), background.as_ref()]
        .into_iter()
        .flatten()
        .map(|run| run.name.as_str())
        .collect();
    runs::terminate_other_runs(context, actions, &keep);
    runs::terminate_other_experiments(
        context,
        actions,
        experiment.as_ref().map(|(name, _)| name.as_str()),
    );
    result.step = current_step_run;
    result.background = background;
    result.experiment = experiment;
    result
}

/// Plans the step plugin calls of this pass; returns the statuses to keep. `skipping_steps`:
/// the steps are being skipped (initial deploy, full promotion, rollback within the window).
fn reconcile_step_plugins(
    context: &mut Context<'_>,
    canary: &Canary<'_>,
    actions: &mut Vec<Action>,
    skipping_steps: bool,
    paused: bool,
) -> Vec<sluice_api::rollout::StepPluginStatus> {
    let previous = context.previous;
    let decision = step_plugin::calls(&step_plugin::Situation {
        steps: canary.steps,
        index: canary.index,
        statuses: &context.observed.step_plugin_reports,
        persisted: &previous.canary.step_plugin_statuses,
        aborted: context.aborted(),
        promoting_fully: skipping_steps || fully_promoted(previous),
        paused,
        now: context.now,
    });
    if let Some(delay) = decision.requeue_after {
        context.requeue_after(delay);
    }
    if !decision.calls.is_empty() {
        // Plan again right away, with the outcomes recorded.
        context.requeue_after(Duration::ZERO);
    }
    actions.extend(decision.calls.into_iter().map(Action::StepPlugin));
    decision.statuses
}

/// Argo's `BeforeStartingStep`: background analysis waits for `startingStep`.
fn before_starting_step(canary: &Canary<'_>) -> bool {
    let Some(starting) = canary
        .strategy
        .analysis
        .as_ref()
        .and_then(|analysis| analysis.starting_step)
    else {
        return false;
    };
    canary.step().is_some() && canary.index.is_some_and(|index| index < starting)
}

/// Stable and canary Services (Argo's `reconcileStableAndCanaryService`). After an abort the
/// canary Service selects the stable revision: here without traffic routing, in
/// [`reconcile_traffic`] (once the canary weight is 0) with it.
fn reconcile_services(context: &mut Context<'_>, canary: &Canary<'_>) {
    let stable_index = context.stable_index;
    context.ensure_service_targets(canary.stable_service(), stable_index, true);
    if context.aborted() {
        if !canary.traffic_routed {
            context.ensure_service_targets(canary.canary_service(), stable_index, true);
        }
        return;
    }
    if dynamically_rolling_back_to_stable(context, canary) {
        return;
    }
    let new_index = context.new_index;
    context.ensure_service_targets(canary.canary_service(), new_index, true);
}

/// Argo's `isDynamicallyRollingBackToStable`: back on the stable revision mid-update with
/// dynamic stable scale, while the stable is not fully available yet.
fn dynamically_rolling_back_to_stable(context: &Context<'_>, canary: &Canary<'_>) -> bool {
    if !(fully_promoted(context.previous)
        && canary.traffic_routed
        && canary.strategy.dynamic_stable_scale)
    {
        return false;
    }
    let (Some(weights), Some(new_rs)) = (&context.previous.canary.weights, context.new_rs()) else {
        return false;
    };
    weights.canary.pod_template_hash.as_deref() != Some(new_rs.hash.as_str())
        && new_rs.available < context.replicas
}

/// Canary weight while aborting or rolling back: 0, or with dynamic stable scale what the stable
/// can carry (never more than the weight already set).
fn weight_on_abort_or_rollback(context: &Context<'_>, canary: &Canary<'_>) -> i32 {
    if !canary.strategy.dynamic_stable_scale {
        return 0;
    }
    let stable_available = context.stable_rs().map_or(0, |rs| rs.available);
    let replicas = context.replicas.max(1);
    let mut weight = canary.max_weight - (canary.max_weight * stable_available) / replicas;
    if let Some(weights) = &context.previous.canary.weights {
        weight = weight.min(weights.canary.weight);
    }
    weight.max(0)
}

/// The traffic of the current `experiment` step: each template with a `weight`, once the
/// running Experiment reports the template's Service and pod-template hash.
fn experiment_destinations(context: &Context<'_>, canary: &Canary<'_>) -> Vec<WeightDestination> {
    let Some(step) = canary.step().and_then(|step| step.experiment.as_ref()) else {
        return Vec::new();
    };
    let experiment = context
        .previous
        .canary
        .current_experiment
        .as_deref()
        .and_then(|name| context.observed.experiment(name))
        .filter(|experiment| !experiment.phase.is_completed());
    let Some(experiment) = experiment else {
        return Vec::new();
    };
    step.templates
        .iter()
        .filter_map(|template| {
            let weight = template.weight?;
            let target = experiment
                .templates
                .iter()
                .find(|target| target.name == template.name)?;
            Some(WeightDestination {
                weight,
                service_name: Some(target.service_name.clone()?),
                pod_template_hash: Some(target.pod_template_hash.clone()?),
            })
        })
        .collect()
}

/// Traffic routing (Argo's `reconcileTrafficRouting`). Returns the weights for status and
/// whether a weight verification is still pending.
fn reconcile_traffic(
    context: &mut Context<'_>,
    canary: &Canary<'_>,
) -> Option<(TrafficWeights, bool)> {
    if !canary.traffic_routed {
        return None;
    }
    let previous = context.previous;
    let previous_weights = previous.canary.weights.as_ref();
    let mut canary_hash = context.new_rs().map(|rs| rs.hash.clone());
    let stable_hash = context.stable_rs().map(|rs| rs.hash.clone());
    let aborted = context.aborted();
    let promoted = fully_promoted(previous);
    let mut desired = 0;
    let mut remove_routes = false;
    let mut switch_canary_to_stable = false;

    if dynamically_rolling_back_to_stable(context, canary) {
        desired = weight_on_abort_or_rollback(context, canary);
        canary_hash = previous_weights.and_then(|weights| weights.canary.pod_template_hash.clone());
    } else if promoted {
        remove_routes = true;
    } else if aborted {
        desired = weight_on_abort_or_rollback(context, canary);
        switch_canary_to_stable = !canary.strategy.dynamic_stable_scale || desired == 0;
        remove_routes = true;
    } else if context.new_rs().is_none_or(|rs| rs.available == 0) {
        desired = 0;
    } else if previous.promote_full {
        desired = if canary.strategy.dynamic_stable_scale {
            let available = context.new_rs().map_or(0, |rs| rs.available);
            (canary.max_weight * available) / context.replicas.max(1)
        } else {
            previous_weights.map_or(0, |weights| weights.canary.weight)
        };
        remove_routes = true;
    } else if let Some(index) = canary.index {
        if !at_desired_replica_counts(context, canary, None) {
            desired = canary
                .steps_back_from(index - 1)
                .find_map(|step| step.set_weight)
                .unwrap_or(0);
        } else if index != canary.step_count {
            desired = current_set_weight(context, canary);
        } else {
            desired = canary.max_weight;
        }
    }

    let additional = if aborted || promoted {
        Vec::new()
    } else {
        experiment_destinations(context, canary)
    };
    let to_experiments: i32 = additional
        .iter()
        .map(|destination| destination.weight)
        .sum();
    let weights = TrafficWeights {
        canary: WeightDestination {
            weight: desired,
            service_name: canary.strategy.canary_service.clone(),
            pod_template_hash: canary_hash.clone(),
        },
        stable: WeightDestination {
            weight: (canary.max_weight - desired - to_experiments).max(0),
            service_name: canary.strategy.stable_service.clone(),
            pod_template_hash: stable_hash.clone(),
        },
        additional,
        verified: None,
    };
    let hashes_changed = previous_weights.is_none_or(|previous| {
        previous.canary.pod_template_hash != weights.canary.pod_template_hash
            || previous.stable.pod_template_hash != weights.stable.pod_template_hash
    });
    let weight_changed = previous_weights.is_none_or(|previous| {
        previous.canary.weight != weights.canary.weight
            || previous.stable.weight != weights.stable.weight
            || previous.additional != weights.additional
    });
    let newly_aborted = aborted && previous.aborted_at.is_none();
    let canary_unavailable = context.new_rs().is_none_or(|rs| rs.available == 0);
    let previous_canary_weight = previous_weights.map_or(0, |weights| weights.canary.weight);

    // Traffic leaves the canary first: on abort, or when the canary has no available pod.
    let weight_first =
        weight_changed && (aborted || (canary_unavailable && previous_canary_weight > 0));
    if weight_first {
        context.actions.push(Action::Router(RouterCall::SetWeight {
            weight: desired,
            additional: weights.additional.clone(),
        }));
    }
    if switch_canary_to_stable {
        let stable_index = context.stable_index;
        context.ensure_service_targets(canary.canary_service(), stable_index, false);
    }
    if remove_routes && (weight_changed || hashes_changed || newly_aborted) {
        context
            .actions
            .push(Action::Router(RouterCall::RemoveManagedRoutes));
    }
    if let Some(step) = canary.step()
        && context.revision() > 1
        && !aborted
    {
        if let Some(route) = &step.set_header_route {
            context
                .actions
                .push(Action::Router(RouterCall::SetHeaderRoute(route.clone())));
        }
        if let Some(route) = &step.set_mirror_route {
            context
                .actions
                .push(Action::Router(RouterCall::SetMirrorRoute(route.clone())));
        }
    }
    if hashes_changed {
        context.actions.push(Action::Router(RouterCall::UpdateHash {
            canary_hash: canary_hash.unwrap_or_default(),
            stable_hash: stable_hash.unwrap_or_default(),
            additional: weights.additional.clone(),
        }));
    }
    if weight_changed && !weight_first {
        context.actions.push(Action::Router(RouterCall::SetWeight {
            weight: desired,
            additional: weights.additional.clone(),
        }));
    }

    // Weight verification, while a setWeight step waits for it; otherwise the last result
    // stands for as long as the weights do.
    let mut weights = weights;
    if !weight_changed && !hashes_changed {
        weights.verified = previous_weights.and_then(|weights| weights.verified);
    }
    let mut pending = false;
    let verify = !aborted
        && !promoted
        && previous.stable_rs.is_some()
        && canary.step().is_some_and(|step| step.set_weight.is_some());
    if verify {
        let observed = context
            .observed
            .weight_verification
            .filter(|result| result.weight == desired);
        match observed {
            Some(result) if !weight_changed => {
                weights.verified = result.verified;
                if result.verified == Some(false) {
                    context
                        .actions
                        .push(Action::Router(RouterCall::VerifyWeight {
                            weight: desired,
                            additional: Vec::new(),
                        }));
                    context.requeue_after(VERIFY_RETRY_INTERVAL);
                }
            }
            _ => {
                pending = true;
                context
                    .actions
                    .push(Action::Router(RouterCall::VerifyWeight {
                        weight: desired,
                        additional: Vec::new(),
                    }));
                context.requeue_after(Duration::ZERO);
            }
        }
    }
    Some((weights, pending))
}

/// Scales the canary, stable and older ReplicaSets (Argo's `reconcileCanaryReplicaSets`).
/// Returns whether anything was scaled (one group per pass, like Argo).
fn reconcile_replica_sets(
    context: &mut Context<'_>,
    canary: &Canary<'_>,
    weights: Option<&TrafficWeights>,
) -> bool {
    let previous = context.previous;
    let inconclusive = previous
        .pause_conditions
        .iter()
        .any(|condition| condition.reason == PauseReason::InconclusiveAnalysisRun);
    if context.rollout.spec.paused || inconclusive {
        return false;
    }
    let delay_on_abort = should_delay_scale_down_on_abort(context, canary);
    if let Some(new_index) = context.new_index
        && !delay_on_abort
    {
        context.remove_deadline(new_index);
    }
    if let Some(stable_index) = context.stable_index {
        context.remove_deadline(stable_index);
    }

    if let Some(stable_index) = context.distinct_stable_index() {
        let desired = if canary.traffic_routed {
            routed_counts(context, canary, previous.canary.weights.as_ref()).stable
        } else {
            basic_counts(context, canary).stable
        };
        if context.scale(stable_index, desired, false) {
            return true;
        }
    }

    if let Some(new_index) = context.new_index {
        let mut desired = if canary.traffic_routed {
            routed_counts(context, canary, weights).canary
        } else {
            basic_counts(context, canary).canary
        };
        if delay_on_abort {
            let (delay, _) = canary.abort_scale_down_delay();
            match context.replica_sets[new_index].deadline {
                Some(deadline) if deadline > context.now => {
                    let remaining = until(context.now, deadline);
                    context.requeue_after(remaining);
                    return false;
                }
                Some(_) => desired = 0,
                None => {
                    let stable_full = context
                        .stable_rs()
                        .is_some_and(|rs| rs.available == context.replicas);
                    if let (Some(seconds), true) = (delay, stable_full) {
                        let deadline = add_seconds(context.now, i64::from(seconds));
                        context.set_deadline(new_index, deadline);
                        context.requeue_after(Duration::from_secs(seconds.unsigned_abs().into()));
                    }
                    return false;
                }
            }
        }
        if context.scale(new_index, desired, delay_on_abort) {
            return true;
        }
    }
    scale_down_old_replica_sets(context, canary)
}

/// Argo's `shouldDelayScaleDownOnAbort` for the canary.
fn should_delay_scale_down_on_abort(context: &Context<'_>, canary: &Canary<'_>) -> bool {
    if !context.aborted() || context.stable_rs().is_none() || !canary.traffic_routed {
        return false;
    }
    let (delay, explicitly_set) = canary.abort_scale_down_delay();
    if delay.is_none() {
        return false;
    }
    !canary.strategy.dynamic_stable_scale || explicitly_set
}

/// Argo's `scaleDownOldReplicaSetsForCanary`.
fn scale_down_old_replica_sets(context: &mut Context<'_>, canary: &Canary<'_>) -> bool {
    let mut others: Vec<usize> = context
        .other_indices()
        .into_iter()
        .filter(|index| context.replica_sets[*index].spec > 0)
        .collect();
    if others.is_empty() {
        return false;
    }
    let mut scaled_down = 0;
    for &index in &others {
        let rs = &context.replica_sets[index];
        if rs.spec > 0 && rs.available < rs.spec {
            let (from, to) = (rs.spec, rs.available);
            context.scale(index, to, false);
            scaled_down += from - to;
        }
    }
    let fenceposts = canary_fenceposts(
        &canary.strategy.max_surge(),
        &canary.strategy.max_unavailable(),
        context.replicas,
    );
    let min_available = context.replicas - fenceposts.max_unavailable;
    let mut max_scale_down = context.total_available() - min_available;
    if max_scale_down <= 0 {
        return scaled_down > 0;
    }
    others.sort_by(|a, b| {
        context.replica_sets[*b]
            .revision
            .cmp(&context.replica_sets[*a].revision)
    });
    let services = [canary.canary_service(), canary.stable_service()];
    let promoted = fully_promoted(context.previous);
    let mut annotated = 0;
    let revision_limit = canary
        .strategy
        .scale_down_delay_revision_limit
        .unwrap_or(i32::MAX);
    for index in others {
        if canary.traffic_routed && context.is_referenced(index, &services) {
            continue;
        }
        if max_scale_down <= 0 {
            break;
        }
        let spec = context.replica_sets[index].spec;
        if spec == 0 {
            continue;
        }
        let mut desired = 0;
        if !canary.traffic_routed {
            if spec > max_scale_down {
                desired = spec - max_scale_down;
            }
        } else if (promoted || context.replica_sets[index].deadline.is_some())
            && !canary.strategy.dynamic_stable_scale
        {
            desired = context.scale_down_delay(
                index,
                &mut annotated,
                canary.scale_down_delay_seconds(),
                revision_limit,
                spec,
            );
        }
        if spec == desired {
            continue;
        }
        context.scale(index, desired, false);
        max_scale_down -= spec - desired;
        scaled_down += spec - desired;
    }
    scaled_down > 0
}

/// Pause steps (Argo's `reconcileCanaryPause`): pause on entry, requeue at the end of a timed
/// pause.
fn reconcile_pause_step(context: &mut Context<'_>, canary: &Canary<'_>) {
    let previous = context.previous;
    if context.rollout.spec.paused || previous.promote_full {
        return;
    }
    let Some(pause) = canary.step().and_then(|step| step.pause.as_ref()) else {
        return;
    };
    let condition = previous
        .pause_conditions
        .iter()
        .find(|condition| condition.reason == PauseReason::CanaryPauseStep);
    let Some(condition) = condition else {
        if !previous.controller_pause {
            context.pause.add.push(PauseReason::CanaryPauseStep);
            if let Some(seconds) = pause_seconds(pause) {
                context.requeue_after(Duration::from_secs(seconds.unsigned_abs()));
            }
        }
        return;
    };
    if let Some(seconds) = pause_seconds(pause) {
        let end = add_seconds(condition.start_time.0, seconds);
        if end > context.now {
            context.requeue_after(until(context.now, end));
        }
    }
}

/// A pause step's duration in whole seconds (`None`: indefinite).
fn pause_seconds(pause: &sluice_api::rollout::RolloutPause) -> Option<i64> {
    let duration = pause.duration.as_ref()?;
    let parsed = parse_int_or_duration(duration).unwrap_or(Duration::ZERO);
    Some(i64::try_from(parsed.as_secs()).unwrap_or(i64::MAX))
}

/// Argo's `CompletedCanaryPauseStep`: resumed by the user, or the duration elapsed.
fn completed_pause_step(context: &Context<'_>, pause: &sluice_api::rollout::RolloutPause) -> bool {
    let previous = context.previous;
    let condition = previous
        .pause_conditions
        .iter()
        .find(|condition| condition.reason == PauseReason::CanaryPauseStep);
    if previous.controller_pause && condition.is_none() {
        return true;
    }
    match (pause_seconds(pause), condition) {
        (Some(seconds), Some(condition)) => {
            context.now > add_seconds(condition.start_time.0, seconds)
        }
        _ => false,
    }
}

/// Argo's `completedCurrentCanaryStep`.
fn completed_current_step(
    context: &Context<'_>,
    canary: &Canary<'_>,
    weights: Option<&(TrafficWeights, bool)>,
    runs: &Runs,
) -> bool {
    if context.rollout.spec.paused {
        return false;
    }
    let Some(step) = canary.step() else {
        return false;
    };
    let new_weights = weights.map(|(weights, _)| weights);
    if let Some(pause) = &step.pause {
        return completed_pause_step(context, pause);
    }
    if step.set_canary_scale.is_some() {
        return at_desired_replica_counts(context, canary, new_weights);
    }
    if step.set_weight.is_some() {
        if !at_desired_replica_counts(context, canary, new_weights) {
            return false;
        }
        let pending = weights.is_some_and(|(_, pending)| *pending);
        let unverified = new_weights.is_some_and(|weights| weights.verified == Some(false));
        return !pending && !unverified;
    }
    if step.experiment.is_some() {
        return runs
            .experiment
            .as_ref()
            .is_some_and(|(_, phase)| *phase == AnalysisPhase::Successful);
    }
    if step.analysis.is_some() {
        return runs
            .step
            .as_ref()
            .is_some_and(|run| run.phase == AnalysisPhase::Successful);
    }
    if step.set_header_route.is_some() || step.set_mirror_route.is_some() {
        return true;
    }
    if step.plugin.is_some() {
        return canary
            .index
            .is_some_and(|index| step_plugin::step_completed(&runs.plugin_statuses, index));
    }
    false
}

/// Argo's `shouldFullPromote` for the canary: the initial deploy, a requested full promotion, a
/// rollback within the window, or every step done, with the desired revision fully available.
fn should_full_promote(context: &Context<'_>, canary: &Canary<'_>) -> bool {
    if context.stable_rs().is_none() {
        return true;
    }
    if context.aborted()
        || context
            .new_rs()
            .is_none_or(|rs| rs.available != context.replicas)
    {
        return false;
    }
    context.previous.promote_full
        || rollback_within_window(context)
        || canary.step_count == 0
        || canary.index == Some(canary.step_count)
}

fn sync_status(
    mut context: Context<'_>,
    canary: &Canary<'_>,
    weights: Option<(TrafficWeights, bool)>,
    runs: Runs,
) -> Planned {
    let previous = context.previous;
    let current_pod_hash = context.desired_hash();
    let mut status = RolloutStatus {
        current_pod_hash: Some(current_pod_hash.clone()),
        current_step_hash: Some(canary.step_hash.clone()),
        stable_rs: previous.stable_rs.clone(),
        restarted_at: previous.restarted_at.clone(),
        conditions: previous.conditions.clone(),
        current_step_index: canary.index,
        ..RolloutStatus::default()
    };
    context.base_counters(&mut status);
    status.hpa_replicas = status.replicas;
    status.selector = format_selector(context.rollout);
    status.promote_full =
        previous.promote_full && previous.stable_rs.as_deref() != Some(current_pod_hash.as_str());
    status.canary = CanaryStatus {
        current_step_analysis_run_status: runs.step.as_ref().map(CurrentRun::to_status),
        current_background_analysis_run_status: runs.background.as_ref().map(CurrentRun::to_status),
        current_experiment: runs.experiment.as_ref().map(|(name, _)| name.clone()),
        weights: weights.as_ref().map(|(weights, _)| weights.clone()),
        stable_ping_pong: previous.canary.stable_ping_pong.clone(),
        step_plugin_statuses: runs.plugin_statuses.clone(),
    };

    if previous.promote_full || rollback_within_window(&context) {
        context.pause.clear = true;
        context.pause.remove_abort = true;
        if canary.step_count > 0 {
            status.current_step_index = Some(canary.step_count);
        }
    }

    if should_full_promote(&context, canary) {
        promote_stable(&mut context, canary, &mut status);
        return finish(context, canary, status);
    }

    if context.aborted() {
        if canary.step_count > 0 {
            status.current_step_index = if status.stable_rs == status.current_pod_hash {
                Some(canary.step_count)
            } else {
                Some(0)
            };
        }
        return finish(context, canary, status);
    }

    if completed_current_step(&context, canary, weights.as_ref(), &runs) {
        status.current_step_index = canary.index.map(|index| index + 1);
        status.canary.current_step_analysis_run_status = None;
        context.pause.remove.push(PauseReason::CanaryPauseStep);
    }
    finish(context, canary, status)
}

/// Argo's `promoteStable`: the desired revision becomes stable.
fn promote_stable(context: &mut Context<'_>, canary: &Canary<'_>, status: &mut RolloutStatus) {
    context.pause.clear = true;
    context.pause.remove_abort = true;
    status.promote_full = false;
    status.current_step_index = if canary.step_count > 0 {
        Some(canary.step_count)
    } else {
        None
    };
    if status.stable_rs != status.current_pod_hash {
        status.stable_rs = status.current_pod_hash.clone();
    }
}

/// Conditions, pause/abort fields, phase and progress-deadline requeue.
fn finish(context: Context<'_>, canary: &Canary<'_>, status: RolloutStatus) -> Planned {
    let indefinite_step = canary.step().is_some_and(|step| {
        step.experiment.is_some() || step.analysis.is_some() || step.pause.is_some()
    });
    let available = context.total_available() >= context.replicas;
    finish_plan(context, status, indefinite_step, available)
}
