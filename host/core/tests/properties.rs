//! Property tests of the planner: replica budgets of the basic canary, determinism, and that an
//! aborted rollout never gives the canary traffic.

mod common;

use common::*;
use proptest::prelude::*;
use sluice_api::analysis::AnalysisPhase;
use sluice_core::plan;
use sluice_core::replicas::{BasicCanaryInput, Fenceposts, ReplicaSetCounts, basic_canary_counts};

/// Fenceposts with at most one of them zero.
fn fenceposts() -> impl Strategy<Value = (i32, i32)> {
    (0..4i32, 0..4i32).prop_filter("both may not be zero", |(surge, unavailable)| {
        surge + unavailable > 0
    })
}

proptest! {
    /// Walking a basic canary from a healthy stable to any weight (and back, as on abort), with
    /// pods becoming ready between passes, never exceeds replicas + maxSurge pods and never drops
    /// available pods below replicas - maxUnavailable.
    #[test]
    fn basic_canary_stays_within_surge_and_availability(
        replicas in 0..15i32,
        weights in proptest::collection::vec(0..=100i32, 1..4),
        (max_surge, max_unavailable) in fenceposts(),
    ) {
        let max_unavailable = max_unavailable.min(replicas);
        let fenceposts = Fenceposts { max_surge, max_unavailable };
        let mut canary = ReplicaSetCounts { spec: 0, available: 0 };
        let mut stable = ReplicaSetCounts { spec: replicas, available: replicas };
        for weight in weights {
            for _ in 0..60 {
                let next = basic_canary_counts(&BasicCanaryInput {
                    replicas,
                    weight,
                    fenceposts,
                    canary: Some(canary),
                    stable: Some(stable),
                    other_replicas: 0,
                });
                prop_assert!(next.canary >= 0 && next.stable >= 0);
                prop_assert!(
                    next.canary + next.stable <= replicas + max_surge,
                    "{} + {} > {} + {}", next.canary, next.stable, replicas, max_surge
                );
                let still_available = canary.available.min(next.canary) + stable.available.min(next.stable);
                prop_assert!(
                    still_available >= replicas - max_unavailable,
                    "available {} < {} - {}", still_available, replicas, max_unavailable
                );
                // Pods of the new sizes become ready.
                canary = ReplicaSetCounts { spec: next.canary, available: next.canary };
                stable = ReplicaSetCounts { spec: next.stable, available: next.stable };
            }
        }
    }

    /// The same observation and time always give the same plan.
    #[test]
    fn planner_is_deterministic(
        replicas in 1..8i32,
        first in 1..100i32,
        second in 1..=100i32,
        routed in any::<bool>(),
        reconciles in 0..25usize,
        ready in any::<bool>(),
    ) {
        let steps = vec![weight(first), pause_seconds(5), analysis_step("rate"), weight(second)];
        let strategy = if routed { routed_canary(steps) } else { basic_canary(steps) };
        let mut sim = Sim::new(rollout(replicas, strategy));
        sim.run_until(30, Sim::healthy);
        sim.set_image("demo:green");
        for _ in 0..reconciles {
            sim.reconcile();
            if ready {
                sim.make_pods_ready();
            }
            sim.advance(2);
        }
        let once = plan(&sim.observed, sim.now);
        let twice = plan(&sim.observed.clone(), sim.now);
        prop_assert_eq!(once, twice);
    }

    /// Once a rollout is aborted (by the user or by a failed analysis), no plan sends traffic to
    /// the canary, whatever the pods and time do. (The abort is applied after the controller saw
    /// the new template: like Argo, observing a new template resets the abort of the old update.)
    #[test]
    fn aborted_rollout_never_sets_canary_weight(
        replicas in 1..8i32,
        first in 1..100i32,
        progress in 1..12usize,
        after in 1..15usize,
        by_analysis in any::<bool>(),
        dynamic in any::<bool>(),
        ready_each in any::<bool>(),
    ) {
        let mut strategy = routed_canary(vec![weight(first), analysis_step("rate"), weight(100)]);
        if let Some(canary) = strategy.canary.as_mut() {
            canary.dynamic_stable_scale = dynamic;
        }
        let mut sim = Sim::new(rollout(replicas, strategy));
        sim.run_until(30, Sim::healthy);
        sim.set_image("demo:green");
        sim.run(progress);
        let run = sim.observed.analysis_runs.first().map(|run| run.name.clone());
        match (by_analysis, run) {
            (true, Some(run)) => sim.set_run_phase(&run, AnalysisPhase::Failed, Some("failed")),
            _ => sim.abort(),
        }
        for _ in 0..after {
            let before = sim.router_weight;
            let plan = sim.reconcile();
            prop_assert!(plan.status.abort, "stays aborted until retried");
            let weights: Vec<i32> = plan.weights_set().collect();
            if !dynamic {
                prop_assert!(weights.iter().all(|weight| *weight == 0), "weights {:?}", weights);
            }
            // With dynamicStableScale the weight steps down with stable availability, but an
            // aborted rollout never moves it up.
            prop_assert!(weights.iter().all(|weight| *weight <= before),
                "an abort never increases the canary weight: {:?} after {}", weights, before);
            if ready_each {
                sim.make_pods_ready();
            }
            sim.advance(5);
        }
    }
}
