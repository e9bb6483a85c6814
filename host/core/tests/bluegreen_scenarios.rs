//! Whole blue-green rollouts walked through the planner and the simulator.

mod common;

use common::*;
use sluice_api::analysis::AnalysisPhase;
use sluice_api::rollout::{BlueGreenStrategy, PauseReason, RolloutPhase};
use sluice_core::Action;

fn strategy() -> BlueGreenStrategy {
    BlueGreenStrategy {
        active_service: "demo-active".into(),
        preview_service: Some("demo-preview".into()),
        auto_promotion_enabled: Some(false),
        post_promotion_analysis: Some(analysis("smoke")),
        ..BlueGreenStrategy::default()
    }
}

fn deployed(strategy: BlueGreenStrategy) -> Sim {
    let mut sim = Sim::new(rollout(3, blue_green(strategy)));
    sim.run_until(20, Sim::healthy);
    sim
}

#[test]
fn initial_deploy_points_both_services_at_the_first_revision() {
    let sim = deployed(strategy());
    let hash = sim.status().current_pod_hash.clone().expect("hash");
    assert_eq!(sim.selector("demo-active"), Some(hash.as_str()));
    assert_eq!(sim.selector("demo-preview"), Some(hash.as_str()));
    assert_eq!(
        sim.status().blue_green.active_selector.as_deref(),
        Some(hash.as_str())
    );
    assert!(
        sim.observed.analysis_runs.is_empty(),
        "no analysis on the initial deploy"
    );
}

#[test]
fn manual_promotion_then_failing_post_promotion_analysis_switches_back() {
    let mut sim = deployed(strategy());
    let blue = sim.status().stable_rs.clone().expect("stable");
    sim.set_image("demo:green");
    sim.run_until(20, |sim| sim.phase() == Some(RolloutPhase::Paused));
    let green = sim.status().current_pod_hash.clone().expect("hash");
    assert_eq!(
        sim.status().pause_conditions[0].reason,
        PauseReason::BlueGreenPause
    );
    assert_eq!(
        sim.selector("demo-preview"),
        Some(green.as_str()),
        "preview shows the new stack"
    );
    assert_eq!(
        sim.selector("demo-active"),
        Some(blue.as_str()),
        "active stays until promoted"
    );
    assert_eq!(sim.replica_set_by_hash(&green).spec_replicas, 3);
    sim.run(3);
    assert_eq!(
        sim.selector("demo-active"),
        Some(blue.as_str()),
        "no auto-promotion"
    );

    sim.promote();
    sim.run_until(10, |sim| !sim.observed.analysis_runs.is_empty());
    assert_eq!(
        sim.selector("demo-active"),
        Some(green.as_str()),
        "promoted: active switched"
    );
    let run = sim.observed.analysis_runs[0].name.clone();
    assert_eq!(run, format!("demo-{green}-2-post"));
    assert_eq!(sim.phase(), Some(RolloutPhase::Progressing));
    assert_eq!(
        sim.status().message.as_deref(),
        Some("waiting for analysis to complete")
    );
    assert_eq!(
        sim.replica_set_by_hash(&blue).spec_replicas,
        3,
        "old stack kept during the delay"
    );

    sim.set_run_phase(&run, AnalysisPhase::Failed, Some("smoke test failed"));
    let plan = sim.reconcile();
    assert_eq!(
        plan.actions.first(),
        Some(&Action::SetServiceSelector {
            service: "demo-active".into(),
            pod_template_hash: blue.clone()
        }),
        "the active Service goes back to the stable stack first: {:?}",
        plan.actions
    );
    assert!(plan.status.abort);
    assert_eq!(plan.status.phase, Some(RolloutPhase::Degraded));
    assert_eq!(
        plan.status.stable_rs.as_deref(),
        Some(blue.as_str()),
        "stable never moved"
    );
    sim.make_pods_ready();
    sim.advance(31);
    sim.run(3);
    assert_eq!(
        sim.replica_set_by_hash(&green).spec_replicas,
        0,
        "preview scaled down after the abort delay"
    );
    assert_eq!(sim.selector("demo-active"), Some(blue.as_str()));
}

#[test]
fn successful_post_promotion_analysis_completes_and_scales_down_old_stack_after_delay() {
    let mut sim = deployed(strategy());
    let blue = sim.status().stable_rs.clone().expect("stable");
    sim.set_image("demo:green");
    sim.run_until(20, |sim| sim.phase() == Some(RolloutPhase::Paused));
    sim.promote();
    sim.run_until(10, |sim| !sim.observed.analysis_runs.is_empty());
    let run = sim.observed.analysis_runs[0].name.clone();
    sim.set_run_phase(&run, AnalysisPhase::Successful, None);
    sim.run_until(10, Sim::healthy);
    let green = sim.status().current_pod_hash.clone().expect("hash");
    assert_eq!(sim.status().stable_rs.as_deref(), Some(green.as_str()));
    sim.run(1);
    assert!(
        sim.replica_set_by_hash(&blue).scale_down_deadline.is_some(),
        "old stack waits scaleDownDelaySeconds"
    );
    sim.advance(31);
    sim.run(2);
    assert_eq!(sim.replica_set_by_hash(&blue).spec_replicas, 0);
}

#[test]
fn auto_promotion_after_seconds_and_preview_replica_count() {
    let mut sim = deployed(BlueGreenStrategy {
        active_service: "demo-active".into(),
        preview_service: Some("demo-preview".into()),
        auto_promotion_seconds: Some(20),
        preview_replica_count: Some(1),
        ..BlueGreenStrategy::default()
    });
    sim.set_image("demo:green");
    sim.run_until(10, |sim| sim.phase() == Some(RolloutPhase::Paused));
    let green = sim.status().current_pod_hash.clone().expect("hash");
    assert_eq!(
        sim.replica_set_by_hash(&green).spec_replicas,
        1,
        "preview at previewReplicaCount"
    );
    sim.advance(21);
    sim.run_until(20, Sim::healthy);
    assert_eq!(
        sim.replica_set_by_hash(&green).spec_replicas,
        3,
        "scaled to full before the switch"
    );
    assert_eq!(sim.selector("demo-active"), Some(green.as_str()));
}

#[test]
fn scale_down_delay_revision_limit_scales_older_stacks_immediately() {
    let mut sim = deployed(BlueGreenStrategy {
        active_service: "demo-active".into(),
        scale_down_delay_revision_limit: Some(1),
        ..BlueGreenStrategy::default()
    });
    let first = sim.status().stable_rs.clone().expect("stable");
    sim.set_image("demo:green");
    sim.run_until(20, Sim::healthy);
    let second = sim.status().stable_rs.clone().expect("stable");
    sim.set_image("demo:yellow");
    sim.run_until(20, Sim::healthy);
    sim.run(2);
    assert!(
        sim.replica_set_by_hash(&second)
            .scale_down_deadline
            .is_some(),
        "the previous stack waits"
    );
    assert_eq!(sim.replica_set_by_hash(&second).spec_replicas, 3);
    assert_eq!(
        sim.replica_set_by_hash(&first).spec_replicas,
        0,
        "beyond the revision limit"
    );
}
