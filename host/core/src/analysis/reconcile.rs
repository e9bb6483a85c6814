//! One reconcile of an AnalysisRun, split around the provider calls the controller makes:
//! [`reconcile_run`] decides, the controller executes the tasks concurrently, and
//! [`record_and_assess`] records their answers and decides the new status (Argo's
//! `reconcileAnalysisRun`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sluice_api::analysis::{AnalysisPhase, AnalysisRun, AnalysisRunStatus, Measurement};

use super::assess::{MetricTransition, assess_run};
use super::prepare::PreparedRun;
use super::record::{GarbageCollection, record_measurement, trim_measurements};
use super::schedule::{
    MeasurementAction, MeasurementTask, is_terminating, measurement_tasks, metric_completed,
    next_reconcile_time, result_of, until,
};

/// A Kubernetes event to emit on the AnalysisRun (`Metric<Phase>` or `AnalysisRun<Phase>`,
/// e.g. `MetricFailed` with `Metric 'error-rate' Completed. Result: Failed`); Error and Failed
/// are Warnings.
pub use crate::events::Event as RunEvent;

impl RunEvent {
    fn metric_completed(transition: &MetricTransition) -> Self {
        let phase = transition.phase.as_str();
        Self {
            reason: format!("Metric{phase}"),
            message: format!(
                "Metric '{}' Completed. Result: {phase}",
                transition.metric_name
            ),
            warning: is_bad(transition.phase),
        }
    }

    fn run_completed(phase: AnalysisPhase) -> Self {
        Self {
            reason: format!("AnalysisRun{}", phase.as_str()),
            message: format!("Analysis Completed. Result: {}", phase.as_str()),
            warning: is_bad(phase),
        }
    }
}

fn is_bad(phase: AnalysisPhase) -> bool {
    matches!(phase, AnalysisPhase::Error | AnalysisPhase::Failed)
}

/// The status to write and what to do after writing it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The run's new status.
    pub status: AnalysisRunStatus,
    /// Measurements trimmed by retention: call the provider's `garbage-collect` for each.
    pub garbage_collect: Vec<GarbageCollection>,
    /// Reconcile the run again after this long; `None` when nothing is scheduled (the run is
    /// complete, or waits only for in-flight measurements without `resumeAt`).
    pub requeue_after: Option<Duration>,
    /// Events to emit.
    pub events: Vec<RunEvent>,
}

/// What one reconcile must do before the status can be decided.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDecision {
    /// New measurements to take (provider `run`).
    pub measurements_to_take: Vec<MeasurementTask>,
    /// In-flight measurements to continue (provider `resume`).
    pub resumes: Vec<MeasurementTask>,
    /// In-flight measurements to stop because the run is terminating (provider `terminate`).
    pub terminates: Vec<MeasurementTask>,
    /// The outcome if no provider call is made. It is final when there is no task; otherwise
    /// execute every task and call [`record_and_assess`] with their measurements.
    pub outcome: RunOutcome,
}

impl RunDecision {
    /// Every task, in the order takes, resumes, terminates.
    pub fn tasks(&self) -> impl Iterator<Item = &MeasurementTask> {
        self.measurements_to_take
            .iter()
            .chain(&self.resumes)
            .chain(&self.terminates)
    }

    /// Whether no provider call is needed: `outcome` is the reconcile's result.
    pub fn is_idle(&self) -> bool {
        self.tasks().next().is_none()
    }
}

/// A provider's answer to one task.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementReport {
    /// The task that was executed.
    pub task: MeasurementTask,
    /// The measurement the provider returned (or [`MeasurementTask::provider_failure`]).
    pub measurement: Measurement,
    /// The provider's `get-metadata` for the metric, recorded on its first measurement.
    pub provider_metadata: Option<BTreeMap<String, String>>,
}

/// When a completed run is to be deleted (`spec.ttlStrategy`, counted from
/// `status.completedAt`): `secondsAfterSuccess` for a Successful run and `secondsAfterFailure`
/// for a Failed, Error or Inconclusive one take precedence over `secondsAfterCompletion`.
/// `None` for a run that is not completed or has no applicable TTL.
pub fn ttl_expiry(run: &AnalysisRun) -> Option<Timestamp> {
    let ttl = run.spec.ttl_strategy.as_ref()?;
    let status = run.status.as_ref()?;
    let phase = status.phase.filter(|phase| phase.is_completed())?;
    let specific = if phase == AnalysisPhase::Successful {
        ttl.seconds_after_success
    } else {
        ttl.seconds_after_failure
    };
    let seconds = specific.or(ttl.seconds_after_completion)?;
    let completed_at = status.completed_at.as_ref()?.0;
    Some(completed_at + k8s_openapi::jiff::SignedDuration::from_secs(i64::from(seconds.max(0))))
}

/// Decides what a reconcile of `run` at `now` must do.
///
/// A completed run needs nothing (but a requeue at its [`ttl_expiry`]). A run whose arguments cannot be substituted, or whose metrics,
/// dry-run or retention rules are invalid, ends in `Error` with Argo's message. Otherwise the
/// due provider calls are listed (see [`measurement_tasks`]) and `outcome` holds the assessment
/// of the status as it is.
pub fn reconcile_run(run: &AnalysisRun, now: Timestamp) -> RunDecision {
    let status = run.status.clone().unwrap_or_default();
    let idle = |outcome| RunDecision {
        measurements_to_take: Vec::new(),
        resumes: Vec::new(),
        terminates: Vec::new(),
        outcome,
    };
    if status.phase.is_some_and(AnalysisPhase::is_completed) {
        // A completed run waits only for its `ttlStrategy` deletion, if any.
        let requeue_after = ttl_expiry(run).map(|expiry| {
            std::time::Duration::try_from(expiry.duration_since(now)).unwrap_or_default()
        });
        return idle(RunOutcome {
            status,
            garbage_collect: Vec::new(),
            requeue_after,
            events: Vec::new(),
        });
    }
    let prepared = match PreparedRun::new(&run.spec) {
        Ok(prepared) => prepared,
        Err(error) => return idle(fail_run(&status, error.message(), now)),
    };
    let mut decision = idle(finish(&prepared, status.clone(), now));
    for task in measurement_tasks(&prepared, &status, now) {
        match task.action {
            MeasurementAction::Run => decision.measurements_to_take.push(task),
            MeasurementAction::Resume(_) => decision.resumes.push(task),
            MeasurementAction::Terminate(_) => decision.terminates.push(task),
        }
    }
    decision
}

/// Records the providers' answers to the tasks of [`reconcile_run`] and decides the new status,
/// the measurements to garbage-collect and the requeue time.
pub fn record_and_assess(
    run: &AnalysisRun,
    reports: Vec<MeasurementReport>,
    now: Timestamp,
) -> RunOutcome {
    let mut status = run.status.clone().unwrap_or_default();
    let prepared = match PreparedRun::new(&run.spec) {
        Ok(prepared) => prepared,
        Err(error) => return fail_run(&status, error.message(), now),
    };
    for report in reports {
        record_measurement(
            &mut status,
            &report.task,
            report.measurement,
            report.provider_metadata,
            now,
        );
    }
    finish(&prepared, status, now)
}

/// Ends a run in `Error` with `message` (Argo does this when arguments, including secrets,
/// cannot be resolved, or the spec is invalid).
pub fn fail_run(
    status: &AnalysisRunStatus,
    message: impl Into<String>,
    now: Timestamp,
) -> RunOutcome {
    let mut status = status.clone();
    status.phase = Some(AnalysisPhase::Error);
    status.message = Some(message.into());
    status.completed_at.get_or_insert(Time(now));
    RunOutcome {
        status,
        garbage_collect: Vec::new(),
        requeue_after: None,
        events: vec![RunEvent::run_completed(AnalysisPhase::Error)],
    }
}

/// Assesses, updates the run's phase, trims history and computes the requeue time.
///
/// Fast fail within one reconcile: when this assessment makes a running run terminating (a
/// metric that is not a dry run just became Failed, Error or Inconclusive), Argo's next reconcile
/// (triggered by its own status write) terminates the in-flight measurements that are due and
/// assesses the run as terminating. When no in-flight measurement is due for that `terminate`
/// call, the next reconcile would call nothing, so the run is assessed as terminating right away:
/// the same status, one reconcile sooner. Otherwise the run is requeued at once.
fn finish(prepared: &PreparedRun, mut status: AnalysisRunStatus, now: Timestamp) -> RunOutcome {
    let was_terminating = is_terminating(prepared.terminate, &status);
    let mut assessment = assess_run(prepared, &mut status, was_terminating, now);
    let mut events: Vec<RunEvent> = assessment
        .transitions
        .iter()
        .map(RunEvent::metric_completed)
        .collect();
    let mut terminate_in_flight = false;
    if !was_terminating
        && !assessment.phase.is_completed()
        && is_terminating(prepared.terminate, &status)
    {
        if has_terminable_in_flight(prepared, &status, now) {
            terminate_in_flight = true;
        } else {
            assessment = assess_run(prepared, &mut status, true, now);
            events.extend(
                assessment
                    .transitions
                    .iter()
                    .map(RunEvent::metric_completed),
            );
        }
    }
    if status.phase != Some(assessment.phase) {
        status.phase = Some(assessment.phase);
        status.message = Some(assessment.message).filter(|message| !message.is_empty());
        if assessment.phase.is_completed() {
            events.push(RunEvent::run_completed(assessment.phase));
            status.completed_at.get_or_insert(Time(now));
        }
    }
    let garbage_collect = prepared
        .metrics
        .iter()
        .filter_map(|metric| {
            let result = status
                .metric_results
                .iter_mut()
                .find(|result| result.name == metric.metric.name)?;
            let trimmed = trim_measurements(result, metric.retention);
            (!trimmed.is_empty()).then(|| GarbageCollection {
                metric_name: metric.metric.name.clone(),
                metric_index: metric.index,
                limit: metric.retention,
                trimmed,
            })
        })
        .collect();
    let requeue_after = if terminate_in_flight {
        Some(Duration::ZERO)
    } else {
        next_reconcile_time(prepared, &status, now).map(|at| until(now, at))
    };
    RunOutcome {
        status,
        garbage_collect,
        requeue_after,
        events,
    }
}

/// Whether a metric has an in-flight measurement that a terminating run would terminate now
/// (its `resumeAt`, if any, has passed).
fn has_terminable_in_flight(
    prepared: &PreparedRun,
    status: &AnalysisRunStatus,
    now: Timestamp,
) -> bool {
    prepared.metrics.iter().any(|metric| {
        result_of(status, &metric.metric.name)
            .filter(|result| !metric_completed(result))
            .and_then(|result| result.measurements.last())
            .is_some_and(|last| {
                last.finished_at.is_none()
                    && last.resume_at.as_ref().is_none_or(|resume| resume.0 <= now)
            })
    })
}
