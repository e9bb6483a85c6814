//! Whole canary rollouts walked through the planner and the simulator: every plan's actions are
//! executed, pods become ready, time moves, and user actions are applied as the CLI patches them.

mod common;

use common::*;
use sluice_api::analysis::AnalysisPhase;
use sluice_api::rollout::{PauseReason, RolloutPhase, condition_types};
use sluice_core::{Action, RouterCall};

/// Deploys the initial revision and waits until it is Healthy.
fn deployed(strategy: sluice_api::rollout::RolloutStrategy, replicas: i32) -> Sim {
    let mut sim = Sim::new(rollout(replicas, strategy));
    sim.run_until(20, Sim::healthy);
    sim
}

#[test]
fn initial_deploy_becomes_healthy_without_steps() {
    let sim = deployed(basic_canary(vec![weight(20), pause_forever()]), 4);
    let status = sim.status();
    assert_eq!(
        status.stable_rs, status.current_pod_hash,
        "the first revision is stable"
    );
    assert_eq!(
        status.current_step_index,
        Some(2),
        "steps are skipped on the initial deploy"
    );
    assert_eq!(status.available_replicas, 4);
    assert_eq!(
        sim.condition(condition_types::HEALTHY)
            .map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(
        sim.condition(condition_types::COMPLETED)
            .map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(
        sim.condition(condition_types::AVAILABLE)
            .map(|c| c.status.as_str()),
        Some("True")
    );
}

#[test]
fn three_step_basic_canary_reaches_healthy() {
    let mut sim = deployed(
        basic_canary(vec![weight(25), pause_seconds(10), weight(75)]),
        4,
    );
    let stable = sim.status().stable_rs.clone().expect("stable");
    sim.set_image("demo:green");
    sim.run_until(10, |sim| sim.status().current_step_index == Some(1));
    let new_hash = sim.status().current_pod_hash.clone().expect("hash");
    assert_ne!(new_hash, stable);
    assert_eq!(
        sim.replica_set_by_hash(&new_hash).spec_replicas,
        1,
        "25% of 4 replicas"
    );
    assert_eq!(sim.replica_set_by_hash(&stable).spec_replicas, 3);
    sim.run_until(5, |sim| {
        sim.status()
            .pause_conditions
            .iter()
            .any(|c| c.reason == PauseReason::CanaryPauseStep)
    });
    assert_eq!(sim.phase(), Some(RolloutPhase::Paused));
    assert_eq!(sim.status().message.as_deref(), Some("CanaryPauseStep"));
    let plan = sim.reconcile();
    assert!(
        plan.requeue_after.is_some(),
        "a timed pause asks to be woken up"
    );
    sim.advance(11);
    sim.run_until(20, Sim::healthy);
    let status = sim.status();
    assert_eq!(status.stable_rs.as_deref(), Some(new_hash.as_str()));
    assert_eq!(status.current_step_index, Some(3));
    assert_eq!(sim.replica_set_by_hash(&new_hash).spec_replicas, 4);
    assert_eq!(
        sim.replica_set_by_hash(&stable).spec_replicas,
        0,
        "old pods are gone"
    );
    let no_op = sim.reconcile();
    assert!(
        no_op.has_no_actions(),
        "a healthy rollout plans nothing: {:?}",
        no_op.actions
    );
    assert_eq!(&no_op.status, sim.status());
}

#[test]
fn indefinite_pause_waits_for_promote() {
    let mut sim = deployed(
        basic_canary(vec![weight(50), pause_forever(), weight(100)]),
        2,
    );
    sim.set_image("demo:green");
    sim.run_until(10, |sim| sim.phase() == Some(RolloutPhase::Paused));
    assert!(sim.status().controller_pause);
    sim.run(5);
    assert_eq!(
        sim.status().current_step_index,
        Some(1),
        "still paused after more reconciles"
    );
    sim.promote();
    sim.run_until(20, Sim::healthy);
    assert_eq!(sim.status().stable_rs, sim.status().current_pod_hash);
}

#[test]
fn manual_pause_holds_the_rollout() {
    let mut sim = deployed(basic_canary(vec![weight(50), weight(100)]), 2);
    sim.edit_spec(|spec| spec.paused = true);
    sim.set_image("demo:green");
    sim.run(3);
    assert_eq!(sim.phase(), Some(RolloutPhase::Paused));
    assert_eq!(sim.status().message.as_deref(), Some("manually paused"));
    sim.edit_spec(|spec| spec.paused = false);
    sim.run_until(20, Sim::healthy);
}

fn routed_with_analysis() -> Sim {
    let mut sim = deployed(
        routed_canary(vec![weight(20), analysis_step("success-rate"), weight(60)]),
        5,
    );
    sim.set_image("demo:green");
    sim.run_until(20, |sim| !sim.observed.analysis_runs.is_empty());
    sim
}

#[test]
fn routed_canary_creates_step_analysis_named_like_argo() {
    let sim = routed_with_analysis();
    let status = sim.status();
    let hash = status.current_pod_hash.clone().expect("hash");
    assert_eq!(
        sim.observed.analysis_runs[0].name,
        format!("demo-{hash}-2-1")
    );
    assert_eq!(sim.router_weight, 20, "the router carries the setWeight");
    assert_eq!(sim.selector("demo-canary"), Some(hash.as_str()));
    let weights = status.canary.weights.as_ref().expect("weights");
    assert_eq!((weights.canary.weight, weights.stable.weight), (20, 80));
    assert_eq!(weights.verified, Some(true));
    assert_eq!(
        sim.replica_set_by_hash(&hash).spec_replicas,
        1,
        "ceil(5 × 20 / 100)"
    );
    let stable = status.stable_rs.clone().expect("stable");
    assert_eq!(
        sim.replica_set_by_hash(&stable).spec_replicas,
        5,
        "stable stays full"
    );
}

#[test]
fn failed_analysis_aborts_with_weight_zero_in_the_same_plan() {
    let mut sim = routed_with_analysis();
    let run = sim.observed.analysis_runs[0].name.clone();
    let stable = sim.status().stable_rs.clone().expect("stable");
    sim.set_run_phase(
        &run,
        AnalysisPhase::Failed,
        Some("Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)"),
    );
    let plan = sim.reconcile();
    assert_eq!(
        plan.actions.first(),
        Some(&Action::Router(RouterCall::SetWeight {
            weight: 0,
            additional: Vec::new()
        })),
        "traffic leaves the canary first: {:?}",
        plan.actions
    );
    assert_eq!(
        plan.actions.get(1),
        Some(&Action::SetServiceSelector {
            service: "demo-canary".into(),
            pod_template_hash: stable.clone()
        }),
        "then the canary Service points back at stable"
    );
    assert_eq!(
        sim.selector("demo-canary"),
        Some(stable.as_str()),
        "and stays there for the rest of the plan: {:?}",
        plan.actions
    );
    assert!(plan.weights_set().all(|weight| weight == 0));
    let first_scale = plan
        .actions
        .iter()
        .position(|action| matches!(action, Action::ScaleReplicaSet { .. }));
    assert!(
        first_scale.is_none_or(|index| index > 1),
        "nothing is scaled before traffic moved"
    );
    let status = &plan.status;
    assert!(status.abort);
    assert_eq!(status.phase, Some(RolloutPhase::Degraded));
    let progressing = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition_types::PROGRESSING)
        .expect("progressing");
    assert_eq!(progressing.reason, "RolloutAborted");
    assert_eq!(
        progressing.message,
        "Rollout aborted update to revision 2: Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)"
    );
    assert_eq!(
        status.message.as_deref(),
        Some(format!("RolloutAborted: {}", progressing.message).as_str())
    );
    assert_eq!(status.current_step_index, Some(0));
    let canary = status.canary.weights.as_ref().expect("weights");
    assert_eq!(canary.canary.weight, 0);

    // The canary is scaled down only after abortScaleDownDelaySeconds (default 30s).
    sim.run(3);
    let new_hash = sim.status().current_pod_hash.clone().expect("hash");
    assert_eq!(
        sim.replica_set_by_hash(&new_hash).spec_replicas,
        1,
        "kept during the abort delay"
    );
    assert!(
        sim.replica_set_by_hash(&new_hash)
            .scale_down_deadline
            .is_some()
    );
    sim.advance(31);
    sim.run(2);
    assert_eq!(
        sim.replica_set_by_hash(&new_hash).spec_replicas,
        0,
        "scaled down after the delay"
    );
    assert_eq!(sim.router_weight, 0);
    assert_eq!(
        sim.selector("demo-canary"),
        Some(stable.as_str()),
        "the canary Service keeps selecting stable while aborted"
    );
    assert_eq!(sim.phase(), Some(RolloutPhase::Degraded));
}

#[test]
fn inconclusive_analysis_pauses_and_promote_skips_the_step() {
    let mut sim = routed_with_analysis();
    let run = sim.observed.analysis_runs[0].name.clone();
    sim.set_run_phase(&run, AnalysisPhase::Inconclusive, None);
    let plan = sim.reconcile();
    assert_eq!(plan.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(
        plan.status.message.as_deref(),
        Some("InconclusiveAnalysisRun")
    );
    assert!(plan.status.controller_pause);
    assert!(
        plan.weights_set().next().is_none(),
        "traffic stays where it is"
    );
    sim.run(3);
    assert_eq!(sim.phase(), Some(RolloutPhase::Paused));
    sim.promote();
    sim.run_until(30, Sim::healthy);
    assert_eq!(
        sim.observed.analysis_runs.len(),
        1,
        "promote skipped the analysis step"
    );
}

#[test]
fn retry_after_abort_restarts_the_steps() {
    let mut sim = routed_with_analysis();
    let run = sim.observed.analysis_runs[0].name.clone();
    sim.set_run_phase(&run, AnalysisPhase::Error, Some("provider unreachable"));
    sim.run(3);
    assert!(sim.status().abort);
    sim.retry();
    let plan = sim.reconcile();
    assert!(!plan.status.abort);
    assert!(plan.status.aborted_at.is_none());
    assert_eq!(
        plan.status.current_step_index,
        Some(0),
        "steps restart from 0"
    );
    let retry = plan
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition_types::PROGRESSING)
        .expect("progressing");
    assert_ne!(retry.reason, "RolloutAborted");
    sim.make_pods_ready();
    sim.run_until(20, |sim| sim.observed.analysis_runs.len() == 2);
    let canary_hash = sim.status().current_pod_hash.clone();
    assert_eq!(
        sim.selector("demo-canary"),
        canary_hash.as_deref(),
        "after the retry the canary Service selects the canary again"
    );
    let second = sim.observed.analysis_runs[1].name.clone();
    assert_eq!(second, format!("{run}.1"), "the name clash gets a suffix");
    sim.set_run_phase(&second, AnalysisPhase::Successful, None);
    sim.run_until(30, Sim::healthy);
    sim.run(2);
    assert_eq!(
        sim.router_weight, 0,
        "fully promoted: traffic through the stable Service"
    );
    let hash = sim.status().current_pod_hash.clone().expect("hash");
    assert_eq!(sim.selector("demo-stable"), Some(hash.as_str()));
}

#[test]
fn promote_full_skips_remaining_steps_and_analysis() {
    let mut sim = routed_with_analysis();
    sim.promote_full();
    let plan = sim.reconcile();
    assert!(
        plan.actions
            .iter()
            .any(|action| matches!(action, Action::TerminateAnalysisRun { .. })),
        "the running analysis is terminated"
    );
    sim.make_pods_ready();
    sim.run_until(30, Sim::healthy);
    assert!(!sim.status().promote_full, "cleared once promoted");
    assert_eq!(sim.status().current_step_index, Some(3));
}

#[test]
fn editing_steps_mid_rollout_restarts_them() {
    let mut sim = deployed(
        basic_canary(vec![weight(50), pause_forever(), weight(100)]),
        2,
    );
    sim.set_image("demo:green");
    sim.run_until(10, |sim| sim.phase() == Some(RolloutPhase::Paused));
    let old_step_hash = sim.status().current_step_hash.clone();
    sim.edit_spec(|spec| {
        let canary = spec.strategy.canary.as_mut().expect("canary");
        canary.steps = vec![weight(40), pause_forever()];
    });
    let plan = sim.reconcile();
    assert_ne!(plan.status.current_step_hash, old_step_hash);
    assert_eq!(plan.status.current_step_index, Some(0));
    assert!(
        plan.status.pause_conditions.is_empty(),
        "the pause was for the old steps"
    );
    sim.make_pods_ready();
    sim.run_until(10, |sim| sim.phase() == Some(RolloutPhase::Paused));
    assert_eq!(sim.status().current_step_index, Some(1));
}

#[test]
fn undo_to_the_stable_revision_skips_the_steps() {
    let mut sim = deployed(
        basic_canary(vec![weight(50), pause_forever(), weight(100)]),
        2,
    );
    let stable = sim.status().stable_rs.clone().expect("stable");
    sim.set_image("demo:green");
    sim.run_until(10, |sim| sim.phase() == Some(RolloutPhase::Paused));
    sim.set_image("demo:blue");
    let plan = sim.reconcile();
    assert_eq!(
        plan.status.current_pod_hash.as_deref(),
        Some(stable.as_str())
    );
    assert_eq!(
        plan.status.current_step_index,
        Some(3),
        "moving back to stable skips the steps"
    );
    assert!(
        plan.actions
            .iter()
            .any(|action| matches!(action, Action::SetReplicaSetRevision { revision: 3, .. })),
        "the old revision becomes the newest: {:?}",
        plan.actions
    );
    sim.make_pods_ready();
    sim.run_until(20, Sim::healthy);
    assert_eq!(sim.status().stable_rs.as_deref(), Some(stable.as_str()));
}

#[test]
fn invalid_spec_degrades_without_actions() {
    let mut sim = Sim::new(rollout(3, basic_canary(vec![weight(10)])));
    sim.observed.validation_errors =
        vec!["spec.strategy.canary.steps[0].setWeight: must be 0-100".into()];
    let plan = sim.reconcile();
    assert!(plan.has_no_actions());
    assert_eq!(plan.status.phase, Some(RolloutPhase::Degraded));
    assert_eq!(
        plan.status.message.as_deref(),
        Some("InvalidSpec: spec.strategy.canary.steps[0].setWeight: must be 0-100")
    );
    sim.observed.validation_errors.clear();
    sim.run_until(20, Sim::healthy);
    assert!(sim.condition(condition_types::INVALID_SPEC).is_none());
}

#[test]
fn progress_deadline_abort_moves_traffic_back_in_the_same_plan() {
    let mut sim = deployed(routed_canary(vec![weight(40), pause_forever()]), 5);
    sim.edit_spec(|spec| {
        spec.progress_deadline_seconds = Some(60);
        spec.progress_deadline_abort = true;
    });
    sim.set_image("demo:broken");
    // The canary's pods never become ready: reconcile without making them ready.
    for _ in 0..3 {
        sim.reconcile();
        sim.advance(1);
    }
    sim.advance(120);
    let plan = sim.reconcile();
    assert!(plan.status.abort, "the deadline aborted the update");
    assert!(plan.weights_set().all(|weight| weight == 0));
    assert_eq!(plan.status.phase, Some(RolloutPhase::Degraded));
}
