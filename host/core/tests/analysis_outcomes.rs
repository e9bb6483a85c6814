//! Analysis outcomes: counters, limits, metric and run phases, dry runs, fast fail, terminate,
//! retention and scheduling, as Argo Rollouts decides them (inventory §2.2).
//!
//! Three kinds of tables:
//! - metric assessments from counters ([`assess_metric`] on a hand-made result);
//! - whole runs driven reconcile by reconcile with a scripted provider, checking the final
//!   status;
//! - scheduling: which tasks are due at a given time, and the requeue time.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sluice_api::analysis::{
    AnalysisPhase, AnalysisRun, AnalysisRunStatus, Measurement, Metric, MetricResult,
};
use sluice_core::analysis::{
    MeasurementAction, MeasurementReport, MeasurementTask, MetricLimits, assess_metric,
    reconcile_run, record_and_assess, record_measurement,
};

use AnalysisPhase::{Error, Failed, Inconclusive, Pending, Running, Successful};

// ---------------------------------------------------------------------------------------------
// helpers

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("timestamp")
}

fn at(seconds: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(seconds)
}

fn metric(fields: Value) -> Metric {
    let mut object = json!({"name": "m", "provider": {"prometheus": {"query": "up"}}});
    if let (Some(base), Some(extra)) = (object.as_object_mut(), fields.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(object).expect("metric")
}

fn run(spec: Value) -> AnalysisRun {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "run", "namespace": "default"},
        "spec": spec,
    }))
    .expect("analysis run")
}

fn finished(phase: AnalysisPhase, seconds: i64) -> Measurement {
    Measurement {
        phase: Some(phase),
        started_at: Some(Time(at(seconds))),
        finished_at: Some(Time(at(seconds))),
        ..Measurement::default()
    }
}

/// A result whose counters come from recording `phases` in order.
fn result_after(phases: &[AnalysisPhase]) -> MetricResult {
    let mut status = AnalysisRunStatus::default();
    let task = MeasurementTask {
        metric_name: "m".into(),
        metric_index: 0,
        dry_run: false,
        action: MeasurementAction::Run,
    };
    for (index, phase) in phases.iter().enumerate() {
        let seconds = i64::try_from(index).expect("index");
        record_measurement(
            &mut status,
            &task,
            finished(*phase, seconds),
            None,
            at(seconds),
        );
    }
    status.metric_results.pop().unwrap_or_else(|| MetricResult {
        name: "m".into(),
        phase: Some(Running),
        ..MetricResult::default()
    })
}

/// What a scripted provider answers, per metric, in order; `InFlight` leaves the measurement
/// running without `resumeAt`, `InFlightFor(s)` with a `resumeAt` s seconds later. When a script
/// runs out the provider answers Successful.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Done(AnalysisPhase),
    InFlight,
    InFlightFor(i64),
}

use Answer::{Done, InFlight, InFlightFor};

struct Driven {
    status: AnalysisRunStatus,
    reconciles: usize,
    calls: Vec<(String, &'static str)>,
    garbage_collected: Vec<(String, usize, usize)>,
}

/// Reconciles the run until it completes (or 300 reconciles), executing every task with the
/// script, advancing time to each requeue (at least 1 s). `terminate_at` sets `spec.terminate`
/// before that reconcile number.
fn drive(
    mut run: AnalysisRun,
    script: &[(&str, Vec<Answer>)],
    terminate_at: Option<usize>,
) -> Driven {
    let mut queues: BTreeMap<String, VecDeque<Answer>> = script
        .iter()
        .map(|(name, answers)| ((*name).to_string(), answers.iter().copied().collect()))
        .collect();
    let mut now = t0();
    let mut driven = Driven {
        status: AnalysisRunStatus::default(),
        reconciles: 0,
        calls: Vec::new(),
        garbage_collected: Vec::new(),
    };
    for reconcile in 0..300 {
        if terminate_at == Some(reconcile) {
            run.spec.terminate = true;
        }
        let decision = reconcile_run(&run, now);
        let outcome = if decision.is_idle() {
            decision.outcome
        } else {
            let reports = decision
                .tasks()
                .map(|task| {
                    let verb = match task.action {
                        MeasurementAction::Run => "run",
                        MeasurementAction::Resume(_) => "resume",
                        MeasurementAction::Terminate(_) => "terminate",
                    };
                    driven.calls.push((task.metric_name.clone(), verb));
                    let answer = match task.action {
                        MeasurementAction::Terminate(_) => Done(Successful),
                        _ => queues
                            .get_mut(&task.metric_name)
                            .and_then(VecDeque::pop_front)
                            .unwrap_or(Done(Successful)),
                    };
                    let measurement = match answer {
                        Done(phase) => Measurement {
                            phase: Some(phase),
                            started_at: Some(Time(now)),
                            message: (phase == Error).then(|| "provider unreachable".to_string()),
                            ..Measurement::default()
                        },
                        InFlight => Measurement {
                            phase: Some(Running),
                            started_at: Some(Time(now)),
                            ..Measurement::default()
                        },
                        InFlightFor(seconds) => Measurement {
                            phase: Some(Running),
                            started_at: Some(Time(now)),
                            resume_at: Some(Time(now + SignedDuration::from_secs(seconds))),
                            ..Measurement::default()
                        },
                    };
                    MeasurementReport {
                        task: task.clone(),
                        measurement,
                        provider_metadata: None,
                    }
                })
                .collect();
            record_and_assess(&run, reports, now)
        };
        driven.reconciles = reconcile + 1;
        for collected in &outcome.garbage_collect {
            driven.garbage_collected.push((
                collected.metric_name.clone(),
                collected.limit,
                collected.trimmed.len(),
            ));
        }
        run.status = Some(outcome.status.clone());
        driven.status = outcome.status;
        if driven.status.phase.is_some_and(AnalysisPhase::is_completed) {
            break;
        }
        let wait = outcome
            .requeue_after
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        now += SignedDuration::try_from(wait).expect("duration");
    }
    driven
}

fn metric_phase(status: &AnalysisRunStatus, name: &str) -> Option<AnalysisPhase> {
    status
        .metric_results
        .iter()
        .find(|result| result.name == name)
        .and_then(|result| result.phase)
}

// ---------------------------------------------------------------------------------------------
// counters

#[test]
fn counters_follow_the_argo_table() {
    // (name, recorded phases, [count, successful, failed, inconclusive, error, consecutiveError, consecutiveSuccess])
    let cases: &[(&str, &[AnalysisPhase], [i32; 7])] = &[
        (
            "successful counts and extends the success streak",
            &[Successful, Successful],
            [2, 2, 0, 0, 0, 0, 2],
        ),
        (
            "failed counts and resets both streaks",
            &[Successful, Failed],
            [2, 1, 1, 0, 0, 0, 0],
        ),
        (
            "inconclusive counts and resets both streaks",
            &[Successful, Inconclusive],
            [2, 1, 0, 1, 0, 0, 0],
        ),
        (
            "error does not increment count",
            &[Error, Error],
            [0, 0, 0, 0, 2, 2, 0],
        ),
        (
            "error resets the success streak",
            &[Successful, Successful, Error],
            [2, 2, 0, 0, 1, 1, 0],
        ),
        (
            "a success after errors resets consecutive errors",
            &[Error, Error, Successful],
            [1, 1, 0, 0, 2, 0, 1],
        ),
        (
            "a failure after errors resets consecutive errors",
            &[Error, Failed],
            [1, 0, 1, 0, 1, 0, 0],
        ),
        (
            "an in-flight measurement changes no counter",
            &[Running],
            [0, 0, 0, 0, 0, 0, 0],
        ),
    ];
    for (name, phases, expected) in cases {
        let result = result_after(phases);
        let actual = [
            result.count,
            result.successful,
            result.failed,
            result.inconclusive,
            result.error,
            result.consecutive_error,
            result.consecutive_success,
        ];
        assert_eq!(&actual, expected, "{name}");
    }
}

#[test]
fn a_completed_measurement_without_finished_at_gets_now() {
    let mut status = AnalysisRunStatus::default();
    let task = MeasurementTask {
        metric_name: "m".into(),
        metric_index: 0,
        dry_run: true,
        action: MeasurementAction::Run,
    };
    let measurement = Measurement {
        phase: Some(Successful),
        ..Measurement::default()
    };
    let metadata = BTreeMap::from([("ResolvedPrometheusQuery".to_string(), "up".to_string())]);
    record_measurement(
        &mut status,
        &task,
        measurement,
        Some(metadata.clone()),
        at(7),
    );
    let result = &status.metric_results[0];
    assert_eq!(result.measurements[0].finished_at, Some(Time(at(7))));
    assert!(result.dry_run, "new result carries the dry-run flag");
    assert_eq!(
        result.metadata, metadata,
        "provider metadata recorded on first measurement"
    );
    assert_eq!(result.phase, Some(Running));
}

#[test]
fn resume_and_terminate_replace_the_in_flight_measurement() {
    let mut status = AnalysisRunStatus::default();
    let in_flight = Measurement {
        phase: Some(Running),
        started_at: Some(Time(at(0))),
        ..Measurement::default()
    };
    let task = |action| MeasurementTask {
        metric_name: "m".into(),
        metric_index: 0,
        dry_run: false,
        action,
    };
    record_measurement(
        &mut status,
        &task(MeasurementAction::Run),
        in_flight.clone(),
        None,
        at(0),
    );
    record_measurement(
        &mut status,
        &task(MeasurementAction::Terminate(in_flight)),
        finished(Successful, 3),
        None,
        at(3),
    );
    let result = &status.metric_results[0];
    assert_eq!(result.measurements.len(), 1);
    assert_eq!(
        result.measurements[0].message.as_deref(),
        Some("Metric Terminated")
    );
    assert_eq!(result.count, 1);
}

// ---------------------------------------------------------------------------------------------
// metric assessment

#[test]
fn metric_phase_from_counters_and_limits() {
    struct Case {
        name: &'static str,
        metric: Value,
        phases: &'static [AnalysisPhase],
        terminating: bool,
        expected: AnalysisPhase,
        reason: Option<&'static str>,
    }
    let case = |name, metric, phases, terminating, expected, reason| Case {
        name,
        metric,
        phases,
        terminating,
        expected,
        reason,
    };
    let cases = [
        case(
            "no measurement yet is Pending",
            json!({}),
            &[],
            false,
            Pending,
            None,
        ),
        case(
            "no measurement while terminating is Successful",
            json!({}),
            &[],
            true,
            Successful,
            None,
        ),
        case(
            "an in-flight measurement is Running",
            json!({}),
            &[Running],
            false,
            Running,
            None,
        ),
        case(
            "single successful measurement reaches count 1",
            json!({}),
            &[Successful],
            false,
            Successful,
            None,
        ),
        case(
            "single failed measurement breaks failureLimit 0",
            json!({}),
            &[Failed],
            false,
            Failed,
            Some("failed (1) > failureLimit (0)"),
        ),
        case(
            "failures at the failureLimit keep running",
            json!({"interval": "1m", "count": 5, "failureLimit": 2}),
            &[Failed, Failed],
            false,
            Running,
            None,
        ),
        case(
            "failures over the failureLimit fail",
            json!({"interval": "1m", "count": 5, "failureLimit": 2}),
            &[Failed, Failed, Failed],
            false,
            Failed,
            Some("failed (3) > failureLimit (2)"),
        ),
        case(
            "failures within the limit succeed at count",
            json!({"interval": "1m", "count": 3, "failureLimit": 2}),
            &[Failed, Successful, Failed],
            false,
            Successful,
            None,
        ),
        case(
            "failureLimit -1 never fails on failures",
            json!({"interval": "1m", "failureLimit": -1, "consecutiveSuccessLimit": 2}),
            &[Failed, Failed, Failed, Failed],
            false,
            Running,
            None,
        ),
        case(
            "failureLimit as a numeric string",
            json!({"interval": "1m", "count": 5, "failureLimit": "1"}),
            &[Failed, Failed],
            false,
            Failed,
            Some("failed (2) > failureLimit (1)"),
        ),
        case(
            "inconclusive over inconclusiveLimit 0",
            json!({}),
            &[Inconclusive],
            false,
            Inconclusive,
            Some("inconclusive (1) > inconclusiveLimit (0)"),
        ),
        case(
            "inconclusive at inconclusiveLimit keeps running",
            json!({"interval": "1m", "count": 3, "inconclusiveLimit": 1}),
            &[Inconclusive],
            false,
            Running,
            None,
        ),
        case(
            "consecutive errors at the default limit 4 keep running",
            json!({}),
            &[Error, Error, Error, Error],
            false,
            Running,
            None,
        ),
        case(
            "consecutive errors over the default limit 4 error",
            json!({}),
            &[Error, Error, Error, Error, Error],
            false,
            Error,
            Some("consecutiveErrors (5) > consecutiveErrorLimit (4)"),
        ),
        case(
            "consecutiveErrorLimit 0 errors on the first error",
            json!({"consecutiveErrorLimit": 0}),
            &[Error],
            false,
            Error,
            Some("consecutiveErrors (1) > consecutiveErrorLimit (0)"),
        ),
        case(
            "errors interrupted by a success do not accumulate",
            json!({"interval": "1m", "count": 10, "consecutiveErrorLimit": 1}),
            &[Error, Successful, Error],
            false,
            Running,
            None,
        ),
        case(
            "when several limits break the last check wins: error over failed",
            json!({"interval": "1m", "count": 9, "consecutiveErrorLimit": 0}),
            &[Failed, Error],
            false,
            Error,
            Some("consecutiveErrors (1) > consecutiveErrorLimit (0)"),
        ),
        case(
            "when failed and inconclusive both break, inconclusive wins",
            json!({"interval": "1m", "count": 9}),
            &[Failed, Inconclusive],
            false,
            Inconclusive,
            Some("inconclusive (1) > inconclusiveLimit (0)"),
        ),
        case(
            "consecutiveSuccessLimit reached before count succeeds",
            json!({"interval": "1m", "count": 10, "consecutiveSuccessLimit": 2, "failureLimit": 5}),
            &[Failed, Successful, Successful],
            false,
            Successful,
            None,
        ),
        case(
            "consecutiveSuccessLimit not reached yet keeps running",
            json!({"interval": "1m", "count": 10, "consecutiveSuccessLimit": 3, "failureLimit": 5}),
            &[Successful, Successful],
            false,
            Running,
            None,
        ),
        case(
            "consecutiveSuccessLimit not reached at count is Inconclusive",
            json!({"interval": "1m", "count": 4, "consecutiveSuccessLimit": 2, "failureLimit": 2}),
            &[Successful, Failed, Successful, Failed],
            false,
            Inconclusive,
            Some(
                "consecutiveSuccess (0) < consecutiveSuccessLimit (2) after count (4) measurements",
            ),
        ),
        case(
            "consecutiveSuccessLimit not reached at count with failureLimit -1 is Failed",
            json!({"interval": "1m", "count": 3, "consecutiveSuccessLimit": 2, "failureLimit": -1}),
            &[Failed, Successful, Failed],
            false,
            Failed,
            Some(
                "consecutiveSuccess (0) < consecutiveSuccessLimit (2) after count (3) measurements",
            ),
        ),
        case(
            "unbounded metric keeps running",
            json!({"interval": "1m"}),
            &[Successful, Successful, Successful],
            false,
            Running,
            None,
        ),
        case(
            "unbounded metric is Successful when the run terminates",
            json!({"interval": "1m"}),
            &[Successful],
            true,
            Successful,
            None,
        ),
        case(
            "count 0 with an interval is unbounded",
            json!({"interval": "1m", "count": 0}),
            &[Successful, Successful],
            false,
            Running,
            None,
        ),
        case(
            "a limit breach wins over terminating",
            json!({"interval": "1m"}),
            &[Failed],
            true,
            Failed,
            Some("failed (1) > failureLimit (0)"),
        ),
    ];
    for case in cases {
        let metric = metric(case.metric);
        let limits = MetricLimits::of(&metric).expect("limits");
        let assessment = assess_metric(&limits, &result_after(case.phases), case.terminating);
        assert_eq!(assessment.phase, case.expected, "{}", case.name);
        assert_eq!(assessment.reason.as_deref(), case.reason, "{}", case.name);
    }
}

#[test]
fn a_completed_metric_phase_is_final() {
    let limits = MetricLimits::of(&metric(json!({}))).expect("limits");
    let mut result = result_after(&[Successful]);
    result.phase = Some(Failed);
    assert_eq!(assess_metric(&limits, &result, false).phase, Failed);
}

// ---------------------------------------------------------------------------------------------
// whole runs

struct RunCase {
    name: &'static str,
    spec: Value,
    script: Vec<(&'static str, Vec<Answer>)>,
    terminate_at: Option<usize>,
    phase: AnalysisPhase,
    message: Option<&'static str>,
    metrics: Vec<(&'static str, AnalysisPhase)>,
}

fn prom(name: &str, fields: Value) -> Value {
    let mut object = json!({"name": name, "provider": {"prometheus": {"query": "up"}}});
    if let (Some(base), Some(extra)) = (object.as_object_mut(), fields.as_object()) {
        base.extend(extra.clone());
    }
    object
}

#[test]
fn run_outcomes() {
    let cases = vec![
        RunCase {
            name: "single successful measurement: run Successful",
            spec: json!({"metrics": [prom("a", json!({}))]}),
            script: vec![("a", vec![Done(Successful)])],
            terminate_at: None,
            phase: Successful,
            message: None,
            metrics: vec![("a", Successful)],
        },
        RunCase {
            name: "failed measurement: run Failed with Argo's message",
            spec: json!({"metrics": [prom("a", json!({}))]}),
            script: vec![("a", vec![Done(Failed)])],
            terminate_at: None,
            phase: Failed,
            message: Some("Metric \"a\" assessed Failed due to failed (1) > failureLimit (0)"),
            metrics: vec![("a", Failed)],
        },
        RunCase {
            name: "worst-of: Failed beats Inconclusive",
            spec: json!({"metrics": [prom("a", json!({})), prom("b", json!({}))]}),
            script: vec![("a", vec![Done(Inconclusive)]), ("b", vec![Done(Failed)])],
            terminate_at: None,
            phase: Failed,
            message: Some("Metric \"b\" assessed Failed due to failed (1) > failureLimit (0)"),
            metrics: vec![("a", Inconclusive), ("b", Failed)],
        },
        RunCase {
            name: "worst-of: Error beats Inconclusive",
            spec: json!({"metrics": [prom("a", json!({})), prom("b", json!({"consecutiveErrorLimit": 0}))]}),
            script: vec![("a", vec![Done(Inconclusive)]), ("b", vec![Done(Error)])],
            terminate_at: None,
            phase: Error,
            message: Some(
                "Metric \"b\" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0): \"Error Message: provider unreachable\"",
            ),
            metrics: vec![("a", Inconclusive), ("b", Error)],
        },
        RunCase {
            name: "worst-of: Inconclusive beats Successful",
            spec: json!({"metrics": [prom("a", json!({})), prom("b", json!({}))]}),
            script: vec![
                ("a", vec![Done(Successful)]),
                ("b", vec![Done(Inconclusive)]),
            ],
            terminate_at: None,
            phase: Inconclusive,
            message: Some(
                "Metric \"b\" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)",
            ),
            metrics: vec![("a", Successful), ("b", Inconclusive)],
        },
        RunCase {
            name: "five consecutive errors with the default limit: run Error",
            spec: json!({"metrics": [prom("a", json!({}))]}),
            script: vec![("a", vec![Done(Error); 5])],
            terminate_at: None,
            phase: Error,
            message: Some(
                "Metric \"a\" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4): \"Error Message: provider unreachable\"",
            ),
            metrics: vec![("a", Error)],
        },
        RunCase {
            name: "four errors then a success: errors retried, run Successful",
            spec: json!({"metrics": [prom("a", json!({}))]}),
            script: vec![(
                "a",
                vec![
                    Done(Error),
                    Done(Error),
                    Done(Error),
                    Done(Error),
                    Done(Successful),
                ],
            )],
            terminate_at: None,
            phase: Successful,
            message: None,
            metrics: vec![("a", Successful)],
        },
        RunCase {
            name: "dry-run failure does not affect the run",
            spec: json!({"metrics": [prom("a", json!({})), prom("b", json!({}))], "dryRun": [{"metricName": "b"}]}),
            script: vec![("a", vec![Done(Successful)]), ("b", vec![Done(Failed)])],
            terminate_at: None,
            phase: Successful,
            message: None,
            metrics: vec![("a", Successful), ("b", Failed)],
        },
        RunCase {
            name: "only dry-run metrics: run Successful even when they fail",
            spec: json!({"metrics": [prom("a", json!({}))], "dryRun": [{"metricName": ".*"}]}),
            script: vec![("a", vec![Done(Failed)])],
            terminate_at: None,
            phase: Successful,
            message: None,
            metrics: vec![("a", Failed)],
        },
        RunCase {
            name: "fast fail: a failing metric stops an unbounded one, which ends Successful",
            spec: json!({"metrics": [prom("a", json!({"interval": "10s"})), prom("b", json!({"interval": "10s"}))]}),
            script: vec![("a", vec![Done(Successful), Done(Failed)])],
            terminate_at: None,
            phase: Failed,
            message: Some("Metric \"a\" assessed Failed due to failed (1) > failureLimit (0)"),
            metrics: vec![("a", Failed), ("b", Successful)],
        },
        RunCase {
            name: "fast fail terminates an in-flight measurement of another metric",
            spec: json!({"metrics": [prom("a", json!({})), prom("b", json!({}))]}),
            script: vec![("a", vec![Done(Failed)]), ("b", vec![InFlight])],
            terminate_at: None,
            phase: Failed,
            message: Some("Metric \"a\" assessed Failed due to failed (1) > failureLimit (0)"),
            metrics: vec![("a", Failed), ("b", Successful)],
        },
        RunCase {
            name: "fast fail while another measurement waits for resumeAt: Failed at once, as Argo leaves it in flight",
            spec: json!({"metrics": [prom("a", json!({})), prom("b", json!({}))]}),
            script: vec![("a", vec![Done(Failed)]), ("b", vec![InFlightFor(30)])],
            terminate_at: None,
            phase: Failed,
            message: Some("Metric \"a\" assessed Failed due to failed (1) > failureLimit (0)"),
            metrics: vec![("a", Failed), ("b", Running)],
        },
        RunCase {
            name: "a dry-run failure does not fast-fail the others",
            spec: json!({"metrics": [prom("a", json!({"interval": "10s", "count": 3})), prom("b", json!({}))], "dryRun": [{"metricName": "b"}]}),
            script: vec![("b", vec![Done(Failed)])],
            terminate_at: None,
            phase: Successful,
            message: None,
            metrics: vec![("a", Successful), ("b", Failed)],
        },
        RunCase {
            name: "terminate with nothing bad: Successful with Run Terminated",
            spec: json!({"metrics": [prom("a", json!({"interval": "10s"}))]}),
            script: vec![],
            terminate_at: Some(3),
            phase: Successful,
            message: Some("Run Terminated"),
            metrics: vec![("a", Successful)],
        },
        RunCase {
            name: "terminate before any measurement: Successful",
            spec: json!({"metrics": [prom("a", json!({"initialDelay": "1h"}))]}),
            script: vec![],
            terminate_at: Some(1),
            phase: Successful,
            message: Some("Run Terminated"),
            metrics: vec![],
        },
        RunCase {
            name: "terminate after a tolerated inconclusive measurement: Successful",
            spec: json!({"metrics": [prom("a", json!({"interval": "10s", "inconclusiveLimit": 1})), prom("b", json!({"interval": "10s"}))]}),
            script: vec![("a", vec![Done(Inconclusive)])],
            terminate_at: Some(3),
            phase: Successful,
            message: Some("Run Terminated"),
            metrics: vec![("a", Successful), ("b", Successful)],
        },
        RunCase {
            name: "count with interval: three measurements then Successful",
            spec: json!({"metrics": [prom("a", json!({"interval": "10s", "count": 3}))]}),
            script: vec![],
            terminate_at: None,
            phase: Successful,
            message: None,
            metrics: vec![("a", Successful)],
        },
        RunCase {
            name: "consecutiveSuccessLimit with failureLimit -1 waits for the streak",
            spec: json!({"metrics": [prom("a", json!({"interval": "10s", "failureLimit": -1, "consecutiveSuccessLimit": 2}))]}),
            script: vec![(
                "a",
                vec![
                    Done(Failed),
                    Done(Failed),
                    Done(Successful),
                    Done(Failed),
                    Done(Successful),
                    Done(Successful),
                ],
            )],
            terminate_at: None,
            phase: Successful,
            message: None,
            metrics: vec![("a", Successful)],
        },
        RunCase {
            name: "consecutiveSuccessLimit missed at count: run Inconclusive",
            spec: json!({"metrics": [prom("a", json!({"interval": "10s", "count": 3, "failureLimit": 1, "consecutiveSuccessLimit": 2}))]}),
            script: vec![("a", vec![Done(Successful), Done(Failed), Done(Successful)])],
            terminate_at: None,
            phase: Inconclusive,
            message: Some(
                "Metric \"a\" assessed Inconclusive due to consecutiveSuccess (1) < consecutiveSuccessLimit (2) after count (3) measurements",
            ),
            metrics: vec![("a", Inconclusive)],
        },
        RunCase {
            name: "an undeclared placeholder errors the run with Argo's message",
            spec: json!({"metrics": [prom("a", json!({"provider": {"prometheus": {"query": "up{job=\"{{args.job}}\"}"}}}))]}),
            script: vec![],
            terminate_at: None,
            phase: Error,
            message: Some("Unable to resolve metric arguments: failed to resolve {{args.job}}"),
            metrics: vec![],
        },
        RunCase {
            name: "an invalid metric errors the run with Argo's message",
            spec: json!({"metrics": [prom("a", json!({"count": 2}))]}),
            script: vec![],
            terminate_at: None,
            phase: Error,
            message: Some(
                "Analysis spec invalid: metrics[0]: interval must be specified when count > 1",
            ),
            metrics: vec![],
        },
        RunCase {
            name: "a dry-run rule matching nothing errors the run",
            spec: json!({"metrics": [prom("a", json!({}))], "dryRun": [{"metricName": "nope"}]}),
            script: vec![],
            terminate_at: None,
            phase: Error,
            message: Some("Analysis spec invalid: dryRun[0]: Rule didn't match any metric name(s)"),
            metrics: vec![],
        },
    ];
    for case in cases {
        let driven = drive(run(case.spec), &case.script, case.terminate_at);
        assert_eq!(driven.status.phase, Some(case.phase), "{}", case.name);
        assert_eq!(
            driven.status.message.as_deref(),
            case.message,
            "{}",
            case.name
        );
        for (metric, phase) in &case.metrics {
            assert_eq!(
                metric_phase(&driven.status, metric),
                Some(*phase),
                "{}: metric {metric}",
                case.name
            );
        }
        assert!(
            driven.status.completed_at.is_some(),
            "{}: completedAt is set on completion",
            case.name
        );
    }
}

#[test]
fn fast_fail_on_inconclusive_ends_the_run_inconclusive() {
    // a goes Inconclusive (limit 0) while b is unbounded: the run fast-fails Inconclusive.
    let spec = json!({"metrics": [prom("a", json!({"interval": "10s"})), prom("b", json!({"interval": "10s"}))]});
    let driven = drive(run(spec), &[("a", vec![Done(Inconclusive)])], None);
    assert_eq!(driven.status.phase, Some(Inconclusive));
    assert_eq!(metric_phase(&driven.status, "b"), Some(Successful));
    assert_eq!(
        driven.status.message.as_deref(),
        Some("Metric \"a\" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)")
    );
}

#[test]
fn summaries_count_run_and_dry_run_metrics_apart() {
    let spec = json!({
        "metrics": [prom("a", json!({})), prom("b", json!({})), prom("c", json!({}))],
        "dryRun": [{"metricName": "c"}],
    });
    let driven = drive(
        run(spec),
        &[
            ("a", vec![Done(Successful)]),
            ("b", vec![Done(Successful)]),
            ("c", vec![Done(Failed)]),
        ],
        None,
    );
    let summary = driven.status.run_summary.expect("run summary");
    assert_eq!(
        (summary.count, summary.successful, summary.failed),
        (2, 2, 0)
    );
    let dry = driven.status.dry_run_summary.expect("dry-run summary");
    assert_eq!((dry.count, dry.successful, dry.failed), (1, 0, 1));
    let c = driven
        .status
        .metric_results
        .iter()
        .find(|r| r.name == "c")
        .expect("c");
    assert!(c.dry_run);
    assert_eq!(
        c.message.as_deref(),
        Some("Metric assessed Failed due to failed (1) > failureLimit (0)")
    );
}

#[test]
fn fast_fail_completes_in_the_reconcile_that_sees_the_failure() {
    let spec = json!({"metrics": [prom("a", json!({})), prom("b", json!({"interval": "1h"}))]});
    let analysis_run = run(spec);
    let decision = reconcile_run(&analysis_run, t0());
    assert_eq!(decision.measurements_to_take.len(), 2);
    let reports = decision
        .tasks()
        .map(|task| MeasurementReport {
            task: task.clone(),
            measurement: finished(
                if task.metric_name == "a" {
                    Failed
                } else {
                    Successful
                },
                0,
            ),
            provider_metadata: None,
        })
        .collect();
    let outcome = record_and_assess(&analysis_run, reports, t0());
    assert_eq!(outcome.status.phase, Some(Failed));
    assert_eq!(metric_phase(&outcome.status, "b"), Some(Successful));
    let reasons: Vec<&str> = outcome
        .events
        .iter()
        .map(|event| event.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        ["MetricFailed", "MetricSuccessful", "AnalysisRunFailed"]
    );
    assert!(
        outcome
            .events
            .iter()
            .filter(|event| event.reason.ends_with("Failed"))
            .all(|event| event.warning)
    );
}

#[test]
fn fast_fail_with_measurements_in_flight_requeues_at_once_then_terminates_them() {
    let spec = json!({"metrics": [prom("a", json!({})), prom("b", json!({}))]});
    let driven = drive(
        run(spec),
        &[("a", vec![Done(Failed)]), ("b", vec![InFlight])],
        None,
    );
    assert_eq!(
        driven.reconciles, 2,
        "one reconcile sees the failure, the next terminates b"
    );
    assert_eq!(driven.status.phase, Some(Failed));
    assert!(
        driven.calls.contains(&("b".to_string(), "terminate")),
        "calls: {:?}",
        driven.calls
    );
    let b = driven
        .status
        .metric_results
        .iter()
        .find(|r| r.name == "b")
        .expect("b");
    assert_eq!(b.measurements.len(), 1);
    assert_eq!(
        b.measurements[0].message.as_deref(),
        Some("Metric Terminated")
    );
}

#[test]
fn retention_trims_history_and_reports_garbage_collection() {
    struct Case {
        name: &'static str,
        retention: Value,
        expected_kept: usize,
    }
    let cases = [
        Case {
            name: "default keeps 10 measurements",
            retention: json!([]),
            expected_kept: 10,
        },
        Case {
            name: "a rule by metric name keeps its limit",
            retention: json!([{"metricName": "a", "limit": 3}]),
            expected_kept: 3,
        },
        Case {
            name: "a regex rule applies",
            retention: json!([{"metricName": ".*", "limit": 4}]),
            expected_kept: 4,
        },
        Case {
            name: "a wildcard rule applies",
            retention: json!([{"metricName": "*", "limit": 2}]),
            expected_kept: 2,
        },
        Case {
            name: "a zero limit falls back to 10",
            retention: json!([{"metricName": "a", "limit": 0}]),
            expected_kept: 10,
        },
    ];
    for case in cases {
        let spec = json!({
            "metrics": [prom("a", json!({"interval": "10s", "count": 12}))],
            "measurementRetention": case.retention,
        });
        let driven = drive(run(spec), &[], None);
        assert_eq!(driven.status.phase, Some(Successful), "{}", case.name);
        let a = &driven.status.metric_results[0];
        assert_eq!(a.measurements.len(), case.expected_kept, "{}", case.name);
        assert_eq!(a.count, 12, "{}: counters survive trimming", case.name);
        let trimmed: usize = driven
            .garbage_collected
            .iter()
            .map(|(_, _, trimmed)| trimmed)
            .sum();
        assert_eq!(trimmed, 12 - case.expected_kept, "{}", case.name);
        assert!(
            driven
                .garbage_collected
                .iter()
                .all(|(name, limit, _)| name == "a" && *limit == case.expected_kept),
            "{}",
            case.name
        );
    }
}

#[test]
fn started_at_is_set_on_the_first_reconcile() {
    let analysis_run = run(json!({"metrics": [prom("a", json!({"initialDelay": "30s"}))]}));
    let decision = reconcile_run(&analysis_run, at(5));
    assert!(
        decision.is_idle(),
        "initial delay counts from startedAt, unset on the first reconcile"
    );
    assert_eq!(decision.outcome.status.started_at, Some(Time(at(5))));
    assert_eq!(decision.outcome.status.phase, Some(Running));
    assert_eq!(
        decision.outcome.requeue_after,
        Some(Duration::from_secs(30))
    );
}

#[test]
fn a_completed_run_needs_nothing() {
    let mut analysis_run = run(json!({"metrics": [prom("a", json!({}))]}));
    analysis_run.status = Some(AnalysisRunStatus {
        phase: Some(Failed),
        ..AnalysisRunStatus::default()
    });
    let decision = reconcile_run(&analysis_run, t0());
    assert!(decision.is_idle());
    assert_eq!(
        decision.outcome.status,
        analysis_run.status.unwrap_or_default()
    );
    assert_eq!(decision.outcome.requeue_after, None);
}

// ---------------------------------------------------------------------------------------------
// scheduling

fn status_with(results: Vec<MetricResult>, started_at: i64) -> AnalysisRunStatus {
    AnalysisRunStatus {
        phase: Some(Running),
        started_at: Some(Time(at(started_at))),
        metric_results: results,
        ..AnalysisRunStatus::default()
    }
}

fn running_result(name: &str, measurements: Vec<Measurement>, count: i32) -> MetricResult {
    MetricResult {
        name: name.into(),
        phase: Some(Running),
        count,
        measurements,
        ..MetricResult::default()
    }
}

#[test]
fn scheduling() {
    struct Case {
        name: &'static str,
        metric: Value,
        terminate: bool,
        status: AnalysisRunStatus,
        now: i64,
        expected_task: Option<&'static str>,
        expected_requeue: Option<u64>,
    }
    let in_flight = |resume_at: Option<i64>| Measurement {
        phase: Some(Running),
        started_at: Some(Time(at(0))),
        resume_at: resume_at.map(|seconds| Time(at(seconds))),
        ..Measurement::default()
    };
    let cases = vec![
        Case {
            name: "first measurement is due at once without initialDelay",
            metric: json!({"interval": "30s"}),
            terminate: false,
            status: status_with(vec![], 0),
            now: 0,
            expected_task: Some("run"),
            expected_requeue: None,
        },
        Case {
            name: "initialDelay not yet passed: wait until startedAt + delay",
            metric: json!({"initialDelay": "60s"}),
            terminate: false,
            status: status_with(vec![], 0),
            now: 59,
            expected_task: None,
            expected_requeue: Some(1),
        },
        Case {
            name: "initialDelay passed exactly: measure",
            metric: json!({"initialDelay": "60s"}),
            terminate: false,
            status: status_with(vec![], 0),
            now: 60,
            expected_task: Some("run"),
            expected_requeue: Some(0),
        },
        Case {
            name: "interval not elapsed: wait for finishedAt + interval",
            metric: json!({"interval": "30s"}),
            terminate: false,
            status: status_with(
                vec![running_result("m", vec![finished(Successful, 10)], 1)],
                0,
            ),
            now: 25,
            expected_task: None,
            expected_requeue: Some(15),
        },
        Case {
            name: "interval elapsed exactly: not yet (strictly after)",
            metric: json!({"interval": "30s"}),
            terminate: false,
            status: status_with(
                vec![running_result("m", vec![finished(Successful, 10)], 1)],
                0,
            ),
            now: 40,
            expected_task: None,
            expected_requeue: Some(0),
        },
        Case {
            name: "interval elapsed: measure",
            metric: json!({"interval": "30s"}),
            terminate: false,
            status: status_with(
                vec![running_result("m", vec![finished(Successful, 10)], 1)],
                0,
            ),
            now: 41,
            expected_task: Some("run"),
            expected_requeue: Some(0),
        },
        Case {
            name: "after an Error the retry interval is 10s, not the metric interval",
            metric: json!({"interval": "5m"}),
            terminate: false,
            status: status_with(vec![running_result("m", vec![finished(Error, 10)], 0)], 0),
            now: 21,
            expected_task: Some("run"),
            expected_requeue: Some(0),
        },
        Case {
            name: "after an Error without interval the retry waits 10s",
            metric: json!({}),
            terminate: false,
            status: status_with(vec![running_result("m", vec![finished(Error, 10)], 0)], 0),
            now: 15,
            expected_task: None,
            expected_requeue: Some(5),
        },
        Case {
            name: "count reached: nothing more",
            metric: json!({"interval": "10s", "count": 2}),
            terminate: false,
            status: status_with(
                vec![running_result(
                    "m",
                    vec![finished(Successful, 0), finished(Successful, 11)],
                    2,
                )],
                0,
            ),
            now: 100,
            expected_task: None,
            expected_requeue: None,
        },
        Case {
            name: "in-flight before resumeAt: wait for resumeAt",
            metric: json!({}),
            terminate: false,
            status: status_with(vec![running_result("m", vec![in_flight(Some(30))], 0)], 0),
            now: 20,
            expected_task: None,
            expected_requeue: Some(10),
        },
        Case {
            name: "in-flight once resumeAt has passed: resume",
            metric: json!({}),
            terminate: false,
            status: status_with(vec![running_result("m", vec![in_flight(Some(30))], 0)], 0),
            now: 30,
            expected_task: Some("resume"),
            expected_requeue: Some(0),
        },
        Case {
            name: "in-flight without resumeAt: resume every reconcile, no requeue of its own",
            metric: json!({}),
            terminate: false,
            status: status_with(vec![running_result("m", vec![in_flight(None)], 0)], 0),
            now: 5,
            expected_task: Some("resume"),
            expected_requeue: None,
        },
        Case {
            name: "terminating run: in-flight measurement is terminated",
            metric: json!({}),
            terminate: true,
            status: status_with(vec![running_result("m", vec![in_flight(None)], 0)], 0),
            now: 5,
            expected_task: Some("terminate"),
            expected_requeue: None,
        },
        Case {
            name: "terminating run: no new measurement",
            metric: json!({"interval": "10s"}),
            terminate: true,
            status: status_with(
                vec![running_result("m", vec![finished(Successful, 0)], 1)],
                0,
            ),
            now: 100,
            expected_task: None,
            expected_requeue: None,
        },
        Case {
            name: "a completed metric is not measured again",
            metric: json!({"interval": "10s"}),
            terminate: false,
            status: status_with(
                vec![MetricResult {
                    phase: Some(Failed),
                    ..running_result("m", vec![finished(Failed, 0)], 1)
                }],
                0,
            ),
            now: 100,
            expected_task: None,
            expected_requeue: None,
        },
    ];
    for case in cases {
        let mut analysis_run =
            run(json!({"metrics": [metric(case.metric)], "terminate": case.terminate}));
        analysis_run.status = Some(case.status);
        let decision = reconcile_run(&analysis_run, at(case.now));
        let tasks: Vec<&str> = decision
            .tasks()
            .map(|task| match task.action {
                MeasurementAction::Run => "run",
                MeasurementAction::Resume(_) => "resume",
                MeasurementAction::Terminate(_) => "terminate",
            })
            .collect();
        assert_eq!(
            tasks,
            case.expected_task.into_iter().collect::<Vec<_>>(),
            "{}",
            case.name
        );
        if decision.is_idle() {
            assert_eq!(
                decision.outcome.requeue_after,
                case.expected_requeue.map(Duration::from_secs),
                "{}",
                case.name
            );
        } else {
            // The requeue of a reconcile with tasks is decided after recording them; here the
            // outcome before recording must still point at the task's time.
            assert_eq!(
                decision.outcome.requeue_after.map(|wait| wait.as_secs()),
                case.expected_requeue,
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn requeue_is_the_earliest_due_time_across_metrics() {
    let mut analysis_run = run(json!({"metrics": [
        prom("slow", json!({"interval": "5m"})),
        prom("fast", json!({"interval": "20s"})),
        prom("late", json!({"initialDelay": "2m"})),
    ]}));
    analysis_run.status = Some(status_with(
        vec![
            running_result("slow", vec![finished(Successful, 0)], 1),
            running_result("fast", vec![finished(Successful, 0)], 1),
        ],
        0,
    ));
    let decision = reconcile_run(&analysis_run, at(5));
    assert!(decision.is_idle());
    assert_eq!(
        decision.outcome.requeue_after,
        Some(Duration::from_secs(15))
    );
}

#[test]
fn provider_failure_is_an_error_measurement() {
    let task = MeasurementTask {
        metric_name: "m".into(),
        metric_index: 0,
        dry_run: false,
        action: MeasurementAction::Run,
    };
    let measurement = task.provider_failure("plugin sluice/x is not loaded", at(3));
    assert_eq!(measurement.phase, Some(Error));
    assert_eq!(measurement.started_at, Some(Time(at(3))));
    assert_eq!(
        measurement.message.as_deref(),
        Some("plugin sluice/x is not loaded")
    );
}
