//! The blue-green strategy: a preview stack next to the active one, an optional pause and
//! pre-promotion analysis before the active Service switches, post-promotion analysis after,
//! and a delayed scale-down of the previous stack.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use sluice_api::analysis::AnalysisPhase;
use sluice_api::rollout::{BlueGreenStatus, BlueGreenStrategy, PauseReason, RolloutStatus};

use crate::canary::{delete_old_replica_sets, rollback_within_window};
use crate::context::{Context, add_seconds, format_selector, until};
use crate::observed::{Observed, RunKind};
use crate::plan::Action;
use crate::runs::{self, CurrentRun};
use crate::status::{Planned, finish_plan};

/// Plans one blue-green reconcile.
pub(crate) fn plan(
    observed: &Observed,
    now: Timestamp,
    strategy: &BlueGreenStrategy,
    forced_abort: Option<String>,
) -> Planned {
    let default_status = RolloutStatus::default();
    let previous = observed.rollout.status.as_ref().unwrap_or(&default_status);
    let mut context = Context::new(observed, previous, now);
    if let Some(message) = forced_abort {
        context.pause.abort(Some(message));
    }
    let blue_green = BlueGreen { strategy };

    context.create_new_rs_if_missing(|context| blue_green.new_rs_replicas(context));
    context.sync_revision();
    if let (Some(preview), Some(new_rs)) = (blue_green.preview_service(), context.new_rs()) {
        let hash = new_rs.hash.clone();
        context.switch_service(preview, &hash);
    }
    let pod_changed = previous
        .current_pod_hash
        .as_ref()
        .is_some_and(|current| *current != context.desired_hash());

    let mut runs = Runs {
        pre: runs::current_run(
            &context,
            previous
                .blue_green
                .pre_promotion_analysis_run_status
                .as_ref(),
        ),
        post: runs::current_run(
            &context,
            previous
                .blue_green
                .post_promotion_analysis_run_status
                .as_ref(),
        ),
    };
    if !pod_changed {
        decide_outcomes(&mut context, &blue_green, &runs);
        let mut run_actions = Vec::new();
        if context.aborted() {
            // Traffic first: the active Service goes back to stable before anything is scaled.
            reconcile_active_service(&mut context, &blue_green, &runs);
            reconcile_replica_sets(&mut context, &blue_green, &runs);
        } else {
            reconcile_replica_sets(&mut context, &blue_green, &runs);
            reconcile_pause(&mut context, &blue_green, &runs);
            reconcile_active_service(&mut context, &blue_green, &runs);
        }
        reconcile_runs(&mut context, &blue_green, &mut runs, &mut run_actions);
        context.actions.append(&mut run_actions);
    }
    sync_status(context, &blue_green, runs, pod_changed)
}

struct BlueGreen<'a> {
    strategy: &'a BlueGreenStrategy,
}

#[derive(Default)]
struct Runs {
    pre: Option<CurrentRun>,
    post: Option<CurrentRun>,
}

impl BlueGreen<'_> {
    fn active_service(&self) -> &str {
        &self.strategy.active_service
    }

    fn preview_service(&self) -> Option<&str> {
        self.strategy
            .preview_service
            .as_deref()
            .filter(|name| !name.is_empty())
    }

    /// Argo's `NewRSNewReplicas` for blue-green: the preview size until the switch, then full.
    fn new_rs_replicas(&self, context: &Context<'_>) -> i32 {
        let replicas = context.replicas;
        let Some(preview_count) = self.strategy.preview_replica_count else {
            return replicas;
        };
        let previous = context.previous;
        let active = previous
            .blue_green
            .active_selector
            .as_deref()
            .and_then(|hash| context.replica_sets.iter().position(|rs| rs.hash == hash));
        if active.is_none() || active == context.new_index || previous.promote_full {
            return replicas;
        }
        let Some(new_rs) = context.new_rs() else {
            return preview_count;
        };
        if previous.current_pod_hash.as_deref() != Some(new_rs.hash.as_str()) {
            return preview_count;
        }
        let not_paused = !context.rollout.spec.paused && previous.pause_conditions.is_empty();
        if not_paused && previous.blue_green.scale_up_preview_check_point {
            return replicas;
        }
        preview_count
    }

    /// The preview stack reached its current target size and is available.
    fn ready_for_pause(&self, context: &Context<'_>) -> bool {
        let target = self.new_rs_replicas(context);
        context
            .new_rs()
            .is_some_and(|rs| rs.spec == target && rs.available == target)
    }

    fn saturated(&self, context: &Context<'_>) -> bool {
        context
            .new_rs()
            .is_some_and(|rs| rs.spec == context.replicas && rs.available == context.replicas)
    }

    fn needs_controller_pause(&self) -> bool {
        !self.strategy.auto_promotion_enabled()
            || self.strategy.auto_promotion_seconds.unwrap_or(0) > 0
    }

    fn fast_tracked(&self, context: &Context<'_>) -> bool {
        let Some(new_rs) = context.new_rs() else {
            return false;
        };
        new_rs.deadline.is_some()
            || context.previous.promote_full
            || context
                .selector(self.active_service())
                .is_none_or(|hash| hash == new_rs.hash)
    }

    fn completed_pre_promotion(&self, runs: &Runs) -> bool {
        self.strategy.pre_promotion_analysis.is_none()
            || runs
                .pre
                .as_ref()
                .is_some_and(|run| run.phase == AnalysisPhase::Successful)
    }

    /// Argo's `CompletedBlueGreenPause`.
    fn completed_pause(&self, context: &Context<'_>) -> bool {
        let previous = context.previous;
        if !context.pause.add.is_empty() {
            return false;
        }
        if previous.blue_green.scale_up_preview_check_point || !self.needs_controller_pause() {
            return true;
        }
        let condition = previous
            .pause_conditions
            .iter()
            .find(|condition| condition.reason == PauseReason::BlueGreenPause);
        if self.strategy.auto_promotion_enabled() {
            let seconds = self.strategy.auto_promotion_seconds.unwrap_or(0);
            if seconds == 0 {
                return true;
            }
            return condition.is_some_and(|condition| {
                context.now > add_seconds(condition.start_time.0, i64::from(seconds))
            });
        }
        previous.controller_pause && condition.is_none()
    }

    fn halted(&self, context: &Context<'_>) -> bool {
        context.rollout.spec.paused
            || context
                .previous
                .pause_conditions
                .iter()
                .any(|condition| condition.reason == PauseReason::InconclusiveAnalysisRun)
    }

    fn active_index(&self, context: &Context<'_>) -> Option<usize> {
        let hash = context.selector(self.active_service())?;
        context.replica_sets.iter().position(|rs| rs.hash == hash)
    }

    fn services(&self) -> [&str; 2] {
        [
            self.active_service(),
            self.preview_service().unwrap_or_default(),
        ]
    }

    /// `abortScaleDownDelaySeconds` (default 30; `None` when 0, i.e. never scale down).
    fn abort_scale_down_delay(&self) -> Option<i32> {
        match self.strategy.abort_scale_down_delay_seconds() {
            0 => None,
            seconds => Some(seconds),
        }
    }

    fn skip_pre_promotion(&self, context: &Context<'_>) -> bool {
        let previous = context.previous;
        let Some(new_rs) = context.new_rs() else {
            return true;
        };
        let active = previous.blue_green.active_selector.as_deref();
        if previous.stable_rs.as_deref() == Some(new_rs.hash.as_str())
            || active.is_none_or(|active| active == new_rs.hash)
        {
            return true;
        }
        match self.strategy.preview_replica_count {
            Some(count) => new_rs.spec != count || new_rs.available != count,
            None => !self.saturated(context),
        }
    }

    fn skip_post_promotion(&self, context: &Context<'_>) -> bool {
        let previous = context.previous;
        let Some(new_rs) = context.new_rs() else {
            return true;
        };
        previous.stable_rs.as_deref() == Some(new_rs.hash.as_str())
            || previous.blue_green.active_selector.as_deref() != Some(new_rs.hash.as_str())
            || !self.saturated(context)
    }
}

fn skip_all_runs(context: &Context<'_>) -> bool {
    context.aborted()
        || context.previous.promote_full
        || context.new_rs().is_some_and(|rs| rs.deadline.is_some())
        || context.previous.stable_rs.is_none()
}

fn decide_outcomes(context: &mut Context<'_>, blue_green: &BlueGreen<'_>, runs: &Runs) {
    if skip_all_runs(context) {
        return;
    }
    let inconclusive_paused = context
        .previous
        .pause_conditions
        .iter()
        .any(|condition| condition.reason == PauseReason::InconclusiveAnalysisRun);
    if inconclusive_paused {
        return;
    }
    if blue_green.strategy.pre_promotion_analysis.is_some()
        && !blue_green.skip_pre_promotion(context)
        && let Some(run) = &runs.pre
    {
        runs::apply_outcome(context, run, PauseReason::InconclusiveAnalysisRun);
    }
    if blue_green.strategy.post_promotion_analysis.is_some()
        && !blue_green.skip_post_promotion(context)
        && let Some(run) = &runs.post
    {
        runs::apply_outcome(context, run, PauseReason::InconclusiveAnalysisRun);
    }
}

fn reconcile_runs(
    context: &mut Context<'_>,
    blue_green: &BlueGreen<'_>,
    runs: &mut Runs,
    actions: &mut Vec<Action>,
) {
    if skip_all_runs(context) {
        for run in [&runs.pre, &runs.post].into_iter().flatten() {
            runs::terminate_run(context, actions, &run.name);
        }
        runs::terminate_other_runs(context, actions, &[]);
        return;
    }
    let inconclusive_paused = context
        .previous
        .pause_conditions
        .iter()
        .any(|condition| condition.reason == PauseReason::InconclusiveAnalysisRun);
    match &blue_green.strategy.pre_promotion_analysis {
        None => {
            if let Some(run) = runs.pre.take() {
                runs::terminate_run(context, actions, &run.name);
            }
        }
        Some(analysis) => {
            if blue_green.skip_pre_promotion(context) {
                if let Some(run) = &runs.pre {
                    runs::terminate_run(context, actions, &run.name);
                }
            } else if !inconclusive_paused && runs::needs_new_run(context, runs.pre.as_ref()) {
                runs.pre = Some(runs::create_run(
                    context,
                    actions,
                    analysis,
                    RunKind::PrePromotion,
                ));
            }
        }
    }
    match &blue_green.strategy.post_promotion_analysis {
        None => {
            if let Some(run) = runs.post.take() {
                runs::terminate_run(context, actions, &run.name);
            }
        }
        Some(analysis) => {
            if blue_green.skip_post_promotion(context) {
                if let Some(run) = &runs.post {
                    runs::terminate_run(context, actions, &run.name);
                }
            } else if !inconclusive_paused && runs::needs_new_run(context, runs.post.as_ref()) {
                runs.post = Some(runs::create_run(
                    context,
                    actions,
                    analysis,
                    RunKind::PostPromotion,
                ));
            }
        }
    }
    let keep: Vec<&str> = [runs.pre.as_ref(), runs.post.as_ref()]
        .into_iter()
        .flatten()
        .map(|run| run.name.as_str())
        .collect();
    runs::terminate_other_runs(context, actions, &keep);
}

/// Argo's `reconcileBlueGreenReplicaSets`: active at full size, preview at its size (or scaled
/// down after an abort delay), older stacks scaled down after their delay.
fn reconcile_replica_sets(context: &mut Context<'_>, blue_green: &BlueGreen<'_>, runs: &Runs) {
    let delay_on_abort = context.aborted()
        && context.stable_rs().is_some()
        && blue_green.abort_scale_down_delay().is_some();
    if let Some(new_index) = context.new_index
        && !delay_on_abort
    {
        context.remove_deadline(new_index);
    }
    if let Some(stable_index) = context.stable_index {
        context.remove_deadline(stable_index);
    }
    let replicas = context.replicas;
    if let Some(active_index) = blue_green.active_index(context) {
        context.scale(active_index, replicas, false);
    }
    if context.aborted()
        && let Some(stable_index) = context.stable_index
    {
        context.scale(stable_index, replicas, false);
    }
    if let Some(new_index) = context.new_index {
        let mut desired = blue_green.new_rs_replicas(context);
        let mut hold = false;
        if delay_on_abort {
            match context.replica_sets[new_index].deadline {
                Some(deadline) if deadline > context.now => {
                    let remaining = until(context.now, deadline);
                    context.requeue_after(remaining);
                    hold = true;
                }
                Some(_) => desired = 0,
                None => {
                    let stable_full = context
                        .stable_rs()
                        .is_some_and(|rs| rs.available == context.replicas);
                    if let (Some(seconds), true) =
                        (blue_green.abort_scale_down_delay(), stable_full)
                    {
                        let deadline = add_seconds(context.now, i64::from(seconds));
                        context.set_deadline(new_index, deadline);
                        context.requeue_after(Duration::from_secs(seconds.unsigned_abs().into()));
                    }
                    hold = true;
                }
            }
        }
        if !hold && Some(new_index) != blue_green.active_index(context) {
            context.scale(new_index, desired, delay_on_abort);
        }
    }
    scale_down_old_replica_sets(context, blue_green, runs);
    delete_old_replica_sets(context);
}

/// Argo's `scaleDownOldReplicaSetsForBlueGreen`.
fn scale_down_old_replica_sets(context: &mut Context<'_>, blue_green: &BlueGreen<'_>, runs: &Runs) {
    let inconclusive = context
        .previous
        .pause_conditions
        .iter()
        .any(|condition| condition.reason == PauseReason::InconclusiveAnalysisRun);
    if inconclusive {
        return;
    }
    if blue_green.strategy.post_promotion_analysis.is_some()
        && blue_green.strategy.scale_down_delay_seconds.is_none()
        && !blue_green.skip_post_promotion(context)
        && runs
            .post
            .as_ref()
            .is_none_or(|run| run.phase != AnalysisPhase::Successful)
    {
        return;
    }
    let mut others: Vec<usize> = context
        .other_indices()
        .into_iter()
        .filter(|index| context.replica_sets[*index].spec > 0)
        .collect();
    others.sort_by(|a, b| {
        context.replica_sets[*b]
            .revision
            .cmp(&context.replica_sets[*a].revision)
    });
    let services = blue_green.services();
    let limit = blue_green
        .strategy
        .scale_down_delay_revision_limit
        .unwrap_or(i32::MAX);
    let delay = blue_green.strategy.scale_down_delay_seconds();
    let replicas = context.replicas;
    let mut annotated = 0;
    for index in others {
        if context.is_referenced(index, &services) {
            continue;
        }
        let desired = context.scale_down_delay(index, &mut annotated, delay, limit, replicas);
        context.scale(index, desired, false);
    }
}

/// Argo's `reconcileBlueGreenPause`.
fn reconcile_pause(context: &mut Context<'_>, blue_green: &BlueGreen<'_>, runs: &Runs) {
    if context.previous.abort || !blue_green.ready_for_pause(context) || blue_green.halted(context)
    {
        return;
    }
    let new_hash = context.new_rs().map(|rs| rs.hash.clone());
    if blue_green.fast_tracked(context)
        || context.selector(blue_green.active_service()) == new_hash.as_deref()
        || context.previous.blue_green.scale_up_preview_check_point
        || !blue_green.needs_controller_pause()
    {
        context.pause.remove.push(PauseReason::BlueGreenPause);
        return;
    }
    if !blue_green.completed_pre_promotion(runs) {
        return;
    }
    let condition = context
        .previous
        .pause_conditions
        .iter()
        .find(|condition| condition.reason == PauseReason::BlueGreenPause)
        .cloned();
    match condition {
        Some(condition) => {
            if blue_green.completed_pause(context) {
                context.pause.remove.push(PauseReason::BlueGreenPause);
            } else if let Some(seconds) = blue_green
                .strategy
                .auto_promotion_seconds
                .filter(|seconds| *seconds > 0)
            {
                let end = add_seconds(condition.start_time.0, i64::from(seconds));
                context.requeue_after(until(context.now, end));
            }
        }
        None => {
            if !context.previous.controller_pause {
                context.pause.add.push(PauseReason::BlueGreenPause);
            }
        }
    }
}

/// Argo's `reconcileActiveService`: switch to the preview once it is saturated, promoted (pause
/// and pre-promotion analysis done) or fast-tracked; back to stable on abort.
fn reconcile_active_service(context: &mut Context<'_>, blue_green: &BlueGreen<'_>, runs: &Runs) {
    if blue_green.halted(context)
        || !blue_green.ready_for_pause(context)
        || !blue_green.saturated(context)
    {
        return;
    }
    let Some(new_hash) = context.new_rs().map(|rs| rs.hash.clone()) else {
        return;
    };
    let mut target = context
        .selector(blue_green.active_service())
        .map(str::to_string);
    if blue_green.fast_tracked(context)
        || (blue_green.completed_pause(context) && blue_green.completed_pre_promotion(runs))
    {
        target = Some(new_hash);
    }
    if context.aborted() {
        // Back to stable, but never onto a stack without an available pod.
        let stable_available = context.stable_rs().is_some_and(|rs| rs.available > 0);
        if !stable_available {
            return;
        }
        target = context.previous.stable_rs.clone();
    }
    if let Some(target) = target {
        let service = blue_green.active_service().to_string();
        context.switch_service(&service, &target);
    }
}

fn should_full_promote(
    context: &Context<'_>,
    blue_green: &BlueGreen<'_>,
    status: &RolloutStatus,
    runs: &Runs,
) -> bool {
    if context.stable_rs().is_none() || status.blue_green.active_selector.is_none() {
        return true;
    }
    if status.blue_green.active_selector != status.current_pod_hash {
        return false;
    }
    if context.previous.promote_full || rollback_within_window(context) {
        return true;
    }
    if context.aborted() {
        return false;
    }
    if blue_green.strategy.post_promotion_analysis.is_some() {
        if context.new_rs().is_some_and(|rs| rs.deadline.is_some()) {
            return true;
        }
        return runs
            .post
            .as_ref()
            .is_some_and(|run| run.phase == AnalysisPhase::Successful);
    }
    true
}

fn sync_status(
    mut context: Context<'_>,
    blue_green: &BlueGreen<'_>,
    runs: Runs,
    pod_changed: bool,
) -> Planned {
    let previous = context.previous;
    let mut status = RolloutStatus {
        current_pod_hash: Some(context.desired_hash()),
        stable_rs: previous.stable_rs.clone(),
        restarted_at: previous.restarted_at.clone(),
        conditions: previous.conditions.clone(),
        blue_green: BlueGreenStatus {
            pre_promotion_analysis_run_status: runs.pre.as_ref().map(CurrentRun::to_status),
            post_promotion_analysis_run_status: runs.post.as_ref().map(CurrentRun::to_status),
            ..BlueGreenStatus::default()
        },
        ..RolloutStatus::default()
    };
    context.base_counters(&mut status);
    status.promote_full = previous.promote_full && previous.stable_rs != status.current_pod_hash;
    if pod_changed {
        context.pause.clear = true;
        context.pause.remove_abort = true;
        status.promote_full = false;
        status.blue_green.pre_promotion_analysis_run_status = None;
        status.blue_green.post_promotion_analysis_run_status = None;
    }
    if previous.promote_full || rollback_within_window(&context) {
        context.pause.clear = true;
        context.pause.remove_abort = true;
    }
    status.blue_green.preview_selector = blue_green
        .preview_service()
        .and_then(|service| context.selector(service))
        .map(str::to_string);
    status.blue_green.active_selector = context
        .selector(blue_green.active_service())
        .map(str::to_string);

    if should_full_promote(&context, blue_green, &status, &runs) {
        context.pause.clear = true;
        context.pause.remove_abort = true;
        status.promote_full = false;
        status.blue_green.scale_up_preview_check_point = false;
        status.stable_rs = status.current_pod_hash.clone();
    } else if !pod_changed {
        status.blue_green.scale_up_preview_check_point =
            scale_up_preview_check_point(&context, blue_green, &runs);
    }

    let active = blue_green
        .active_index(&context)
        .map(|index| context.replica_sets[index].clone());
    match &active {
        Some(active) => {
            status.hpa_replicas = active.replicas;
            status.available_replicas = active.available;
            status.ready_replicas = active.ready;
        }
        None => status.hpa_replicas = status.replicas,
    }
    status.selector = format_selector(context.rollout);
    let available = active.is_some_and(|active| {
        active.spec == context.replicas && active.available == context.replicas
    });
    finish_plan(context, status, false, available)
}

/// Argo's `calculateScaleUpPreviewCheckPoint`: a one-way switch, on once the preview stack is
/// available and the pause and pre-promotion analysis are done.
fn scale_up_preview_check_point(
    context: &Context<'_>,
    blue_green: &BlueGreen<'_>,
    runs: &Runs,
) -> bool {
    let Some(preview_count) = blue_green.strategy.preview_replica_count else {
        return false;
    };
    if context.previous.blue_green.scale_up_preview_check_point {
        return true;
    }
    if !blue_green.completed_pre_promotion(runs) || !blue_green.completed_pause(context) {
        return false;
    }
    context
        .new_rs()
        .is_some_and(|rs| rs.available == preview_count)
}
