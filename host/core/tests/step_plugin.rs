//! The canary `plugin` step: Run until the plugin stops Running (after each backoff), abort on
//! Failed, retry on call errors, Abort on rollout abort (newest first), Terminate on full
//! promotion, statuses cleared on retry and on a new revision.

mod common;

use std::time::Duration;

use common::*;
use sluice_api::rollout::{
    CanaryStep, RolloutPhase, StepPluginOperation, StepPluginPhase, StepPluginStatus,
};
use sluice_core::Action;
use sluice_core::step_plugin::{StepPluginAnswer, StepPluginOutcome};

fn plugin_step(name: &str) -> CanaryStep {
    serde_json::from_value(serde_json::json!({
        "plugin": {"name": name, "config": {"gate": name}}
    }))
    .expect("a plugin step")
}

fn answer(phase: StepPluginPhase, message: &str, requeue_secs: u64) -> StepPluginOutcome {
    StepPluginOutcome::Answered(StepPluginAnswer {
        phase,
        message: message.into(),
        requeue_after: Duration::from_secs(requeue_secs),
        status: Some(serde_json::json!({"seen": message})),
    })
}

/// A Healthy Rollout with `steps`, updated to a new image.
fn updating(steps: Vec<CanaryStep>) -> Sim {
    let mut sim = Sim::new(rollout(4, routed_canary(steps)));
    sim.run_until(20, Sim::healthy);
    sim.set_image("demo:green");
    sim
}

fn script(sim: &mut Sim, name: &str, operation: StepPluginOperation, outcome: StepPluginOutcome) {
    sim.step_plugin_outcomes
        .insert((name.into(), operation), outcome);
}

fn calls(sim: &Sim) -> Vec<(StepPluginOperation, String)> {
    sim.step_plugin_calls
        .iter()
        .map(|call| (call.operation, call.name.clone()))
        .collect()
}

fn status_of(sim: &Sim, index: i32, operation: StepPluginOperation) -> StepPluginStatus {
    sim.status()
        .canary
        .step_plugin_statuses
        .iter()
        .find(|status| status.index == index && status.operation == operation)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no {operation:?} status for step {index}: {:#?}",
                sim.status()
            )
        })
}

#[test]
fn a_successful_plugin_completes_its_step() {
    let mut sim = updating(vec![weight(20), plugin_step("gate"), weight(60)]);
    script(
        &mut sim,
        "gate",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Successful, "approved", 0),
    );
    sim.run_until(40, Sim::healthy);
    assert_eq!(calls(&sim), [(StepPluginOperation::Run, "gate".into())]);
    let run = &sim.step_plugin_calls[0];
    assert_eq!(run.step_index, 1);
    assert_eq!(run.config, Some(serde_json::json!({"gate": "gate"})));
    assert_eq!(run.run_status, None);
    let status = status_of(&sim, 1, StepPluginOperation::Run);
    assert_eq!(status.phase, Some(StepPluginPhase::Successful));
    assert_eq!(status.message.as_deref(), Some("approved"));
    assert_eq!(status.executions, 1);
    assert!(status.finished_at.is_some());
    assert_eq!(status.status, Some(serde_json::json!({"seen": "approved"})));
}

#[test]
fn a_running_plugin_is_called_again_after_its_requeue_and_gets_its_state_back() {
    let mut sim = updating(vec![plugin_step("gate"), weight(50)]);
    script(
        &mut sim,
        "gate",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Running, "waiting", 15),
    );
    sim.run_until(10, |sim| !sim.step_plugin_calls.is_empty());
    sim.reconcile();
    let first = status_of(&sim, 0, StepPluginOperation::Run);
    assert_eq!(first.phase, Some(StepPluginPhase::Running));
    assert_eq!(first.backoff.as_ref().map(|b| b.0.as_str()), Some("15s"));

    // Nothing for 14 more seconds; the plan asks to be woken when the backoff ends.
    for _ in 0..14 {
        let plan = sim.reconcile();
        assert!(
            plan.requeue_after
                .is_some_and(|after| after <= Duration::from_secs(15))
        );
        sim.advance(1);
    }
    assert_eq!(sim.step_plugin_calls.len(), 1);
    sim.advance(1);
    script(
        &mut sim,
        "gate",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Successful, "done", 0),
    );
    sim.run_until(20, Sim::healthy);
    assert_eq!(sim.step_plugin_calls.len(), 2);
    assert_eq!(
        sim.step_plugin_calls[1]
            .plugin_state()
            .expect("state handed back"),
        &serde_json::json!({"seen": "waiting"})
    );
    assert_eq!(status_of(&sim, 0, StepPluginOperation::Run).executions, 2);
}

#[test]
fn a_requeue_below_ten_seconds_becomes_thirty() {
    let mut sim = updating(vec![plugin_step("gate")]);
    script(
        &mut sim,
        "gate",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Running, "waiting", 2),
    );
    sim.run_until(10, |sim| !sim.step_plugin_calls.is_empty());
    sim.reconcile();
    let status = status_of(&sim, 0, StepPluginOperation::Run);
    assert_eq!(status.backoff.as_ref().map(|b| b.0.as_str()), Some("30s"));
}

#[test]
fn a_failing_call_is_retried_after_thirty_seconds_without_aborting() {
    let mut sim = updating(vec![plugin_step("gate")]);
    script(
        &mut sim,
        "gate",
        StepPluginOperation::Run,
        StepPluginOutcome::CallFailed("plugin gate trapped".into()),
    );
    sim.run_until(10, |sim| !sim.step_plugin_calls.is_empty());
    sim.reconcile();
    let status = status_of(&sim, 0, StepPluginOperation::Run);
    assert_eq!(status.phase, Some(StepPluginPhase::Error));
    assert_eq!(status.message.as_deref(), Some("plugin gate trapped"));
    assert_eq!(status.backoff.as_ref().map(|b| b.0.as_str()), Some("30s"));
    assert!(!sim.status().abort);

    sim.run(29);
    assert_eq!(sim.step_plugin_calls.len(), 1);
    script(
        &mut sim,
        "gate",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Successful, "ok", 0),
    );
    sim.run_until(10, Sim::healthy);
    assert_eq!(sim.step_plugin_calls.len(), 2);
}

#[test]
fn a_failed_plugin_aborts_and_earlier_steps_are_aborted_newest_first() {
    let mut sim = updating(vec![
        plugin_step("first"),
        plugin_step("second"),
        weight(40),
        plugin_step("verdict"),
    ]);
    for name in ["first", "second"] {
        script(
            &mut sim,
            name,
            StepPluginOperation::Run,
            answer(StepPluginPhase::Successful, "ok", 0),
        );
        script(
            &mut sim,
            name,
            StepPluginOperation::Abort,
            answer(StepPluginPhase::Successful, "undone", 0),
        );
    }
    script(
        &mut sim,
        "verdict",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Failed, "error budget exhausted", 0),
    );
    sim.run_until(40, |sim| sim.phase() == Some(RolloutPhase::Degraded));
    sim.run(3);

    let status = sim.status();
    assert!(status.abort);
    assert_eq!(
        status.message.as_deref(),
        Some(
            "RolloutAborted: Rollout aborted update to revision 2: Step Plugin 4 (verdict) failed: error budget exhausted"
        ),
    );
    assert_eq!(sim.router_weight, 0);
    assert_eq!(
        calls(&sim),
        [
            (StepPluginOperation::Run, "first".into()),
            (StepPluginOperation::Run, "second".into()),
            (StepPluginOperation::Run, "verdict".into()),
            (StepPluginOperation::Abort, "second".into()),
            (StepPluginOperation::Abort, "first".into()),
        ]
    );
    assert_eq!(
        status_of(&sim, 1, StepPluginOperation::Abort).phase,
        Some(StepPluginPhase::Successful)
    );
    // The abort's traffic change comes before the plugin calls in the same plan.
    let abort_plan = sim
        .plans
        .iter()
        .find(|plan| {
            plan.actions
                .iter()
                .any(|action| matches!(action, Action::StepPlugin(call) if call.operation == StepPluginOperation::Abort))
        })
        .expect("a plan with Abort calls");
    let position = |wanted: fn(&Action) -> bool| {
        abort_plan
            .actions
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("{abort_plan:#?}"))
    };
    let weight_to_zero = position(|action| {
        matches!(
            action,
            Action::Router(sluice_core::RouterCall::SetWeight { weight: 0, .. })
        )
    });
    let first_plugin_call = position(|action| matches!(action, Action::StepPlugin(_)));
    assert!(weight_to_zero < first_plugin_call, "{abort_plan:#?}");

    // Transitions are Events: the failure and each Abort; successful Runs complete their step.
    let transitions: Vec<String> = sim
        .events_with_reason("StepPluginTransition")
        .iter()
        .map(|event| event.message.clone())
        .collect();
    assert_eq!(
        transitions,
        [
            "Step plugin verdict (step 4) Run: Failed: error budget exhausted",
            "Step plugin second (step 2) Abort: Successful: undone",
            "Step plugin first (step 1) Abort: Successful: undone",
        ]
    );
    assert_eq!(sim.events_with_reason("RolloutStepCompleted").len(), 3);

    // Retry: the statuses of the aborted attempt are dropped and the steps start again.
    sim.step_plugin_calls.clear();
    script(
        &mut sim,
        "verdict",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Successful, "recovered", 0),
    );
    sim.retry();
    sim.run_until(40, Sim::healthy);
    assert_eq!(
        calls(&sim),
        [
            (StepPluginOperation::Run, "first".into()),
            (StepPluginOperation::Run, "second".into()),
            (StepPluginOperation::Run, "verdict".into()),
        ]
    );
    assert!(
        sim.status()
            .canary
            .step_plugin_statuses
            .iter()
            .all(|status| status.operation == StepPluginOperation::Run)
    );
}

#[test]
fn full_promotion_terminates_a_running_step_once() {
    let mut sim = updating(vec![weight(20), plugin_step("soak"), weight(60)]);
    script(
        &mut sim,
        "soak",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Running, "soaking", 60),
    );
    script(
        &mut sim,
        "soak",
        StepPluginOperation::Terminate,
        answer(StepPluginPhase::Running, "stopped", 0),
    );
    sim.run_until(20, |sim| !sim.step_plugin_calls.is_empty());
    sim.promote_full();
    sim.run_until(20, Sim::healthy);
    sim.run(3);
    assert_eq!(
        calls(&sim),
        [
            (StepPluginOperation::Run, "soak".into()),
            (StepPluginOperation::Terminate, "soak".into()),
        ]
    );
    // Terminate cannot run asynchronously: Running is recorded as Failed.
    let terminate = status_of(&sim, 1, StepPluginOperation::Terminate);
    assert_eq!(terminate.phase, Some(StepPluginPhase::Failed));
    assert_eq!(terminate.message.as_deref(), Some("stopped"));
}

#[test]
fn a_disabled_plugin_counts_as_complete() {
    let mut sim = updating(vec![plugin_step("gate"), weight(50)]);
    script(
        &mut sim,
        "gate",
        StepPluginOperation::Run,
        StepPluginOutcome::Disabled,
    );
    sim.run_until(20, Sim::healthy);
    let status = status_of(&sim, 0, StepPluginOperation::Run);
    assert!(status.disabled);
    assert_eq!(status.phase, Some(StepPluginPhase::Successful));
}

#[test]
fn a_paused_rollout_does_not_call_its_plugin_step() {
    let mut sim = updating(vec![pause_forever(), plugin_step("gate")]);
    script(
        &mut sim,
        "gate",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Successful, "ok", 0),
    );
    sim.run(10);
    assert!(sim.step_plugin_calls.is_empty());
    sim.promote();
    sim.run_until(20, Sim::healthy);
    assert_eq!(sim.step_plugin_calls.len(), 1);
}

#[test]
fn a_new_revision_starts_with_no_statuses() {
    let mut sim = updating(vec![plugin_step("gate"), pause_forever()]);
    script(
        &mut sim,
        "gate",
        StepPluginOperation::Run,
        answer(StepPluginPhase::Successful, "ok", 0),
    );
    sim.run_until(20, |sim| sim.status().current_step_index == Some(1));
    sim.set_image("demo:red");
    sim.reconcile();
    assert!(sim.status().canary.step_plugin_statuses.is_empty());
    sim.run_until(20, |sim| sim.step_plugin_calls.len() == 2);
    assert_eq!(sim.step_plugin_calls[1].run_status, None);
}
