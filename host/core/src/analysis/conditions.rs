//! From a provider's value to a measurement's phase, with the metric's conditions (the
//! [`crate::condition`] language), for providers that hand back a value rather than a phase.

use sluice_api::analysis::{AnalysisPhase, Metric};

use crate::condition::{Evaluation, MetricConditions, MetricValue};

/// The phase and message of a measurement whose result is `value`, decided by the metric's
/// `successCondition` and `failureCondition` (Argo's `EvaluateResult`). A condition that cannot be
/// evaluated makes the measurement `Error`, with Argo's message.
pub fn measurement_phase(metric: &Metric, value: &MetricValue) -> (AnalysisPhase, Option<String>) {
    let conditions = MetricConditions::new(
        metric.success_condition.as_deref(),
        metric.failure_condition.as_deref(),
    );
    match conditions.evaluate(value) {
        Evaluation::Successful => (AnalysisPhase::Successful, None),
        Evaluation::Failed => (AnalysisPhase::Failed, None),
        Evaluation::Inconclusive => (AnalysisPhase::Inconclusive, None),
        Evaluation::Error(error) => (AnalysisPhase::Error, Some(error.to_string())),
    }
}
