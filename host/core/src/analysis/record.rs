//! Recording a provider's answer in the run's status (the second half of Argo's
//! `runMeasurements`) and trimming measurement history (`garbageCollectMeasurements`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sluice_api::analysis::{AnalysisPhase, AnalysisRunStatus, Measurement, MetricResult};

use super::schedule::{MeasurementAction, MeasurementTask};

/// The message Argo gives a measurement that a `terminate` call ended successfully.
pub const METRIC_TERMINATED: &str = "Metric Terminated";

/// Records a measurement returned by the provider for `task`.
///
/// The metric's result is created on its first measurement (phase `Running`, the task's dry-run
/// flag, and `provider_metadata`, the provider's `get-metadata`, which is only used then). A
/// `Run` appends the measurement; `Resume` and `Terminate` replace the in-flight one. A
/// successful `Terminate` gets the message "Metric Terminated". A completed measurement gets
/// `finishedAt = now` if the provider left it empty, and updates the counters:
///
/// | phase | count | successful | failed | inconclusive | error | consecutiveError | consecutiveSuccess |
/// |---|---|---|---|---|---|---|---|
/// | Successful | +1 | +1 | | | | 0 | +1 |
/// | Failed | +1 | | +1 | | | 0 | 0 |
/// | Inconclusive | +1 | | | +1 | | 0 | 0 |
/// | Error | | | | | +1 | +1 | 0 |
///
/// A measurement still in flight (`Running`, `Pending` or no phase) changes no counter.
pub fn record_measurement(
    status: &mut AnalysisRunStatus,
    task: &MeasurementTask,
    mut measurement: Measurement,
    provider_metadata: Option<BTreeMap<String, String>>,
    now: Timestamp,
) {
    let position = status
        .metric_results
        .iter()
        .position(|result| result.name == task.metric_name);
    let result = match position {
        Some(position) => &mut status.metric_results[position],
        None => {
            status.metric_results.push(MetricResult {
                name: task.metric_name.clone(),
                phase: Some(AnalysisPhase::Running),
                dry_run: task.dry_run,
                metadata: provider_metadata.unwrap_or_default(),
                ..MetricResult::default()
            });
            let last = status.metric_results.len() - 1;
            &mut status.metric_results[last]
        }
    };
    if matches!(task.action, MeasurementAction::Terminate(_))
        && measurement.phase == Some(AnalysisPhase::Successful)
    {
        measurement.message = Some(METRIC_TERMINATED.to_string());
    }
    if let Some(phase) = measurement.phase.filter(|phase| phase.is_completed()) {
        if measurement.finished_at.is_none() {
            measurement.finished_at = Some(Time(now));
        }
        count_measurement(result, phase);
    }
    match task.action {
        MeasurementAction::Run => result.measurements.push(measurement),
        MeasurementAction::Resume(_) | MeasurementAction::Terminate(_) => {
            match result.measurements.last_mut() {
                Some(last) => *last = measurement,
                None => result.measurements.push(measurement),
            }
        }
    }
}

/// Updates a metric's counters for one completed measurement (the table of
/// [`record_measurement`]).
pub fn count_measurement(result: &mut MetricResult, phase: AnalysisPhase) {
    match phase {
        AnalysisPhase::Successful => {
            result.count += 1;
            result.successful += 1;
            result.consecutive_error = 0;
            result.consecutive_success += 1;
        }
        AnalysisPhase::Failed => {
            result.count += 1;
            result.failed += 1;
            result.consecutive_error = 0;
            result.consecutive_success = 0;
        }
        AnalysisPhase::Inconclusive => {
            result.count += 1;
            result.inconclusive += 1;
            result.consecutive_error = 0;
            result.consecutive_success = 0;
        }
        AnalysisPhase::Error => {
            result.error += 1;
            result.consecutive_error += 1;
            result.consecutive_success = 0;
        }
        AnalysisPhase::Pending | AnalysisPhase::Running => {}
    }
}

/// Measurements trimmed from a metric's history; the controller calls the provider's
/// `garbage-collect` with `limit` so it can delete their external state (Jobs, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct GarbageCollection {
    /// The metric's name.
    pub metric_name: String,
    /// The metric's index in `spec.metrics`.
    pub metric_index: usize,
    /// How many measurements are kept.
    pub limit: usize,
    /// The oldest measurements, removed from the status.
    pub trimmed: Vec<Measurement>,
}

/// Keeps the newest `limit` measurements of a result, returning the removed ones, oldest first.
pub fn trim_measurements(result: &mut MetricResult, limit: usize) -> Vec<Measurement> {
    let excess = result.measurements.len().saturating_sub(limit);
    result.measurements.drain(..excess).collect()
}
