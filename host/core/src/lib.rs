//! The pure core of Sluice: the canary and blue-green step machine, the analysis engine and the condition language.
//!
//! [`plan()`] is the step machine: given what the controller observed about a Rollout and the
//! current time, it returns the ordered actions to execute and the status to write. It performs
//! no I/O and reads no clock.

/// The condition language of analysis metrics (`successCondition`, `failureCondition`).
pub mod condition;

/// The analysis engine: measurement scheduling, counters, limits, run outcome, args templating.
pub mod analysis;

mod bluegreen;
mod canary;
mod context;
pub mod events;
pub mod experiment;
pub mod hash;
pub mod history;
pub mod observed;
pub mod plan;
pub mod replicas;
pub mod restart;
mod runs;
pub mod status;
pub mod step_plugin;

pub use k8s_openapi::jiff::Timestamp;
pub use observed::Observed;
pub use plan::{Action, Plan, RouterCall};

/// Decides the next actions and the new status of a Rollout.
///
/// Deterministic: the same `observed` and `now` always give the same plan. An invalid spec
/// (non-empty [`Observed::validation_errors`]) yields only a status with the `InvalidSpec`
/// condition and phase `Degraded`; ReplicaSets, Services and routers are left alone.
pub fn plan(observed: &Observed, now: Timestamp) -> Plan {
    let rollout = &observed.rollout;
    let strategy = match (rollout.canary(), rollout.blue_green()) {
        (Some(canary), None) => Some(Strategy::Canary(canary)),
        (None, Some(blue_green)) => Some(Strategy::BlueGreen(blue_green)),
        _ => None,
    };
    let Some(strategy) = strategy.filter(|_| observed.validation_errors.is_empty()) else {
        let mut violations = observed.validation_errors.clone();
        if strategy.is_none() {
            violations.push(INVALID_STRATEGY.to_string());
        }
        return invalid_spec_plan(observed, &violations, now);
    };
    let plan_with = |forced_abort: Option<String>| match strategy {
        Strategy::Canary(canary) => canary::plan(observed, now, canary, forced_abort),
        Strategy::BlueGreen(blue_green) => bluegreen::plan(observed, now, blue_green, forced_abort),
    };
    let planned = plan_with(None);
    let mut plan = match planned.deadline_abort {
        // The progress deadline passed with `progressDeadlineAbort`: plan again with the abort
        // applied up front so that traffic leaves the canary in this same plan.
        Some(message) => plan_with(Some(message)).plan,
        None => planned.plan,
    };
    restart::plan_restart(observed, now, &mut plan);
    history::collect_history(observed, &mut plan);
    plan
}

/// The violation reported when a Rollout has no strategy or both.
pub const INVALID_STRATEGY: &str = "spec.strategy: exactly one of canary or blueGreen must be set";

#[derive(Clone, Copy)]
enum Strategy<'a> {
    Canary(&'a sluice_api::rollout::CanaryStrategy),
    BlueGreen(&'a sluice_api::rollout::BlueGreenStrategy),
}

fn invalid_spec_plan(observed: &Observed, violations: &[String], now: Timestamp) -> Plan {
    let mut status = observed.rollout.status.clone().unwrap_or_default();
    status::apply_invalid_spec(&mut status.conditions, violations, now);
    status::finish(&observed.rollout, &mut status);
    Plan {
        actions: Vec::new(),
        status,
        requeue_after: None,
    }
}
