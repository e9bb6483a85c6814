//! Argo's decision table (`EvaluateResult`): from a metric's two conditions to a measurement
//! phase.

use std::fmt;

use super::compiled::{CompiledCondition, ConditionError, ResultContext};
use super::value::MetricValue;

/// The outcome of one measurement's conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    /// The measurement passed.
    Successful,
    /// The measurement failed.
    Failed,
    /// Both conditions were set and neither held.
    Inconclusive,
    /// A condition could not be evaluated; the measurement's phase is `Error`.
    Error(MeasurementError),
}

/// Which of a metric's two conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    /// `successCondition`.
    Success,
    /// `failureCondition`.
    Failure,
}

impl ConditionKind {
    /// The field name in the Metric spec.
    pub fn field_name(self) -> &'static str {
        match self {
            ConditionKind::Success => "successCondition",
            ConditionKind::Failure => "failureCondition",
        }
    }
}

impl fmt::Display for ConditionKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.field_name())
    }
}

/// A condition that could not be evaluated; its `Display` is the measurement message Argo writes,
/// e.g. `could not evaluate successCondition "result[0] >= 0.95": metric result is nil or empty:
/// no data returned from the metric provider`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not evaluate {condition} \"{expression}\": {cause}")]
pub struct MeasurementError {
    /// Which condition failed.
    pub condition: ConditionKind,
    /// The condition as written.
    pub expression: String,
    /// Why it failed.
    #[source]
    pub cause: ConditionError,
}

/// A metric's success and failure conditions, compiled once and evaluated per measurement.
///
/// An empty string counts as unset, as in Argo. A condition that does not compile is kept as its
/// error and reported on every evaluation, because Argo reports it per measurement too.
#[derive(Debug, Clone)]
pub struct MetricConditions {
    success: Option<PreparedCondition>,
    failure: Option<PreparedCondition>,
}

#[derive(Debug, Clone)]
struct PreparedCondition {
    kind: ConditionKind,
    expression: String,
    compiled: Result<CompiledCondition, ConditionError>,
}

impl PreparedCondition {
    fn new(kind: ConditionKind, expression: Option<&str>) -> Option<Self> {
        let expression = expression.filter(|expression| !expression.is_empty())?;
        Some(Self {
            kind,
            expression: expression.to_owned(),
            compiled: CompiledCondition::compile(expression),
        })
    }

    fn evaluate(
        &self,
        result: &MetricValue,
        context: &ResultContext,
    ) -> Result<bool, MeasurementError> {
        let outcome = match &self.compiled {
            Ok(compiled) => compiled.evaluate_in(context),
            Err(error) => Err(error.clone()),
        };
        outcome.map_err(|cause| MeasurementError {
            condition: self.kind,
            expression: self.expression.clone(),
            cause: if result.is_nil_or_empty() {
                ConditionError::NoData {
                    underlying: Box::new(cause),
                }
            } else {
                cause
            },
        })
    }
}

impl MetricConditions {
    /// Prepares a metric's `successCondition` and `failureCondition` (`None` or `""` = unset).
    pub fn new(success: Option<&str>, failure: Option<&str>) -> Self {
        Self {
            success: PreparedCondition::new(ConditionKind::Success, success),
            failure: PreparedCondition::new(ConditionKind::Failure, failure),
        }
    }

    /// Every condition that does not compile, with its error; empty when both are valid. For
    /// linting: evaluation reports the same errors per measurement.
    pub fn compile_errors(&self) -> Vec<MeasurementError> {
        [&self.success, &self.failure]
            .into_iter()
            .flatten()
            .filter_map(|prepared| {
                let cause = prepared.compiled.as_ref().err()?.clone();
                Some(MeasurementError {
                    condition: prepared.kind,
                    expression: prepared.expression.clone(),
                    cause,
                })
            })
            .collect()
    }

    /// Decides a measurement from its result, as Argo's `EvaluateResult` does:
    ///
    /// | success set | failure set | outcome |
    /// |---|---|---|
    /// | no | no | Successful |
    /// | yes | no | Successful if it holds, else Failed |
    /// | no | yes | Failed if it holds, else Successful |
    /// | yes | yes | Failed if failure holds; else Successful if success holds; else Inconclusive |
    ///
    /// The success condition is evaluated first; the first condition that cannot be evaluated
    /// makes the outcome [`Evaluation::Error`].
    pub fn evaluate(&self, result: &MetricValue) -> Evaluation {
        if self.success.is_none() && self.failure.is_none() {
            return Evaluation::Successful;
        }
        let context = ResultContext::new(result);
        let verdict = |condition: &Option<PreparedCondition>| {
            condition
                .as_ref()
                .map(|prepared| prepared.evaluate(result, &context))
                .transpose()
        };
        let success = match verdict(&self.success) {
            Ok(success) => success,
            Err(error) => return Evaluation::Error(error),
        };
        let failure = match verdict(&self.failure) {
            Ok(failure) => failure,
            Err(error) => return Evaluation::Error(error),
        };
        match (success, failure) {
            (_, Some(true)) | (Some(false), None) => Evaluation::Failed,
            (Some(true), _) | (None, Some(false)) => Evaluation::Successful,
            (Some(false), Some(false)) => Evaluation::Inconclusive,
            (None, None) => Evaluation::Successful,
        }
    }
}

/// Decides one measurement from a metric's conditions (`None` or `""` = unset) and its result.
///
/// Compiles the conditions on every call, as Argo does; keep a [`MetricConditions`] to compile
/// them once.
pub fn evaluate_measurement(
    success: Option<&str>,
    failure: Option<&str>,
    result: &MetricValue,
) -> Evaluation {
    MetricConditions::new(success, failure).evaluate(result)
}
