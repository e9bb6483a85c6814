//! Deciding each metric's phase and the run's phase (Argo's `assessMetricStatus`,
//! `assessMetricFailureInconclusiveOrError` and `assessRunStatus`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use sluice_api::analysis::{AnalysisPhase, AnalysisRunStatus, MetricResult, RunSummary};

use super::limits::MetricLimits;
use super::phase::is_worse;
use super::prepare::PreparedRun;

/// The message of a run ended by `spec.terminate` without a bad result.
pub const RUN_TERMINATED: &str = "Run Terminated";

/// A metric's phase, and the reason when a limit decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricAssessment {
    /// The phase.
    pub phase: AnalysisPhase,
    /// Why, when a limit decided it, e.g. `failed (3) > failureLimit (2)`.
    pub reason: Option<String>,
}

impl MetricAssessment {
    fn plain(phase: AnalysisPhase) -> Self {
        Self {
            phase,
            reason: None,
        }
    }
}

/// The limit a metric's counters break, if any. The checks run in this order and the **last**
/// one that matches wins (as in Argo): `failed > failureLimit` (skipped when the limit is -1) →
/// Failed; `inconclusive > inconclusiveLimit` → Inconclusive; `consecutiveError >
/// consecutiveErrorLimit` → Error.
pub fn limit_breach(limits: &MetricLimits, result: &MetricResult) -> Option<MetricAssessment> {
    let mut breach = None;
    if limits.failure_limit >= 0 && result.failed > limits.failure_limit {
        breach = Some(MetricAssessment {
            phase: AnalysisPhase::Failed,
            reason: Some(format!(
                "failed ({}) > failureLimit ({})",
                result.failed, limits.failure_limit
            )),
        });
    }
    if result.inconclusive > limits.inconclusive_limit {
        breach = Some(MetricAssessment {
            phase: AnalysisPhase::Inconclusive,
            reason: Some(format!(
                "inconclusive ({}) > inconclusiveLimit ({})",
                result.inconclusive, limits.inconclusive_limit
            )),
        });
    }
    if result.consecutive_error > limits.consecutive_error_limit {
        breach = Some(MetricAssessment {
            phase: AnalysisPhase::Error,
            reason: Some(format!(
                "consecutiveErrors ({}) > consecutiveErrorLimit ({})",
                result.consecutive_error, limits.consecutive_error_limit
            )),
        });
    }
    breach
}

/// A metric's phase from its counters and limits.
///
/// A completed phase is final. Otherwise: no measurement → Pending (Successful if the run is
/// terminating); an in-flight last measurement → Running; a broken limit ([`limit_breach`]);
/// `consecutiveSuccess >= consecutiveSuccessLimit` (limit > 0) → Successful; once `count` reaches
/// the effective count → Successful, or, when a consecutiveSuccessLimit was set but not reached,
/// Inconclusive (failureLimit >= 0) or Failed (failureLimit -1); otherwise the metric keeps
/// running (Successful if the run is terminating).
pub fn assess_metric(
    limits: &MetricLimits,
    result: &MetricResult,
    terminating: bool,
) -> MetricAssessment {
    if let Some(phase) = result.phase.filter(|phase| phase.is_completed()) {
        return MetricAssessment::plain(phase);
    }
    let Some(last) = result.measurements.last() else {
        return MetricAssessment::plain(if terminating {
            AnalysisPhase::Successful
        } else {
            AnalysisPhase::Pending
        });
    };
    if !last.phase.is_some_and(AnalysisPhase::is_completed) {
        return MetricAssessment::plain(AnalysisPhase::Running);
    }
    if let Some(breach) = limit_breach(limits, result) {
        return breach;
    }
    let success_limit = limits.consecutive_success_limit;
    if success_limit > 0 && result.consecutive_success >= success_limit {
        return MetricAssessment::plain(AnalysisPhase::Successful);
    }
    if limits.count_reached(result.count) {
        if success_limit == 0 {
            return MetricAssessment::plain(AnalysisPhase::Successful);
        }
        let phase = if limits.failure_limit >= 0 {
            AnalysisPhase::Inconclusive
        } else {
            AnalysisPhase::Failed
        };
        return MetricAssessment {
            phase,
            reason: success_limit_shortfall(limits, result),
        };
    }
    MetricAssessment::plain(if terminating {
        AnalysisPhase::Successful
    } else {
        AnalysisPhase::Running
    })
}

/// A metric whose phase changed during an assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricTransition {
    /// The metric's name.
    pub metric_name: String,
    /// Its new phase.
    pub phase: AnalysisPhase,
}

/// The run's phase and message after assessing every metric.
pub(crate) struct RunAssessment {
    pub phase: AnalysisPhase,
    pub message: String,
    pub transitions: Vec<MetricTransition>,
}

/// Argo's `assessRunStatus`: sets `startedAt`, every metric's phase and message, `runSummary` and
/// `dryRunSummary`, and returns the run's phase and message (the status's own phase is not
/// touched).
pub(crate) fn assess_run(
    run: &PreparedRun,
    status: &mut AnalysisRunStatus,
    terminating: bool,
    now: Timestamp,
) -> RunAssessment {
    if status.started_at.is_none() {
        status.started_at = Some(Time(now));
    }
    let mut worst: Option<AnalysisPhase> = None;
    let mut message = if run.terminate {
        RUN_TERMINATED.to_string()
    } else {
        String::new()
    };
    let mut everything_completed = true;
    let mut summary = RunSummary::default();
    let mut dry_run_summary = RunSummary::default();
    let mut transitions = Vec::new();

    for prepared in &run.metrics {
        let name = &prepared.metric.name;
        let counted = if prepared.dry_run {
            &mut dry_run_summary
        } else {
            &mut summary
        };
        counted.count += 1;
        let Some(result) = status
            .metric_results
            .iter_mut()
            .find(|result| &result.name == name)
        else {
            everything_completed = false;
            continue;
        };
        let assessment = assess_metric(&prepared.limits, result, terminating);
        if result.phase != Some(assessment.phase) {
            if assessment.phase.is_completed() {
                transitions.push(MetricTransition {
                    metric_name: name.clone(),
                    phase: assessment.phase,
                });
            }
            if let Some(last) = result.measurements.last() {
                result.message.clone_from(&last.message);
            }
            result.phase = Some(assessment.phase);
        }
        if !assessment.phase.is_completed() {
            everything_completed = false;
            continue;
        }
        let reason = completed_reason(&prepared.limits, result, assessment.phase);
        if prepared.dry_run {
            worst.get_or_insert(AnalysisPhase::Successful);
            if let Some(reason) = &reason {
                result.message = Some(format!(
                    "Metric assessed {} due to {reason}",
                    assessment.phase.as_str()
                ));
            }
        } else if worst.is_none_or(|current| is_worse(current, assessment.phase)) {
            worst = Some(assessment.phase);
            if let Some(reason) = &reason {
                message = format!(
                    "Metric \"{name}\" assessed {} due to {reason}",
                    assessment.phase.as_str()
                );
                if let Some(detail) = result
                    .message
                    .as_deref()
                    .filter(|detail| !detail.is_empty())
                {
                    message.push_str(&format!(": \"Error Message: {detail}\""));
                }
            }
        }
        let counted = if prepared.dry_run {
            &mut dry_run_summary
        } else {
            &mut summary
        };
        match assessment.phase {
            AnalysisPhase::Error => counted.error += 1,
            AnalysisPhase::Failed => counted.failed += 1,
            AnalysisPhase::Inconclusive => counted.inconclusive += 1,
            _ => counted.successful += 1,
        }
    }
    status.run_summary = Some(summary);
    status.dry_run_summary = Some(dry_run_summary);
    let message = message.trim().to_string();
    let (phase, message) = match worst {
        _ if terminating => (worst.unwrap_or(AnalysisPhase::Successful), message),
        Some(worst) if everything_completed => (worst, message),
        _ => (AnalysisPhase::Running, String::new()),
    };
    RunAssessment {
        phase,
        message,
        transitions,
    }
}

/// Why a metric that reached its count without `consecutiveSuccessLimit` successes in a row is
/// not Successful. (Argo logs this case without a status message; Sluice states it.)
fn success_limit_shortfall(limits: &MetricLimits, result: &MetricResult) -> Option<String> {
    let success_limit = limits.consecutive_success_limit;
    (success_limit > 0
        && result.consecutive_success < success_limit
        && limits.count_reached(result.count))
    .then(|| {
        format!(
            "consecutiveSuccess ({}) < consecutiveSuccessLimit ({success_limit}) after count ({}) measurements",
            result.consecutive_success, result.count
        )
    })
}

/// Why a completed metric has its phase, recomputed from its counters on every assessment as
/// Argo does, so a metric completed in an earlier reconcile still explains the run's phase.
fn completed_reason(
    limits: &MetricLimits,
    result: &MetricResult,
    phase: AnalysisPhase,
) -> Option<String> {
    match limit_breach(limits, result) {
        Some(breach) => breach.reason,
        None if matches!(phase, AnalysisPhase::Inconclusive | AnalysisPhase::Failed) => {
            success_limit_shortfall(limits, result)
        }
        None => None,
    }
}
