//! The Kubernetes Events of whole rollouts: one per transition, with Argo's reasons, and none in
//! steady state.

mod common;

use common::*;
use sluice_api::analysis::AnalysisPhase;
use sluice_api::rollout::RolloutPhase;
use sluice_core::events::Event;

fn reasons(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.reason.as_str()).collect()
}

fn messages<'a>(sim: &'a Sim, reason: &str) -> Vec<&'a str> {
    sim.events_with_reason(reason)
        .into_iter()
        .map(|event| event.message.as_str())
        .collect()
}

fn deployed(strategy: sluice_api::rollout::RolloutStrategy, replicas: i32) -> Sim {
    let mut sim = Sim::new(rollout(replicas, strategy));
    sim.run_until(20, Sim::healthy);
    sim
}

#[test]
fn steady_state_emits_nothing() {
    let mut sim = deployed(basic_canary(vec![weight(50), pause_forever()]), 2);
    assert_eq!(
        messages(&sim, "RolloutCompleted"),
        ["Rollout completed update to revision 1 (".to_string()
            + sim.status().stable_rs.as_deref().unwrap_or_default()
            + "): Initial deploy"]
    );
    sim.events.clear();
    sim.run(10);
    assert!(sim.events.is_empty(), "{:?}", sim.events);
}

#[test]
fn a_canary_update_reports_each_transition_once() {
    let mut sim = deployed(
        basic_canary(vec![weight(50), pause_forever(), weight(100)]),
        2,
    );
    let stable = sim.status().stable_rs.clone().unwrap_or_default();
    sim.events.clear();
    sim.set_image("demo:green");
    sim.run_until(10, |sim| sim.phase() == Some(RolloutPhase::Paused));
    sim.run(3);
    sim.promote();
    sim.run_until(20, Sim::healthy);
    sim.run(3);

    assert_eq!(
        messages(&sim, "RolloutUpdated"),
        ["Rollout updated to revision 2"]
    );
    let created = messages(&sim, "NewReplicaSetCreated");
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0].contains("(revision 2)"), "{created:?}");
    let hash = sim.status().current_pod_hash.clone().unwrap_or_default();
    assert_eq!(
        messages(&sim, "ScalingReplicaSet"),
        [
            format!("Scaled down ReplicaSet demo-{stable} (revision 1) from 2 to 1"),
            format!("Scaled up ReplicaSet demo-{hash} (revision 2) from 1 to 2"),
            format!("Scaled down ReplicaSet demo-{stable} (revision 1) from 1 to 0"),
        ]
    );
    assert_eq!(
        messages(&sim, "RolloutStepCompleted"),
        [
            "Rollout step 1/3 completed (setWeight: 50)",
            "Rollout step 2/3 completed (pause)",
            "Rollout step 3/3 completed (setWeight: 100)",
        ]
    );
    assert_eq!(
        messages(&sim, "RolloutPaused"),
        ["Rollout is paused (CanaryPauseStep)"]
    );
    assert_eq!(messages(&sim, "RolloutResumed"), ["Rollout is resumed"]);
    assert_eq!(
        messages(&sim, "RolloutCompleted"),
        [format!(
            "Rollout completed update to revision 2 ({hash}): Completed all 3 canary steps"
        )]
    );
    assert!(sim.events.iter().all(|event| !event.warning));
}

#[test]
fn a_failed_step_analysis_reports_the_run_and_the_abort() {
    let mut sim = deployed(
        routed_canary(vec![weight(20), analysis_step("success-rate"), weight(60)]),
        5,
    );
    sim.set_image("demo:green");
    sim.run_until(20, |sim| !sim.observed.analysis_runs.is_empty());
    sim.run(1);
    let run = sim.observed.analysis_runs[0].name.clone();
    sim.events.clear();
    sim.set_run_phase(&run, AnalysisPhase::Failed, Some("error ratio too high"));
    sim.run(3);

    let failed = sim.events_with_reason("AnalysisRunFailed");
    assert_eq!(failed.len(), 1, "{:?}", reasons(&sim.events));
    assert!(failed[0].warning);
    assert_eq!(
        failed[0].message,
        format!("Step Analysis Run '{run}' Status New: 'Failed' Previous: 'Running'")
    );
    let aborted = sim.events_with_reason("RolloutAborted");
    assert_eq!(aborted.len(), 1, "{:?}", reasons(&sim.events));
    assert!(aborted[0].warning);
    assert_eq!(
        aborted[0].message,
        "Rollout aborted update to revision 2: error ratio too high"
    );
    assert_eq!(
        messages(&sim, "TrafficWeightUpdated"),
        ["Traffic weight updated from 20 to 0"]
    );
    let stable = sim.status().stable_rs.clone().unwrap_or_default();
    let canary = sim.status().current_pod_hash.clone().unwrap_or_default();
    assert_eq!(
        messages(&sim, "SwitchService"),
        [format!(
            "Switched selector for service 'demo-canary' from '{canary}' to '{stable}'"
        )]
    );
}

#[test]
fn an_invalid_spec_is_reported_once() {
    let mut sim = Sim::new(rollout(3, basic_canary(vec![weight(10)])));
    sim.observed.validation_errors =
        vec!["spec.strategy.canary.steps[0].setWeight: must be 0-100".into()];
    sim.run(3);
    let invalid = sim.events_with_reason("InvalidSpec");
    assert_eq!(invalid.len(), 1, "{:?}", reasons(&sim.events));
    assert!(invalid[0].warning);
    assert_eq!(
        invalid[0].message,
        "spec.strategy.canary.steps[0].setWeight: must be 0-100"
    );
}
