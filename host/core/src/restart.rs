//! `spec.restartAt` (`sluice restart`): a rolling restart of every pod created before that time.
//!
//! Pods are *evicted* (so PodDisruptionBudgets are honoured), the stable ReplicaSet's first and
//! the oldest first, never more at once than `maxUnavailable` allows (at least one): a pod is
//! evicted only while the ReplicaSets have enough available pods. When no pod older than
//! `restartAt` remains, `status.restartedAt` records it. A `restartAt` in the future waits.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use sluice_api::rollout::Rollout;

use crate::observed::Observed;
use crate::plan::{Action, Plan};
use crate::replicas::scaled_value;

/// How often a restart that is waiting for pods to become available is looked at again (the
/// ReplicaSet watch usually triggers sooner).
pub const RESTART_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// A pod of one of the Rollout's ReplicaSets. The controller lists pods only while a restart
/// is due ([`restart_due`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedPod {
    /// Its name.
    pub name: String,
    /// Its `rollouts-pod-template-hash` label.
    pub pod_template_hash: String,
    /// `metadata.creationTimestamp`.
    pub created_at: Timestamp,
    /// Whether it is being deleted.
    pub terminating: bool,
    /// Whether its `Ready` condition is true.
    pub ready: bool,
}

/// The `restartAt` that is due at `now` and not recorded as done yet.
pub fn restart_due(rollout: &Rollout, now: Timestamp) -> Option<Timestamp> {
    let restart_at = rollout.spec.restart_at.as_ref()?.0;
    let done = rollout
        .status
        .as_ref()
        .and_then(|status| status.restarted_at.as_ref())
        .is_some_and(|restarted| restarted.0 == restart_at);
    (!done && restart_at <= now).then_some(restart_at)
}

/// Adds the restart's evictions to `plan` (after the strategy's actions) and records its
/// completion in the plan's status.
pub(crate) fn plan_restart(observed: &Observed, now: Timestamp, plan: &mut Plan) {
    let rollout = &observed.rollout;
    let Some(restart_at) = rollout.spec.restart_at.as_ref().map(|time| time.0) else {
        return;
    };
    if restart_at > now {
        let wait = Duration::try_from(restart_at.duration_since(now)).unwrap_or_default();
        requeue_within(plan, wait);
        return;
    }
    let (Some(_), Some(pods)) = (restart_due(rollout, now), observed.pods.as_deref()) else {
        return;
    };
    let stale = |pod: &&ObservedPod| pod.created_at < restart_at;
    if !pods.iter().any(|pod| stale(&pod)) {
        plan.status.restarted_at = rollout.spec.restart_at.clone();
        // The phase said "rollout is restarting" until now.
        crate::status::finish(rollout, &mut plan.status);
        return;
    }
    let desired: i32 = observed
        .replica_sets
        .iter()
        .map(|rs| rs.spec_replicas)
        .sum();
    let available: i32 = observed
        .replica_sets
        .iter()
        .map(|rs| rs.available_replicas.min(rs.spec_replicas))
        .sum();
    // The ReplicaSets' status lags behind evictions and new pods: count what the pods show too.
    let ready_pods = pods
        .iter()
        .filter(|pod| pod.ready && !pod.terminating)
        .count() as i32;
    let unavailable = (desired - available).max(desired - ready_pods);
    let budget = max_unavailable(rollout, desired) - unavailable;
    let stable_hash = rollout
        .status
        .as_ref()
        .and_then(|status| status.stable_rs.as_deref());
    let mut candidates: Vec<&ObservedPod> = pods
        .iter()
        .filter(stale)
        .filter(|pod| !pod.terminating)
        .collect();
    candidates.sort_by_key(|pod| {
        (
            Some(pod.pod_template_hash.as_str()) != stable_hash,
            pod.created_at,
            pod.name.clone(),
        )
    });
    for pod in candidates
        .into_iter()
        .take(usize::try_from(budget).unwrap_or(0))
    {
        plan.actions.push(Action::EvictPod {
            name: pod.name.clone(),
        });
    }
    requeue_within(plan, RESTART_RETRY_INTERVAL);
}

/// `maxUnavailable` of the strategy as a pod count, at least one.
fn max_unavailable(rollout: &Rollout, replicas: i32) -> i32 {
    let value = rollout
        .canary()
        .map(|canary| canary.max_unavailable())
        .or_else(|| {
            rollout
                .blue_green()
                .and_then(|blue_green| blue_green.max_unavailable.clone())
        });
    value
        .and_then(|value| scaled_value(&value, replicas, false).ok())
        .unwrap_or(1)
        .max(1)
}

fn requeue_within(plan: &mut Plan, delay: Duration) {
    plan.requeue_after = Some(plan.requeue_after.map_or(delay, |other| other.min(delay)));
}
