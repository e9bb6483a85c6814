//! Cost of one `plan()` call for a mid-rollout, traffic-routed canary (paused at an indefinite
//! pause step with every pod ready: the steady-state, no-op reconcile decision) and for a
//! canary that is about to advance a step.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::*;
use criterion::{Criterion, criterion_group, criterion_main};
use sluice_api::rollout::RolloutPhase;
use sluice_core::plan;

fn paused_mid_rollout() -> Sim {
    let mut sim = Sim::new(rollout(
        10,
        routed_canary(vec![
            weight(20),
            pause_forever(),
            analysis_step("rate"),
            weight(60),
        ]),
    ));
    sim.run_until(30, Sim::healthy);
    sim.set_image("demo:green");
    sim.run_until(30, |sim| sim.phase() == Some(RolloutPhase::Paused));
    sim.run(3);
    sim
}

fn bench(c: &mut Criterion) {
    let sim = paused_mid_rollout();
    let no_op = plan(&sim.observed, sim.now);
    assert!(
        no_op.has_no_actions(),
        "the benchmarked reconcile is a no-op: {:?}",
        no_op.actions
    );
    c.bench_function("plan/no-op mid-rollout canary (paused, 10 replicas)", |b| {
        b.iter(|| plan(black_box(&sim.observed), black_box(sim.now)))
    });

    let mut advancing = paused_mid_rollout();
    advancing.promote();
    c.bench_function("plan/advance past a promoted pause step", |b| {
        b.iter(|| plan(black_box(&advancing.observed), black_box(advancing.now)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
