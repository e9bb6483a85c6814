//! Replica arithmetic of the canary strategy, as Argo Rollouts computes it.
//!
//! - [`resolve_fenceposts`] turns `maxSurge`/`maxUnavailable` into pod counts (surge rounds up,
//!   unavailable rounds down, and when both resolve to 0 unavailable becomes 1);
//! - [`basic_canary_counts`] sizes the canary and stable ReplicaSets of a canary without traffic
//!   routing, where the replica ratio *is* the traffic split: it approximates the weight with the
//!   closest counts (ties go to the larger canary) and moves towards them within the surge and
//!   availability budgets;
//! - [`traffic_routed_counts`] sizes them when a router splits traffic: the canary gets
//!   `ceil(replicas × weight / maxWeight)` pods and the stable keeps its full size unless
//!   `dynamicStableScale` is on.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sluice_api::rollout::{ProgressThresholdType, ReplicaProgressThreshold};

/// Why an int-or-percent value could not be resolved to a pod count.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FencepostError {
    /// A string that is not a percentage, such as `"5"` (write `5` or `"5%"`).
    #[error("invalid value for IntOrString: {0:?} is not a percentage")]
    NotAPercentage(String),
    /// A percentage whose number does not parse, such as `"abc%"`.
    #[error("invalid value for IntOrString: {0:?} is not a number")]
    InvalidNumber(String),
}

/// Resolves an int-or-percent against `total` (Kubernetes' `GetScaledValueFromIntOrPercent`):
/// an int is taken as is, `"N%"` is `N × total / 100` rounded up or down.
pub fn scaled_value(
    value: &IntOrString,
    total: i32,
    round_up: bool,
) -> Result<i32, FencepostError> {
    match value {
        IntOrString::Int(count) => Ok(*count),
        IntOrString::String(text) => {
            let Some(number) = text.strip_suffix('%') else {
                return Err(FencepostError::NotAPercentage(text.clone()));
            };
            let percent: i32 = number
                .parse()
                .map_err(|_| FencepostError::InvalidNumber(text.clone()))?;
            let exact = f64::from(percent) * f64::from(total) / 100.0;
            let rounded = if round_up {
                exact.ceil()
            } else {
                exact.floor()
            };
            Ok(rounded as i32)
        }
    }
}

/// `maxSurge` and `maxUnavailable` resolved to pod counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fenceposts {
    /// Pods that may exist above `spec.replicas`.
    pub max_surge: i32,
    /// Pods that may be unavailable below `spec.replicas`.
    pub max_unavailable: i32,
}

/// Resolves both fenceposts together: surge rounds up, unavailable rounds down, and when both end
/// up 0 unavailable becomes 1 so that the update can always make progress.
pub fn resolve_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    desired: i32,
) -> Result<Fenceposts, FencepostError> {
    let surge = scaled_value(max_surge, desired, true)?;
    let mut unavailable = scaled_value(max_unavailable, desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok(Fenceposts {
        max_surge: surge,
        max_unavailable: unavailable,
    })
}

/// The fenceposts the canary strategy actually uses for `replicas` pods: an invalid value (which
/// validation reports separately) counts as 0, and unavailable never exceeds `replicas`.
pub fn canary_fenceposts(
    max_surge: &IntOrString,
    max_unavailable: &IntOrString,
    replicas: i32,
) -> Fenceposts {
    let resolved = resolve_fenceposts(max_surge, max_unavailable, replicas).unwrap_or(Fenceposts {
        max_surge: 0,
        max_unavailable: 0,
    });
    let max_unavailable = if replicas == 0 {
        0
    } else {
        resolved.max_unavailable.min(replicas)
    };
    Fenceposts {
        max_surge: resolved.max_surge,
        max_unavailable,
    }
}

/// The size and availability of one ReplicaSet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaSetCounts {
    /// `spec.replicas`.
    pub spec: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

impl ReplicaSetCounts {
    /// Pods that can be counted on when deciding how far to scale down: the desired size when
    /// availability is ignored (or when more pods are available than desired), else the
    /// available pods.
    fn counted_for_scale_down(self, ignore_availability: bool) -> i32 {
        if self.spec < self.available || ignore_availability {
            self.spec
        } else {
            self.available
        }
    }
}

/// Desired sizes of the canary and stable ReplicaSets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanaryCounts {
    /// Canary (new) ReplicaSet size.
    pub canary: i32,
    /// Stable ReplicaSet size.
    pub stable: i32,
}

/// Inputs of the basic (replica-weighted) canary computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BasicCanaryInput {
    /// `spec.replicas`.
    pub replicas: i32,
    /// The canary weight to approximate (0-100).
    pub weight: i32,
    /// Resolved fenceposts (see [`canary_fenceposts`]).
    pub fenceposts: Fenceposts,
    /// The canary ReplicaSet, when it exists.
    pub canary: Option<ReplicaSetCounts>,
    /// The stable ReplicaSet, when it exists and is not the canary.
    pub stable: Option<ReplicaSetCounts>,
    /// Sum of `spec.replicas` over the other (older) ReplicaSets.
    pub other_replicas: i32,
}

/// The closest canary/stable split of `replicas` (or `replicas + 1` when surging is allowed) to
/// `weight`: ties between rounding down and up go to the larger canary, and a weight strictly
/// between 0 and 100 never yields a zero-sized canary or stable when there is room for both.
pub fn approximate_weighted_counts(replicas: i32, weight: i32, max_surge: i32) -> CanaryCounts {
    if replicas == 0 {
        return CanaryCounts {
            canary: 0,
            stable: 0,
        };
    }
    let exact = |total: i32| f64::from(total) * f64::from(weight) / 100.0;
    let tied = |total: i32| exact(total).fract() == 0.5;
    let ceil_canary = exact(replicas).ceil() as i32;
    let floor_canary = exact(replicas).floor() as i32;
    let zero_allowed = weight == 100 || weight == 0 || (replicas == 1 && max_surge == 0);

    let mut options: Vec<(i32, i32)> = Vec::with_capacity(4);
    if ceil_canary < replicas || zero_allowed {
        options.push((ceil_canary, replicas));
    }
    if !tied(replicas) && (floor_canary != 0 || zero_allowed) {
        options.push((floor_canary, replicas));
    }
    if max_surge > 0 {
        options.push((ceil_canary, replicas + 1));
        if !tied(replicas + 1) && (floor_canary != 0 || zero_allowed) {
            options.push((floor_canary, replicas + 1));
        }
    }
    let delta = |(canary, total): (i32, i32)| {
        (f64::from(canary) * 100.0 / f64::from(total) - f64::from(weight)).abs()
    };
    let Some(&first) = options.first() else {
        return CanaryCounts {
            canary: 0,
            stable: replicas,
        };
    };
    let mut best = first;
    for option in options.into_iter().skip(1) {
        if delta(option) < delta(best) {
            best = option;
        }
    }
    CanaryCounts {
        canary: best.0,
        stable: best.1 - best.0,
    }
}

/// The next sizes of the canary and stable ReplicaSets of a basic canary: scale up (stable
/// first) within `replicas + maxSurge`, then, once no older ReplicaSet holds pods, scale down
/// within `replicas - maxUnavailable` available pods.
pub fn basic_canary_counts(input: &BasicCanaryInput) -> CanaryCounts {
    let replicas = input.replicas;
    let fenceposts = input.fenceposts;
    let mut desired = approximate_weighted_counts(replicas, input.weight, fenceposts.max_surge);
    let stable_exists = input.stable.is_some();
    if !stable_exists {
        // Without a distinct stable ReplicaSet there are no steps to follow: go to 100%.
        desired = CanaryCounts {
            canary: replicas,
            stable: 0,
        };
    }
    let canary_spec = input.canary.map_or(0, |rs| rs.spec);
    let stable_spec = input.stable.map_or(0, |rs| rs.spec);
    let mut next = CanaryCounts {
        canary: canary_spec,
        stable: stable_spec,
    };

    let max_total = replicas + fenceposts.max_surge;
    let mut scale_up_budget = max_total - (input.other_replicas + canary_spec + stable_spec);
    if stable_exists && stable_spec < desired.stable && scale_up_budget > 0 {
        if stable_spec + scale_up_budget < desired.stable {
            next.stable = stable_spec + scale_up_budget;
            scale_up_budget = 0;
        } else {
            next.stable = desired.stable;
            scale_up_budget -= desired.stable - stable_spec;
        }
    }
    if input.canary.is_some() && canary_spec < desired.canary && scale_up_budget > 0 {
        next.canary = (canary_spec + scale_up_budget).min(desired.canary);
    }
    if input.other_replicas > 0 {
        // Older ReplicaSets are scaled down first.
        return next;
    }

    let min_available = replicas - fenceposts.max_unavailable;
    let increasing = input.canary.is_none_or(|rs| desired.canary >= rs.spec);
    let countable = input
        .canary
        .map_or(0, |rs| rs.counted_for_scale_down(!increasing))
        + input
            .stable
            .map_or(0, |rs| rs.counted_for_scale_down(increasing));
    if countable <= min_available {
        return next;
    }
    let scale_down_budget = countable - min_available;
    if !increasing {
        // Shrinking the canary (e.g. on abort): drain it, keep the stable within limits.
        next.canary = drained_count(input.canary, desired.canary, scale_down_budget, next.canary);
        let (canary, stable) = adjust_within_limits(
            input.canary,
            input.stable,
            next.canary,
            next.stable,
            max_total,
            min_available,
        );
        next.canary = canary;
        next.stable = stable;
    } else if stable_exists {
        next.stable = drained_count(input.stable, desired.stable, scale_down_budget, next.stable);
        let (stable, canary) = adjust_within_limits(
            input.stable,
            input.canary,
            next.stable,
            next.canary,
            max_total,
            min_available,
        );
        next.canary = canary;
        next.stable = stable;
    }
    next
}

/// Scales the drained ReplicaSet down towards `desired` by at most `budget`.
fn drained_count(rs: Option<ReplicaSetCounts>, desired: i32, budget: i32, current: i32) -> i32 {
    match rs {
        Some(rs) if rs.spec > desired => desired.max(rs.spec - budget),
        _ => current,
    }
}

/// Keeps the pair within `maxSurge` (shrinking the adjusted ReplicaSet first) without dropping
/// availability below `minAvailable` (giving back to the adjusted ReplicaSet what it needs, then
/// taking the excess from the drained one).
fn adjust_within_limits(
    drained: Option<ReplicaSetCounts>,
    adjusted: Option<ReplicaSetCounts>,
    mut drained_count: i32,
    mut adjusted_count: i32,
    max_total: i32,
    min_available: i32,
) -> (i32, i32) {
    let mut over_limit = (adjusted_count + drained_count - max_total).max(0);
    let mut total_available = drained.map_or(0, |rs| rs.available.min(drained_count));
    if let Some(adjusted) = adjusted {
        adjusted_count -= over_limit;
        total_available += adjusted.available.min(adjusted_count);
        let lost_availability = (adjusted.available - adjusted_count).max(0);
        let missing = (min_available - total_available).max(0);
        adjusted_count += lost_availability.min(missing);
        over_limit = (adjusted_count + drained_count - max_total).max(0);
        drained_count -= over_limit;
    }
    (drained_count, adjusted_count)
}

/// `ceil(replicas × weight / max_weight)`: the pods that can carry `weight` of the traffic.
pub fn traffic_weight_to_replicas(replicas: i32, weight: i32, max_weight: i32) -> i32 {
    if max_weight <= 0 {
        return 0;
    }
    (f64::from(weight) * f64::from(replicas) / f64::from(max_weight)).ceil() as i32
}

/// Inputs of the traffic-routed canary computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrafficRoutedInput {
    /// `spec.replicas`.
    pub replicas: i32,
    /// Desired canary traffic weight.
    pub weight: i32,
    /// `trafficRouting.maxTrafficWeight` (default 100).
    pub max_weight: i32,
    /// An explicit canary size from `setCanaryScale.replicas`.
    pub explicit_canary_replicas: Option<i32>,
    /// `dynamicStableScale`.
    pub dynamic_stable_scale: bool,
    /// `minPodsPerReplicaSet`.
    pub min_pods_per_replica_set: Option<i32>,
    /// The (canary, stable) weights last set on the routers, if any.
    pub current_weights: Option<(i32, i32)>,
    /// Whether the rollout is aborted.
    pub aborted: bool,
}

/// Sizes of the canary and stable ReplicaSets when a router splits the traffic.
pub fn traffic_routed_counts(input: &TrafficRoutedInput) -> CanaryCounts {
    let at_least_min = |count: i32| match input.min_pods_per_replica_set {
        Some(min) if count != 0 => count.max(min),
        _ => count,
    };
    let to_replicas = |weight| traffic_weight_to_replicas(input.replicas, weight, input.max_weight);
    let mut canary = match input.explicit_canary_replicas {
        Some(explicit) => explicit,
        None => at_least_min(to_replicas(input.weight)),
    };
    if !input.dynamic_stable_scale {
        return CanaryCounts {
            canary,
            stable: input.replicas,
        };
    }
    // Dynamic stable scale: keep enough stable pods for the larger of the desired and the actual
    // stable weight; on abort, keep canary pods until traffic has left them.
    let mut stable = to_replicas(input.max_weight - input.weight);
    if let Some((canary_weight, stable_weight)) = input.current_weights {
        stable = stable.max(to_replicas(stable_weight));
        if input.aborted {
            canary = canary.max(to_replicas(canary_weight));
        }
    }
    CanaryCounts {
        canary: at_least_min(canary),
        stable: at_least_min(stable),
    }
}

/// Canary pods that must be available before the rollout moves past a weight
/// (`replicaProgressThreshold`, default 100% of the desired canary pods).
pub fn progress_threshold(
    desired_canary: i32,
    threshold: Option<&ReplicaProgressThreshold>,
) -> i32 {
    match threshold {
        None => desired_canary,
        Some(threshold) => match threshold.type_ {
            ProgressThresholdType::Percent => {
                (f64::from(desired_canary) * f64::from(threshold.value) / 100.0).ceil() as i32
            }
            ProgressThresholdType::Pods => threshold.value.min(desired_canary),
        },
    }
}
