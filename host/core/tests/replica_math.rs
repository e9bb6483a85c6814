//! Table tests of the canary replica arithmetic: fenceposts, the basic (replica-weighted)
//! canary, the closest-split approximation with its tie rules, and the traffic-routed canary.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sluice_api::rollout::{ProgressThresholdType, ReplicaProgressThreshold};
use sluice_core::replicas::{
    BasicCanaryInput, CanaryCounts, FencepostError, Fenceposts, ReplicaSetCounts,
    TrafficRoutedInput, approximate_weighted_counts, basic_canary_counts, canary_fenceposts,
    progress_threshold, resolve_fenceposts, scaled_value, traffic_routed_counts,
    traffic_weight_to_replicas,
};

fn int(value: i32) -> IntOrString {
    IntOrString::Int(value)
}

fn text(value: &str) -> IntOrString {
    IntOrString::String(value.to_string())
}

struct FencepostCase {
    name: &'static str,
    surge: IntOrString,
    unavailable: IntOrString,
    replicas: i32,
    expected: Result<(i32, i32), FencepostError>,
}

#[test]
fn fenceposts_resolve_like_argo() {
    let cases = [
        FencepostCase {
            name: "ints are taken as is",
            surge: int(3),
            unavailable: int(2),
            replicas: 10,
            expected: Ok((3, 2)),
        },
        FencepostCase {
            name: "default 25% of 10: surge rounds up, unavailable down",
            surge: text("25%"),
            unavailable: text("25%"),
            replicas: 10,
            expected: Ok((3, 2)),
        },
        FencepostCase {
            name: "25% of 1: surge 1, unavailable 0",
            surge: text("25%"),
            unavailable: text("25%"),
            replicas: 1,
            expected: Ok((1, 0)),
        },
        FencepostCase {
            name: "25% of 3: surge 1, unavailable 0",
            surge: text("25%"),
            unavailable: text("25%"),
            replicas: 3,
            expected: Ok((1, 0)),
        },
        FencepostCase {
            name: "both zero ints: unavailable becomes 1",
            surge: int(0),
            unavailable: int(0),
            replicas: 10,
            expected: Ok((0, 1)),
        },
        FencepostCase {
            name: "both 0%: unavailable becomes 1",
            surge: text("0%"),
            unavailable: text("0%"),
            replicas: 10,
            expected: Ok((0, 1)),
        },
        FencepostCase {
            name: "1% surge of 2 rounds up to 1",
            surge: text("1%"),
            unavailable: text("0%"),
            replicas: 2,
            expected: Ok((1, 0)),
        },
        FencepostCase {
            name: "1% unavailable of 2 rounds down to 0, then becomes 1",
            surge: text("0%"),
            unavailable: text("1%"),
            replicas: 2,
            expected: Ok((0, 1)),
        },
        FencepostCase {
            name: "percent of 0 replicas: unavailable becomes 1",
            surge: text("50%"),
            unavailable: text("50%"),
            replicas: 0,
            expected: Ok((0, 1)),
        },
        FencepostCase {
            name: "100% surge of 7",
            surge: text("100%"),
            unavailable: int(0),
            replicas: 7,
            expected: Ok((7, 0)),
        },
        FencepostCase {
            name: "string without % is rejected",
            surge: text("5"),
            unavailable: int(0),
            replicas: 10,
            expected: Err(FencepostError::NotAPercentage("5".into())),
        },
        FencepostCase {
            name: "non-numeric percent is rejected",
            surge: int(1),
            unavailable: text("abc%"),
            replicas: 10,
            expected: Err(FencepostError::InvalidNumber("abc%".into())),
        },
        FencepostCase {
            name: "empty string is rejected",
            surge: text(""),
            unavailable: int(1),
            replicas: 10,
            expected: Err(FencepostError::NotAPercentage(String::new())),
        },
        FencepostCase {
            name: "fractional percent is rejected",
            surge: text("2.5%"),
            unavailable: int(1),
            replicas: 10,
            expected: Err(FencepostError::InvalidNumber("2.5%".into())),
        },
    ];
    for case in cases {
        let resolved = resolve_fenceposts(&case.surge, &case.unavailable, case.replicas)
            .map(|fenceposts| (fenceposts.max_surge, fenceposts.max_unavailable));
        assert_eq!(resolved, case.expected, "{}", case.name);
    }
}

#[test]
fn canary_fenceposts_clamp_and_zero_invalid_values() {
    let cases = [
        (
            "unavailable larger than replicas is clamped",
            int(1),
            int(20),
            10,
            (1, 10),
        ),
        (
            "zero replicas have no unavailable budget",
            int(1),
            int(1),
            0,
            (1, 0),
        ),
        (
            "an invalid surge string counts as zero for both",
            text("x"),
            int(2),
            10,
            (0, 0),
        ),
        (
            "an invalid unavailable string counts as zero for both",
            int(2),
            text("1"),
            10,
            (0, 0),
        ),
        (
            "defaults of 25% on 4 replicas",
            text("25%"),
            text("25%"),
            4,
            (1, 1),
        ),
    ];
    for (name, surge, unavailable, replicas, (max_surge, max_unavailable)) in cases {
        assert_eq!(
            canary_fenceposts(&surge, &unavailable, replicas),
            Fenceposts {
                max_surge,
                max_unavailable
            },
            "{name}"
        );
    }
}

#[test]
fn scaled_values_round_in_the_requested_direction() {
    let cases = [
        ("33% of 10 rounded up", text("33%"), 10, true, 4),
        ("33% of 10 rounded down", text("33%"), 10, false, 3),
        ("an int ignores the total", int(4), 100, true, 4),
        ("50% of an odd count rounded up", text("50%"), 5, true, 3),
        ("50% of an odd count rounded down", text("50%"), 5, false, 2),
    ];
    for (name, value, total, round_up, expected) in cases {
        assert_eq!(
            scaled_value(&value, total, round_up),
            Ok(expected),
            "{name}"
        );
    }
}

struct BasicCase {
    name: &'static str,
    replicas: i32,
    weight: i32,
    surge: IntOrString,
    unavailable: IntOrString,
    stable: (i32, i32),
    canary: (i32, i32),
    older: i32,
    expected_stable: i32,
    expected_canary: i32,
}

fn basic(case: &BasicCase) -> CanaryCounts {
    let fenceposts = canary_fenceposts(&case.surge, &case.unavailable, case.replicas);
    basic_canary_counts(&BasicCanaryInput {
        replicas: case.replicas,
        weight: case.weight,
        fenceposts,
        canary: Some(ReplicaSetCounts {
            spec: case.canary.0,
            available: case.canary.1,
        }),
        stable: Some(ReplicaSetCounts {
            spec: case.stable.0,
            available: case.stable.1,
        }),
        other_replicas: case.older,
    })
}

#[test]
fn basic_canary_moves_towards_the_weight_within_surge_and_availability() {
    let cases = [
        BasicCase {
            name: "more available than desired does not count extra pods",
            replicas: 10,
            weight: 100,
            surge: int(3),
            unavailable: int(0),
            stable: (7, 8),
            canary: (6, 3),
            older: 0,
            expected_stable: 7,
            expected_canary: 6,
        },
        BasicCase {
            name: "int surge scales the canary up",
            replicas: 10,
            weight: 20,
            surge: int(2),
            unavailable: int(0),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 10,
            expected_canary: 2,
        },
        BasicCase {
            name: "percent surge scales the canary up",
            replicas: 10,
            weight: 20,
            surge: text("20%"),
            unavailable: int(0),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 10,
            expected_canary: 2,
        },
        BasicCase {
            name: "extra stable pods are scaled down",
            replicas: 10,
            weight: 20,
            surge: text("20%"),
            unavailable: int(0),
            stable: (10, 10),
            canary: (2, 2),
            older: 0,
            expected_stable: 8,
            expected_canary: 2,
        },
        BasicCase {
            name: "never past maxSurge",
            replicas: 10,
            weight: 30,
            surge: int(2),
            unavailable: int(0),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 10,
            expected_canary: 2,
        },
        BasicCase {
            name: "int unavailable scales the stable down first",
            replicas: 10,
            weight: 20,
            surge: int(0),
            unavailable: int(2),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 8,
            expected_canary: 0,
        },
        BasicCase {
            name: "percent unavailable scales the stable down first",
            replicas: 10,
            weight: 20,
            surge: int(0),
            unavailable: text("20%"),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 8,
            expected_canary: 0,
        },
        BasicCase {
            name: "never past maxUnavailable",
            replicas: 10,
            weight: 30,
            surge: int(0),
            unavailable: int(2),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 8,
            expected_canary: 0,
        },
        BasicCase {
            name: "surge and unavailable together",
            replicas: 10,
            weight: 50,
            surge: int(2),
            unavailable: int(1),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 9,
            expected_canary: 2,
        },
        BasicCase {
            name: "weight 0 scales the canary to zero",
            replicas: 10,
            weight: 0,
            surge: int(1),
            unavailable: int(1),
            stable: (10, 10),
            canary: (1, 1),
            older: 0,
            expected_stable: 10,
            expected_canary: 0,
        },
        BasicCase {
            name: "weight 100 scales the stable to zero",
            replicas: 10,
            weight: 100,
            surge: int(1),
            unavailable: int(1),
            stable: (1, 1),
            canary: (10, 10),
            older: 0,
            expected_stable: 0,
            expected_canary: 10,
        },
        BasicCase {
            name: "one replica, weight 20: canary still gets a pod",
            replicas: 1,
            weight: 20,
            surge: int(1),
            unavailable: int(0),
            stable: (1, 1),
            canary: (0, 0),
            older: 0,
            expected_stable: 1,
            expected_canary: 1,
        },
        BasicCase {
            name: "one replica, weight 90: stable keeps its pod",
            replicas: 1,
            weight: 90,
            surge: int(1),
            unavailable: int(0),
            stable: (1, 1),
            canary: (0, 0),
            older: 0,
            expected_stable: 1,
            expected_canary: 1,
        },
        BasicCase {
            name: "stable scales up before the canary while older pods exist",
            replicas: 10,
            weight: 30,
            surge: int(1),
            unavailable: int(0),
            stable: (1, 1),
            canary: (0, 0),
            older: 3,
            expected_stable: 7,
            expected_canary: 1,
        },
        BasicCase {
            name: "both scale down when over-provisioned",
            replicas: 10,
            weight: 30,
            surge: int(0),
            unavailable: int(3),
            stable: (8, 5),
            canary: (4, 4),
            older: 0,
            expected_stable: 7,
            expected_canary: 3,
        },
        BasicCase {
            name: "unavailable stable pods are given up for the canary",
            replicas: 10,
            weight: 100,
            surge: int(1),
            unavailable: int(0),
            stable: (10, 2),
            canary: (10, 8),
            older: 0,
            expected_stable: 2,
            expected_canary: 9,
        },
        BasicCase {
            name: "older ReplicaSets are scaled down first",
            replicas: 10,
            weight: 30,
            surge: int(0),
            unavailable: int(1),
            stable: (8, 6),
            canary: (4, 2),
            older: 3,
            expected_stable: 8,
            expected_canary: 4,
        },
        BasicCase {
            name: "uneven weight does not round past maxSurge 0",
            replicas: 10,
            weight: 5,
            surge: int(0),
            unavailable: int(1),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 9,
            expected_canary: 0,
        },
        BasicCase {
            name: "uneven weight, second pass adds the canary pod",
            replicas: 10,
            weight: 5,
            surge: int(0),
            unavailable: int(1),
            stable: (9, 9),
            canary: (0, 0),
            older: 0,
            expected_stable: 9,
            expected_canary: 1,
        },
        BasicCase {
            name: "0% surge and 0% unavailable fall back to unavailable 1",
            replicas: 10,
            weight: 10,
            surge: text("0%"),
            unavailable: text("0%"),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 9,
            expected_canary: 0,
        },
        BasicCase {
            name: "surge honoured while the stable is unavailable",
            replicas: 4,
            weight: 100,
            surge: int(1),
            unavailable: int(0),
            stable: (4, 1),
            canary: (0, 0),
            older: 0,
            expected_stable: 4,
            expected_canary: 1,
        },
        BasicCase {
            name: "three replicas at 99% with surge 0: stable drops to the budget",
            replicas: 3,
            weight: 99,
            surge: int(0),
            unavailable: int(2),
            stable: (3, 3),
            canary: (0, 0),
            older: 0,
            expected_stable: 1,
            expected_canary: 0,
        },
        BasicCase {
            name: "three replicas at 99%, second pass fills the canary",
            replicas: 3,
            weight: 99,
            surge: int(0),
            unavailable: int(2),
            stable: (1, 1),
            canary: (0, 0),
            older: 0,
            expected_stable: 1,
            expected_canary: 2,
        },
        BasicCase {
            name: "unavailable honoured while the stable is unavailable",
            replicas: 4,
            weight: 100,
            surge: int(1),
            unavailable: int(0),
            stable: (4, 1),
            canary: (1, 1),
            older: 0,
            expected_stable: 3,
            expected_canary: 1,
        },
        BasicCase {
            name: "abort: surge the stable before touching the canary",
            replicas: 4,
            weight: 0,
            surge: int(1),
            unavailable: int(0),
            stable: (0, 0),
            canary: (4, 4),
            older: 0,
            expected_stable: 1,
            expected_canary: 4,
        },
        BasicCase {
            name: "abort: wait for the surged stable pod to be available",
            replicas: 4,
            weight: 0,
            surge: int(1),
            unavailable: int(0),
            stable: (1, 0),
            canary: (4, 4),
            older: 0,
            expected_stable: 1,
            expected_canary: 4,
        },
        BasicCase {
            name: "abort: shrink the canary by one once the stable pod is up",
            replicas: 4,
            weight: 0,
            surge: int(1),
            unavailable: int(0),
            stable: (1, 1),
            canary: (4, 4),
            older: 0,
            expected_stable: 1,
            expected_canary: 3,
        },
        BasicCase {
            name: "full promotion ignores the step weight",
            replicas: 4,
            weight: 100,
            surge: int(4),
            unavailable: int(4),
            stable: (4, 4),
            canary: (0, 0),
            older: 0,
            expected_stable: 0,
            expected_canary: 4,
        },
        BasicCase {
            name: "full promotion still honours the surge budget",
            replicas: 4,
            weight: 100,
            surge: int(3),
            unavailable: int(0),
            stable: (4, 4),
            canary: (0, 0),
            older: 0,
            expected_stable: 4,
            expected_canary: 3,
        },
        BasicCase {
            name: "zero replicas stay at zero",
            replicas: 0,
            weight: 50,
            surge: int(1),
            unavailable: int(0),
            stable: (0, 0),
            canary: (0, 0),
            older: 0,
            expected_stable: 0,
            expected_canary: 0,
        },
        BasicCase {
            name: "odd count at 50% ties upward to the canary",
            replicas: 5,
            weight: 50,
            surge: int(0),
            unavailable: int(5),
            stable: (5, 5),
            canary: (0, 0),
            older: 0,
            expected_stable: 2,
            expected_canary: 0,
        },
        BasicCase {
            name: "odd count at 50%, second pass: canary 3 stable 2",
            replicas: 5,
            weight: 50,
            surge: int(0),
            unavailable: int(5),
            stable: (2, 2),
            canary: (0, 0),
            older: 0,
            expected_stable: 2,
            expected_canary: 3,
        },
        BasicCase {
            name: "default 25% fenceposts at weight 20 of 10",
            replicas: 10,
            weight: 20,
            surge: text("25%"),
            unavailable: text("25%"),
            stable: (10, 10),
            canary: (0, 0),
            older: 0,
            expected_stable: 8,
            expected_canary: 2,
        },
    ];
    for case in &cases {
        let counts = basic(case);
        assert_eq!(
            (counts.stable, counts.canary),
            (case.expected_stable, case.expected_canary),
            "{}",
            case.name
        );
    }
}

#[test]
fn basic_canary_without_distinct_stable_goes_to_full_size() {
    let fenceposts = canary_fenceposts(&int(0), &int(1), 10);
    let counts = basic_canary_counts(&BasicCanaryInput {
        replicas: 10,
        weight: 10,
        fenceposts,
        canary: Some(ReplicaSetCounts {
            spec: 9,
            available: 9,
        }),
        stable: None,
        other_replicas: 0,
    });
    assert_eq!(
        counts,
        CanaryCounts {
            canary: 10,
            stable: 0
        },
        "no stable: canary to 100%"
    );
}

#[test]
fn closest_split_approximation_with_ties_upward() {
    // (replicas, weight, maxSurge, canary, stable)
    let cases: [(i32, i32, i32, i32, i32); 57] = [
        (0, 0, 0, 0, 0),
        (0, 50, 0, 0, 0),
        (0, 100, 0, 0, 0),
        (0, 0, 1, 0, 0),
        (0, 50, 1, 0, 0),
        (0, 100, 1, 0, 0),
        (1, 0, 0, 0, 1),
        (1, 1, 0, 0, 1),
        (1, 49, 0, 0, 1),
        (1, 50, 0, 1, 0),
        (1, 99, 0, 1, 0),
        (1, 100, 0, 1, 0),
        (1, 0, 1, 0, 1),
        (1, 1, 1, 1, 1),
        (1, 49, 1, 1, 1),
        (1, 50, 1, 1, 1),
        (1, 99, 1, 1, 1),
        (1, 100, 1, 1, 0),
        (2, 0, 0, 0, 2),
        (2, 1, 0, 1, 1),
        (2, 50, 0, 1, 1),
        (2, 99, 0, 1, 1),
        (2, 100, 0, 2, 0),
        (2, 0, 1, 0, 2),
        (2, 1, 1, 1, 2),
        (2, 50, 1, 1, 1),
        (2, 99, 1, 2, 1),
        (2, 100, 1, 2, 0),
        (3, 10, 0, 1, 2),
        (3, 25, 0, 1, 2),
        (3, 33, 0, 1, 2),
        (3, 34, 0, 1, 2),
        (3, 49, 0, 1, 2),
        (3, 50, 0, 2, 1),
        (3, 10, 1, 1, 3),
        (3, 25, 1, 1, 3),
        (3, 33, 1, 1, 2),
        (3, 34, 1, 1, 2),
        (3, 49, 1, 2, 2),
        (3, 50, 1, 2, 2),
        (10, 0, 1, 0, 10),
        (10, 1, 0, 1, 9),
        (10, 14, 0, 1, 9),
        (10, 15, 0, 2, 8),
        (10, 16, 0, 2, 8),
        (10, 99, 0, 9, 1),
        (10, 100, 1, 10, 0),
        (10, 0, 1, 0, 10),
        (10, 1, 1, 1, 10),
        (10, 18, 1, 2, 9),
        (10, 19, 1, 2, 9),
        (10, 20, 1, 2, 8),
        (10, 23, 1, 2, 8),
        (10, 24, 1, 3, 8),
        (10, 25, 1, 3, 8),
        (10, 99, 1, 10, 1),
        (10, 100, 1, 10, 0),
    ];
    for (replicas, weight, surge, canary, stable) in cases {
        assert_eq!(
            approximate_weighted_counts(replicas, weight, surge),
            CanaryCounts { canary, stable },
            "replicas {replicas}, weight {weight}, surge {surge}"
        );
    }
}

struct RoutedCase {
    name: &'static str,
    input: TrafficRoutedInput,
    expected: (i32, i32),
}

fn routed(replicas: i32, weight: i32) -> TrafficRoutedInput {
    TrafficRoutedInput {
        replicas,
        weight,
        max_weight: 100,
        explicit_canary_replicas: None,
        dynamic_stable_scale: false,
        min_pods_per_replica_set: None,
        current_weights: None,
        aborted: false,
    }
}

#[test]
fn traffic_routed_canary_sizes() {
    let cases = [
        RoutedCase {
            name: "canary rounds up, stable stays full",
            input: routed(10, 10),
            expected: (1, 10),
        },
        RoutedCase {
            name: "5% of 10 rounds up to one pod",
            input: routed(10, 5),
            expected: (1, 10),
        },
        RoutedCase {
            name: "weight 0 means no canary pod",
            input: routed(10, 0),
            expected: (0, 10),
        },
        RoutedCase {
            name: "odd count at 50% rounds up",
            input: routed(3, 50),
            expected: (2, 3),
        },
        RoutedCase {
            name: "one replica at 1%",
            input: routed(1, 1),
            expected: (1, 1),
        },
        RoutedCase {
            name: "maxTrafficWeight 1000: 250 of 1000 on 4 replicas",
            input: TrafficRoutedInput {
                max_weight: 1000,
                ..routed(4, 250)
            },
            expected: (1, 4),
        },
        RoutedCase {
            name: "setCanaryScale replicas overrides the weight",
            input: TrafficRoutedInput {
                explicit_canary_replicas: Some(9),
                ..routed(1, 0)
            },
            expected: (9, 1),
        },
        RoutedCase {
            name: "setCanaryScale weight 200 doubles the size",
            input: routed(4, 200),
            expected: (8, 4),
        },
        RoutedCase {
            name: "minPodsPerReplicaSet lifts a small canary",
            input: TrafficRoutedInput {
                min_pods_per_replica_set: Some(2),
                ..routed(10, 5)
            },
            expected: (2, 10),
        },
        RoutedCase {
            name: "minPodsPerReplicaSet leaves a zero canary at zero",
            input: TrafficRoutedInput {
                min_pods_per_replica_set: Some(2),
                ..routed(10, 0)
            },
            expected: (0, 10),
        },
        RoutedCase {
            name: "dynamic stable scale follows the actual stable weight",
            input: TrafficRoutedInput {
                dynamic_stable_scale: true,
                current_weights: Some((10, 90)),
                ..routed(10, 10)
            },
            expected: (1, 9),
        },
        RoutedCase {
            name: "dynamic stable scale keeps the larger of desired and actual stable",
            input: TrafficRoutedInput {
                dynamic_stable_scale: true,
                current_weights: Some((10, 90)),
                ..routed(10, 20)
            },
            expected: (2, 9),
        },
        RoutedCase {
            name: "dynamic abort keeps canary pods while traffic is on them",
            input: TrafficRoutedInput {
                dynamic_stable_scale: true,
                aborted: true,
                current_weights: Some((20, 80)),
                ..routed(10, 0)
            },
            expected: (2, 10),
        },
        RoutedCase {
            name: "dynamic abort shrinks the canary as traffic leaves",
            input: TrafficRoutedInput {
                dynamic_stable_scale: true,
                aborted: true,
                current_weights: Some((10, 90)),
                ..routed(10, 0)
            },
            expected: (1, 10),
        },
        RoutedCase {
            name: "dynamic stable scale without known weights uses the desired split",
            input: TrafficRoutedInput {
                dynamic_stable_scale: true,
                ..routed(10, 30)
            },
            expected: (3, 7),
        },
    ];
    for case in cases {
        let counts = traffic_routed_counts(&case.input);
        assert_eq!(
            (counts.canary, counts.stable),
            case.expected,
            "{}",
            case.name
        );
    }
}

#[test]
fn traffic_weight_to_replicas_rounds_up() {
    let cases = [
        (10, 0, 0),
        (10, 20, 2),
        (10, 25, 3),
        (10, 33, 4),
        (10, 99, 10),
        (10, 100, 10),
        (0, 50, 0),
    ];
    for (replicas, weight, expected) in cases {
        assert_eq!(
            traffic_weight_to_replicas(replicas, weight, 100),
            expected,
            "{weight}% of {replicas}"
        );
    }
}

#[test]
fn replica_progress_threshold_defaults_to_every_desired_pod() {
    let percent = ReplicaProgressThreshold {
        type_: ProgressThresholdType::Percent,
        value: 50,
    };
    let pods = ReplicaProgressThreshold {
        type_: ProgressThresholdType::Pods,
        value: 2,
    };
    assert_eq!(progress_threshold(5, None), 5, "default is 100%");
    assert_eq!(
        progress_threshold(5, Some(&percent)),
        3,
        "50% of 5 rounds up"
    );
    assert_eq!(progress_threshold(5, Some(&pods)), 2, "absolute pods");
    assert_eq!(
        progress_threshold(1, Some(&pods)),
        1,
        "never more than desired"
    );
}
