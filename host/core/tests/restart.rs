//! `spec.restartAt` (`sluice restart`) walked through the planner: rolling evictions within
//! `maxUnavailable`, stable pods first, completion recorded in `status.restartedAt`.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::SignedDuration;
use sluice_api::rollout::RolloutPhase;
use sluice_core::Action;
use sluice_core::restart::restart_due;

fn healthy_canary(replicas: i32, max_unavailable: Option<IntOrString>) -> Sim {
    let mut strategy = basic_canary(vec![weight(50)]);
    if let Some(canary) = strategy.canary.as_mut() {
        canary.max_unavailable = max_unavailable;
    }
    let mut sim = Sim::new(rollout(replicas, strategy));
    sim.run_until(20, Sim::healthy);
    sim
}

fn evictions(plan: &sluice_core::Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|action| match action {
            Action::EvictPod { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn request_restart(sim: &mut Sim, at: k8s_openapi::jiff::Timestamp) {
    sim.edit_spec(|spec| spec.restart_at = Some(Time(at)));
}

#[test]
fn restart_evicts_one_pod_at_a_time_and_records_completion() {
    let mut sim = healthy_canary(3, Some(IntOrString::Int(1)));
    sim.advance(60);
    let restart_at = sim.now;
    request_restart(&mut sim, restart_at);
    assert_eq!(
        restart_due(&sim.observed.rollout, sim.now),
        Some(restart_at)
    );
    sim.list_pods();

    let mut evicted = Vec::new();
    for _ in 0..20 {
        let plan = sim.reconcile();
        let now_evicted = evictions(&plan);
        assert!(
            now_evicted.len() <= 1,
            "at most maxUnavailable at once: {now_evicted:?}"
        );
        // Without the evicted pod's replacement being available, nothing more is evicted.
        if !now_evicted.is_empty() {
            assert!(evictions(&sim.reconcile()).is_empty());
            assert_eq!(sim.status().phase, Some(RolloutPhase::Progressing));
        }
        evicted.extend(now_evicted);
        if sim.status().restarted_at.is_some() {
            break;
        }
        sim.advance(1);
        sim.replace_evicted_pods();
        sim.make_pods_ready();
    }
    assert_eq!(evicted.len(), 3, "every pod restarted once: {evicted:?}");
    assert_eq!(
        sim.status().restarted_at.as_ref().map(|time| time.0),
        Some(restart_at)
    );
    assert_eq!(sim.status().phase, Some(RolloutPhase::Healthy));
    assert_eq!(restart_due(&sim.observed.rollout, sim.now), None);
    assert!(evictions(&sim.reconcile()).is_empty(), "done means done");
}

#[test]
fn max_unavailable_percent_evicts_several_at_once() {
    let mut sim = healthy_canary(8, None);
    sim.advance(60);
    let now = sim.now;
    request_restart(&mut sim, now);
    sim.list_pods();
    let plan = sim.reconcile();
    assert_eq!(evictions(&plan).len(), 2, "25% of 8 pods");
    assert!(plan.requeue_after.is_some());
}

#[test]
fn a_small_max_unavailable_still_evicts_one() {
    let mut sim = healthy_canary(2, Some(IntOrString::Int(0)));
    sim.advance(60);
    let now = sim.now;
    request_restart(&mut sim, now);
    sim.list_pods();
    assert_eq!(evictions(&sim.reconcile()).len(), 1);
}

#[test]
fn stable_pods_go_first_and_pods_created_after_restart_at_stay() {
    let mut sim = healthy_canary(2, Some(IntOrString::Int(1)));
    let stable = sim.status().stable_rs.clone().expect("stable");
    sim.advance(60);
    let now = sim.now;
    request_restart(&mut sim, now);
    sim.list_pods();
    // A pod of some other revision, created after restartAt, is left alone.
    if let Some(pods) = sim.observed.pods.as_mut() {
        let mut newer = pods[0].clone();
        newer.name = "demo-other-0".into();
        newer.pod_template_hash = "other".into();
        newer.created_at = sim.now + SignedDuration::from_secs(5);
        pods.insert(0, newer);
    }
    let first = evictions(&sim.reconcile());
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with(&format!("demo-{stable}")), "{first:?}");
    assert_ne!(first[0], "demo-other-0");
}

#[test]
fn a_future_restart_waits_until_its_time() {
    let mut sim = healthy_canary(2, None);
    let at = sim.now + SignedDuration::from_secs(600);
    request_restart(&mut sim, at);
    assert_eq!(restart_due(&sim.observed.rollout, sim.now), None);
    let plan = sim.reconcile();
    assert!(evictions(&plan).is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
}

#[test]
fn without_a_pod_listing_nothing_is_evicted_or_recorded() {
    let mut sim = healthy_canary(2, None);
    sim.advance(60);
    let now = sim.now;
    request_restart(&mut sim, now);
    let plan = sim.reconcile();
    assert!(evictions(&plan).is_empty());
    assert_eq!(plan.status.restarted_at, None);
}

#[test]
fn a_replacement_pod_that_is_not_ready_blocks_the_next_eviction_even_if_the_replica_set_lags() {
    let mut sim = healthy_canary(3, Some(IntOrString::Int(1)));
    sim.advance(60);
    let now = sim.now;
    request_restart(&mut sim, now);
    sim.list_pods();
    assert_eq!(evictions(&sim.reconcile()).len(), 1);
    // The pod is replaced by one that is not ready yet, while the ReplicaSet's status still
    // counts three available pods.
    sim.replace_evicted_pods();
    for rs in &mut sim.observed.replica_sets {
        rs.available_replicas = rs.spec_replicas;
    }
    assert!(evictions(&sim.reconcile()).is_empty());
}
