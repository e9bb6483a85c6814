//! Which measurements to take, resume or terminate now, and when to look again (Argo's
//! `generateMetricTasks` and `calculateNextReconcileTime` in `analysis/analysis.go`).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sluice_api::analysis::{
    AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, Measurement, Metric, MetricResult,
};

use super::limits::ERROR_RETRY_INTERVAL;
use super::prepare::{PreparedMetric, PreparedRun};
use super::template::{SecretValues, TemplateError, resolve_metric};

/// What to do with a metric's provider.
#[derive(Debug, Clone, PartialEq)]
pub enum MeasurementAction {
    /// Take a new measurement (provider `run`).
    Run,
    /// Continue the in-flight measurement (provider `resume`), once its `resumeAt` has passed.
    Resume(Measurement),
    /// Stop the in-flight measurement because the run is terminating (provider `terminate`).
    Terminate(Measurement),
}

/// One provider call the controller must make for a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementTask {
    /// The metric's name.
    pub metric_name: String,
    /// The metric's index in `spec.metrics`.
    pub metric_index: usize,
    /// Whether the metric is a dry run (recorded on a new metric result).
    pub dry_run: bool,
    /// The call to make.
    pub action: MeasurementAction,
}

impl MeasurementTask {
    /// The metric to hand to the provider: `spec.metrics[metric_index]` with its arguments
    /// substituted, secrets included (read them first, see
    /// [`super::template::secret_arguments`]). A failure here fails the whole run in Argo
    /// ("Unable to resolve metric arguments: ..."): see [`super::reconcile::fail_run`].
    pub fn resolve_metric(
        &self,
        spec: &AnalysisRunSpec,
        secrets: SecretValues<'_>,
    ) -> Result<Metric, TemplateError> {
        let metric = spec.metrics.get(self.metric_index).ok_or_else(|| {
            TemplateError::InvalidResult(format!("no metric {}", self.metric_name))
        })?;
        resolve_metric(metric, &spec.args, secrets)
    }

    /// The measurement Argo records when the provider cannot be constructed or reached: the
    /// in-flight measurement (or a new one started `now`) in phase `Error` with `message`.
    pub fn provider_failure(&self, message: impl Into<String>, now: Timestamp) -> Measurement {
        let mut measurement = match &self.action {
            MeasurementAction::Run => Measurement {
                started_at: Some(Time(now)),
                ..Measurement::default()
            },
            MeasurementAction::Resume(in_flight) | MeasurementAction::Terminate(in_flight) => {
                in_flight.clone()
            }
        };
        measurement.phase = Some(AnalysisPhase::Error);
        measurement.message = Some(message.into());
        measurement
    }
}

/// Whether the run is terminating: `spec.terminate`, or a metric that is not a dry run has
/// completed `Failed`, `Error` or `Inconclusive` (Argo's `IsTerminating`). A terminating run takes
/// no new measurement and terminates in-flight ones.
pub fn is_terminating(terminate: bool, status: &AnalysisRunStatus) -> bool {
    terminate
        || status.metric_results.iter().any(|result| {
            !result.dry_run
                && matches!(
                    result.phase,
                    Some(
                        AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
                    )
                )
        })
}

/// The provider calls due `now`, in metric order.
///
/// Per metric that has not completed: an in-flight last measurement (no `finishedAt`) is resumed
/// once its `resumeAt` has passed, or terminated if the run is terminating; a terminating run
/// takes no new measurement; the first measurement waits for `initialDelay` after
/// `status.startedAt` (and, with a delay, for `startedAt` to be set); once `count` is reached
/// nothing more is measured; otherwise a measurement is due strictly after the last one's
/// `finishedAt` plus the interval, or plus 10 s after an `Error`.
pub fn measurement_tasks(
    run: &PreparedRun,
    status: &AnalysisRunStatus,
    now: Timestamp,
) -> Vec<MeasurementTask> {
    let terminating = is_terminating(run.terminate, status);
    run.metrics
        .iter()
        .filter_map(|prepared| {
            let result = result_of(status, &prepared.metric.name);
            if result.is_some_and(metric_completed) {
                return None;
            }
            let last = result.and_then(|result| result.measurements.last());
            let task = |action| MeasurementTask {
                metric_name: prepared.metric.name.clone(),
                metric_index: prepared.index,
                dry_run: prepared.dry_run,
                action,
            };
            if let Some(in_flight) = last.filter(|last| last.finished_at.is_none()) {
                if in_flight
                    .resume_at
                    .as_ref()
                    .is_some_and(|resume| resume.0 > now)
                {
                    return None;
                }
                return Some(task(if terminating {
                    MeasurementAction::Terminate(in_flight.clone())
                } else {
                    MeasurementAction::Resume(in_flight.clone())
                }));
            }
            if terminating {
                return None;
            }
            let due = next_measurement_time(prepared, status, result, Purpose::Measure)?;
            (now >= due.at && (due.inclusive || now > due.at)).then(|| task(MeasurementAction::Run))
        })
        .collect()
}

/// When the run needs to be looked at again: the earliest of every uncompleted metric's
/// next measurement, end of initial delay, or in-flight `resumeAt` (Argo's
/// `calculateNextReconcileTime`). `None` when nothing is scheduled.
pub fn next_reconcile_time(
    run: &PreparedRun,
    status: &AnalysisRunStatus,
    now: Timestamp,
) -> Option<Timestamp> {
    run.metrics
        .iter()
        .filter_map(|prepared| {
            let result = result_of(status, &prepared.metric.name);
            if result.is_some_and(metric_completed) {
                return None;
            }
            let last = result.and_then(|result| result.measurements.last());
            match last {
                None => {
                    let delay = prepared.limits.initial_delay?;
                    let start = status.started_at.as_ref().map_or(now, |started| started.0);
                    Some(after(start, delay))
                }
                Some(in_flight) if in_flight.finished_at.is_none() => {
                    in_flight.resume_at.as_ref().map(|resume| resume.0)
                }
                Some(_) => next_measurement_time(prepared, status, result, Purpose::Requeue)
                    .map(|due| due.at),
            }
        })
        .min()
}

/// `now` plus `duration`, saturating at the end of time.
pub(crate) fn after(start: Timestamp, duration: Duration) -> Timestamp {
    SignedDuration::try_from(duration)
        .ok()
        .and_then(|duration| start.checked_add(duration).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The time from `now` until `at`, zero when it has passed.
pub(crate) fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

pub(crate) fn result_of<'a>(status: &'a AnalysisRunStatus, name: &str) -> Option<&'a MetricResult> {
    status
        .metric_results
        .iter()
        .find(|result| result.name == name)
}

pub(crate) fn metric_completed(result: &MetricResult) -> bool {
    result.phase.is_some_and(AnalysisPhase::is_completed)
}

struct Due {
    at: Timestamp,
    /// The first measurement is due *at* the end of the initial delay; later ones strictly after.
    inclusive: bool,
}

/// Argo decides "measure now?" and "when to requeue?" with two functions that disagree on one
/// case: a metric below its count, without an interval, whose last measurement did not error.
/// Measuring falls back to the 10 s retry interval; requeueing ignores the metric.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Measure,
    Requeue,
}

/// When a metric with no in-flight measurement takes its next one; `None` when it never will
/// (count reached, an initial delay before `startedAt`, or see [`Purpose`]).
fn next_measurement_time(
    prepared: &PreparedMetric,
    status: &AnalysisRunStatus,
    result: Option<&MetricResult>,
    purpose: Purpose,
) -> Option<Due> {
    let limits = &prepared.limits;
    let Some(last) = result.and_then(|result| result.measurements.last()) else {
        return match limits.initial_delay {
            None => Some(Due {
                at: Timestamp::MIN,
                inclusive: true,
            }),
            Some(delay) => status.started_at.as_ref().map(|started| Due {
                at: after(started.0, delay),
                inclusive: true,
            }),
        };
    };
    if result.is_some_and(|result| limits.count_reached(result.count)) {
        return None;
    }
    let interval = match (
        last.phase == Some(AnalysisPhase::Error),
        limits.interval,
        purpose,
    ) {
        (true, _, _) => ERROR_RETRY_INTERVAL,
        (false, Some(interval), _) => interval,
        (false, None, Purpose::Measure) => ERROR_RETRY_INTERVAL,
        (false, None, Purpose::Requeue) => return None,
    };
    let finished = last.finished_at.as_ref()?.0;
    Some(Due {
        at: after(finished, interval),
        inclusive: false,
    })
}
