//! What the analysis engine reads from an AnalysisRun's spec before scheduling anything:
//! metrics with arguments substituted (secrets as placeholders), validated, with their limits,
//! dry-run flags and retention limits (the first steps of Argo's `reconcileAnalysisRun`).

use std::collections::BTreeSet;

use regex::Regex;
use sluice_api::analysis::{
    AnalysisRunSpec, DEFAULT_MEASUREMENT_RETENTION, DryRun, MeasurementRetention, Metric,
};

use super::limits::{MetricLimits, go_int_value};
use super::template::{SecretValues, TemplateError, resolve_metrics};

/// Why a run's spec cannot be analysed; the run ends in `Error` with [`RunSpecError::message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunSpecError {
    /// `{{args.*}}` could not be substituted.
    #[error("Unable to resolve metric arguments: {0}")]
    Arguments(#[from] TemplateError),
    /// The metrics, dry-run rules or retention rules are invalid.
    #[error("Analysis spec invalid: {0}")]
    Invalid(#[from] SpecViolation),
}

impl RunSpecError {
    /// The run's status message, as Argo writes it.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// One rule of Argo's `ValidateMetrics`, `GetDryRunMetrics` or `GetMeasurementRetentionMetrics`
/// that a run breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecViolation {
    /// The run has no metric.
    #[error("no metrics specified")]
    NoMetrics,
    /// Two metrics share a name.
    #[error("metrics[{index}]: duplicate name '{name}'")]
    DuplicateName {
        /// Index of the second metric.
        index: usize,
        /// The name.
        name: String,
    },
    /// A metric breaks a rule.
    #[error("metrics[{index}]: {problem}")]
    Metric {
        /// Index of the metric.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// A dry-run rule matches no metric.
    #[error("dryRun[{0}]: Rule didn't match any metric name(s)")]
    DryRunMatchesNothing(usize),
    /// A retention rule matches no metric.
    #[error("measurementRetention[{0}]: Rule didn't match any metric name(s)")]
    RetentionMatchesNothing(usize),
}

/// A metric ready to be scheduled and assessed.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedMetric {
    /// Index in `spec.metrics`.
    pub index: usize,
    /// The metric with arguments substituted (secret arguments as `temp-for-secret`).
    pub metric: Metric,
    /// Its counts, limits and durations.
    pub limits: MetricLimits,
    /// Whether a dry-run rule matches it.
    pub dry_run: bool,
    /// How many measurements its status keeps.
    pub retention: usize,
}

/// An AnalysisRun's spec, prepared for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRun {
    /// The metrics, in spec order.
    pub metrics: Vec<PreparedMetric>,
    /// `spec.terminate`.
    pub terminate: bool,
}

impl PreparedRun {
    /// Substitutes arguments, validates the metrics and matches the dry-run and retention rules.
    pub fn new(spec: &AnalysisRunSpec) -> Result<Self, RunSpecError> {
        let metrics = resolve_metrics(&spec.metrics, &spec.args, SecretValues::Placeholder)?;
        let limits = validate_metrics(&metrics)?;
        let dry_run = dry_run_metrics(&spec.dry_run, &metrics)?;
        let retention = retention_limits(&spec.measurement_retention, &metrics)?;
        let metrics = metrics
            .into_iter()
            .zip(limits)
            .zip(retention)
            .enumerate()
            .map(|(index, ((metric, limits), retention))| PreparedMetric {
                index,
                dry_run: dry_run.contains(&metric.name),
                metric,
                limits,
                retention,
            })
            .collect();
        Ok(Self {
            metrics,
            terminate: spec.terminate,
        })
    }

    /// The prepared metric of that name.
    pub fn metric(&self, name: &str) -> Option<&PreparedMetric> {
        self.metrics
            .iter()
            .find(|prepared| prepared.metric.name == name)
    }
}

/// Argo's `ValidateMetrics`: names unique, limits consistent, exactly one provider. Returns each
/// metric's limits.
pub fn validate_metrics(metrics: &[Metric]) -> Result<Vec<MetricLimits>, SpecViolation> {
    if metrics.is_empty() {
        return Err(SpecViolation::NoMetrics);
    }
    let mut names = BTreeSet::new();
    metrics
        .iter()
        .enumerate()
        .map(|(index, metric)| {
            if !names.insert(metric.name.as_str()) {
                return Err(SpecViolation::DuplicateName {
                    index,
                    name: metric.name.clone(),
                });
            }
            validate_metric(metric).map_err(|problem| SpecViolation::Metric { index, problem })
        })
        .collect()
}

fn validate_metric(metric: &Metric) -> Result<MetricLimits, String> {
    if let Some(Err(error)) = metric
        .interval
        .as_ref()
        .filter(|text| !text.0.is_empty())
        .map(|text| text.parse())
    {
        return Err(format!("invalid interval string: {error}"));
    }
    if let Some(Err(error)) = metric
        .initial_delay
        .as_ref()
        .filter(|text| !text.0.is_empty())
        .map(|text| text.parse())
    {
        return Err(format!("invalid startDelay string: {error}"));
    }
    let limits = MetricLimits::of(metric).map_err(|error| error.to_string())?;
    let count = metric.count.as_ref().map_or(0, go_int_value);
    let failure_limit = limits.failure_limit;
    let success_limit = limits.consecutive_success_limit;
    if count > 0 {
        if success_limit == 0 && count < failure_limit {
            return Err("count must be >= failureLimit".into());
        }
        if success_limit > 0 && count < failure_limit.max(0) + success_limit {
            return Err("count must be >= failureLimit + consecutiveSuccessLimit".into());
        }
        if count < limits.inconclusive_limit {
            return Err("count must be >= inconclusiveLimit".into());
        }
    }
    if count > 1 && limits.interval.is_none() {
        return Err("interval must be specified when count > 1".into());
    }
    if failure_limit < -1 {
        return Err("failureLimit must be >= -1".into());
    }
    if failure_limit == -1 && success_limit == 0 {
        return Err("failureLimit can only be -1 when consecutiveSuccessLimit is set".into());
    }
    if limits.inconclusive_limit < 0 {
        return Err("inconclusiveLimit must be >= 0".into());
    }
    if limits.consecutive_error_limit < 0 {
        return Err("consecutiveErrorLimit must be >= 0".into());
    }
    if success_limit < 0 {
        return Err("consecutiveSuccessLimit must be >= 0".into());
    }
    let providers = metric.provider.kinds().len()
        + metric
            .provider
            .plugin
            .as_ref()
            .map_or(0, |plugins| plugins.len().saturating_sub(1));
    match providers {
        0 => Err("no provider specified".into()),
        1 => Ok(limits),
        _ => Err("multiple providers specified".into()),
    }
}

/// Whether a dry-run or retention rule's `metricName` matches a metric name. Argo matches with
/// Go's `regexp.MatchString` (unanchored, so `rate` matches `error-rate`; `.*` matches all). A
/// bare `*`, documented by some guides but not a valid Go regexp, matches every metric here;
/// Argo reports it as matching nothing, so no working Argo manifest uses it.
pub fn rule_matches(rule: &str, metric_name: &str) -> bool {
    if rule == "*" {
        return true;
    }
    Regex::new(rule).is_ok_and(|pattern| pattern.is_match(metric_name))
}

fn dry_run_metrics(
    rules: &[DryRun],
    metrics: &[Metric],
) -> Result<BTreeSet<String>, SpecViolation> {
    let mut selected = BTreeSet::new();
    for (index, rule) in rules.iter().enumerate() {
        let mut matched = false;
        for metric in metrics
            .iter()
            .filter(|metric| rule_matches(&rule.metric_name, &metric.name))
        {
            selected.insert(metric.name.clone());
            matched = true;
        }
        if !matched {
            return Err(SpecViolation::DryRunMatchesNothing(index));
        }
    }
    Ok(selected)
}

/// Each metric's retention: the last matching rule with a positive limit, else 10.
fn retention_limits(
    rules: &[MeasurementRetention],
    metrics: &[Metric],
) -> Result<Vec<usize>, SpecViolation> {
    let mut limits = vec![None; metrics.len()];
    for (index, rule) in rules.iter().enumerate() {
        let mut matched = false;
        for (slot, metric) in limits.iter_mut().zip(metrics) {
            if rule_matches(&rule.metric_name, &metric.name) {
                *slot = Some(rule.limit);
                matched = true;
            }
        }
        if !matched {
            return Err(SpecViolation::RetentionMatchesNothing(index));
        }
    }
    Ok(limits
        .into_iter()
        .map(|limit| {
            let limit = limit
                .filter(|limit| *limit > 0)
                .unwrap_or(DEFAULT_MEASUREMENT_RETENTION);
            usize::try_from(limit).unwrap_or(usize::MAX)
        })
        .collect())
}
