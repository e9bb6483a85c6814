//! A metric's numbers as Argo's analysis controller reads them.
//!
//! `IntOrString` fields go through Go's `IntOrString.IntValue()`, which turns a string that is not
//! a number into 0; `count: 0` counts as unset (`Metric.EffectiveCount`). These readings are
//! taken on a metric whose `{{args.*}}` placeholders are already substituted.

use std::time::Duration;

use sluice_api::IntOrString;
use sluice_api::analysis::{DEFAULT_CONSECUTIVE_ERROR_LIMIT, Metric};
use sluice_api::duration::DurationError;

/// Retry interval after a measurement that ended in `Error` (`DefaultErrorRetryInterval`).
pub const ERROR_RETRY_INTERVAL: Duration = Duration::from_secs(10);

/// The counts, limits and durations of one metric, with Argo's defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricLimits {
    /// Measurements to take; `None` when unbounded (an interval without a count).
    pub effective_count: Option<i32>,
    /// Allowed failed measurements; -1 disables the check.
    pub failure_limit: i32,
    /// Allowed inconclusive measurements.
    pub inconclusive_limit: i32,
    /// Allowed consecutive errors (default 4).
    pub consecutive_error_limit: i32,
    /// Consecutive successes that complete the metric; 0 disables it.
    pub consecutive_success_limit: i32,
    /// Time between measurements.
    pub interval: Option<Duration>,
    /// Wait before the first measurement, counted from the run's `startedAt`.
    pub initial_delay: Option<Duration>,
}

impl MetricLimits {
    /// Reads a metric's limits. Fails only on an `interval` or `initialDelay` that is not a
    /// duration, which run validation reports before any measurement is scheduled.
    pub fn of(metric: &Metric) -> Result<Self, DurationError> {
        let interval = metric
            .interval
            .as_ref()
            .filter(|text| !text.0.is_empty())
            .map(|text| text.parse())
            .transpose()?;
        let initial_delay = metric
            .initial_delay
            .as_ref()
            .filter(|text| !text.0.is_empty())
            .map(|text| text.parse())
            .transpose()?;
        let count = metric.count.as_ref().map_or(0, go_int_value);
        let effective_count = match (count, interval) {
            (0, None) => Some(1),
            (0, Some(_)) => None,
            (count, _) => Some(count),
        };
        Ok(Self {
            effective_count,
            failure_limit: metric.failure_limit.as_ref().map_or(0, go_int_value),
            inconclusive_limit: metric.inconclusive_limit.as_ref().map_or(0, go_int_value),
            consecutive_error_limit: metric
                .consecutive_error_limit
                .as_ref()
                .map_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT, go_int_value),
            consecutive_success_limit: metric
                .consecutive_success_limit
                .as_ref()
                .map_or(0, go_int_value),
            interval,
            initial_delay,
        })
    }

    /// Whether `count` completed measurements reach the effective count.
    pub fn count_reached(&self, count: i32) -> bool {
        self.effective_count.is_some_and(|wanted| count >= wanted)
    }
}

/// Go's `IntOrString.IntValue()`: the int, or the string parsed as a decimal int, or 0.
pub fn go_int_value(value: &IntOrString) -> i32 {
    match value {
        IntOrString::Int(number) => *number,
        IntOrString::String(text) => text.parse().unwrap_or(0),
    }
}
