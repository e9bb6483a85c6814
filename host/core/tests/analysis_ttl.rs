//! `ttlStrategy`: when a completed AnalysisRun is deleted, and the requeue that waits for it.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sluice_api::analysis::AnalysisPhase::{self, *};
use sluice_api::analysis::{AnalysisRun, AnalysisRunStatus, TtlStrategy};
use sluice_core::analysis::{reconcile_run, ttl_expiry};

fn completed_at() -> Timestamp {
    Timestamp::from_second(1_767_225_600).expect("timestamp")
}

fn run(
    phase: Option<AnalysisPhase>,
    ttl: Option<(Option<i32>, Option<i32>, Option<i32>)>,
) -> AnalysisRun {
    let mut run: AnalysisRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "run", "namespace": "shop"},
        "spec": {"metrics": [{"name": "m", "provider": {"plugin": {"echo": {}}}}]},
    }))
    .expect("a run");
    run.spec.ttl_strategy = ttl.map(|(completion, success, failure)| TtlStrategy {
        seconds_after_completion: completion,
        seconds_after_success: success,
        seconds_after_failure: failure,
    });
    run.status = Some(AnalysisRunStatus {
        phase,
        completed_at: phase
            .filter(|p| p.is_completed())
            .map(|_| Time(completed_at())),
        ..AnalysisRunStatus::default()
    });
    run
}

#[test]
fn ttl_expiry_table() {
    let after = |seconds: i64| Some(completed_at() + SignedDuration::from_secs(seconds));
    let cases = [
        ("no ttlStrategy: kept", run(Some(Successful), None), None),
        (
            "a running run is never expired",
            run(Some(Running), Some((Some(5), None, None))),
            None,
        ),
        (
            "completion applies to success",
            run(Some(Successful), Some((Some(5), None, None))),
            after(5),
        ),
        (
            "completion applies to failure",
            run(Some(Failed), Some((Some(5), None, None))),
            after(5),
        ),
        (
            "success-specific wins on success",
            run(Some(Successful), Some((Some(5), Some(1), Some(9)))),
            after(1),
        ),
        (
            "failure-specific wins on Failed",
            run(Some(Failed), Some((Some(5), Some(1), Some(9)))),
            after(9),
        ),
        (
            "Error counts as a failure",
            run(Some(Error), Some((None, Some(1), Some(9)))),
            after(9),
        ),
        (
            "Inconclusive counts as a failure",
            run(Some(Inconclusive), Some((None, Some(1), Some(9)))),
            after(9),
        ),
        (
            "only a failure TTL keeps successful runs",
            run(Some(Successful), Some((None, None, Some(9)))),
            None,
        ),
        (
            "a negative TTL expires at completion",
            run(Some(Failed), Some((Some(-3), None, None))),
            after(0),
        ),
    ];
    for (name, run, expected) in cases {
        assert_eq!(ttl_expiry(&run), expected, "{name}");
    }
}

#[test]
fn a_completed_run_with_a_ttl_is_reconciled_again_when_it_expires() {
    let run = run(Some(Successful), Some((None, Some(30), None)));
    let now = completed_at() + SignedDuration::from_secs(10);
    let decision = reconcile_run(&run, now);
    assert!(decision.is_idle());
    assert_eq!(
        decision.outcome.requeue_after,
        Some(Duration::from_secs(20))
    );
    let without_ttl = self::run(Some(Successful), None);
    assert_eq!(reconcile_run(&without_ttl, now).outcome.requeue_after, None);
}
