//! The analysis engine: Argo Rollouts' AnalysisRun semantics as pure functions.
//!
//! Nothing here performs I/O or reads the clock: the current time is an argument, provider calls
//! are described as tasks for the controller to execute, and their answers come back as data. One
//! reconcile of an AnalysisRun goes:
//!
//! 1. [`reconcile_run`]`(run, now)` → [`RunDecision`]: the measurements to take, resume and
//!    terminate, plus the outcome if nothing is executed. A completed run needs nothing; a run
//!    whose arguments or metrics are invalid ends in `Error` here.
//! 2. The controller executes the tasks concurrently: [`MeasurementTask::resolve_metric`] gives
//!    the metric with its arguments (secrets included, see [`secret_arguments`]), the provider
//!    answers with a `Measurement` (or [`MeasurementTask::provider_failure`] if it cannot), and
//!    [`redact_secrets`] hides secret values from its message.
//! 3. [`record_and_assess`]`(run, reports, now)` → [`RunOutcome`]: counters updated
//!    ([`record_measurement`]), each metric and the run assessed ([`assess_metric`], worst-of
//!    order [`phase_severity`]), dry runs summarised apart, fast fail, `spec.terminate`,
//!    retention trimmed (call the provider's garbage-collect for each [`GarbageCollection`]),
//!    events to emit, and when to reconcile again.
//! 4. The controller writes `outcome.status` and requeues after `outcome.requeue_after`.
//!
//! Building a run from a Rollout's analysis request is [`build_run_spec`]: template references
//! resolved and flattened (including composition with `spec.templates`), the Rollout's arguments
//! made literal ([`build_rollout_args`]: values, pod-template hashes, field references) and
//! merged into the templates' ([`merge_args`]). Metrics keep their `{{args.*}}` placeholders,
//! as Argo writes them; [`resolve_metrics`] substitutes them (JSON-quote escaped, as Argo's
//! `ResolveQuotedArgs`).
//!
//! # Where Sluice differs from Argo, and why
//!
//! - **Fast fail completes in the reconcile that sees the failure** when no other measurement is
//!   in flight; Argo needs a second reconcile (triggered by its own status write) to reach the
//!   same status. With measurements in flight the run is requeued at once to terminate them.
//! - **A dry-run or retention rule `metricName: "*"` matches every metric.** Argo matches rules as
//!   Go regular expressions, where `*` is invalid and matches nothing (the run errors); `.*` works
//!   in both.
//! - **Template cycles are an error** (Argo recurses until it crashes), and a template reached
//!   twice through composition counts once.
//! - **A metric that reaches its count without `consecutiveSuccessLimit` successes in a row**
//!   explains itself in the run's message (Argo only logs it).
//!
//! [`reconcile_run`]: crate::analysis::reconcile_run
//! [`RunDecision`]: crate::analysis::RunDecision
//! [`MeasurementTask::resolve_metric`]: crate::analysis::MeasurementTask::resolve_metric
//! [`secret_arguments`]: crate::analysis::secret_arguments
//! [`MeasurementTask::provider_failure`]: crate::analysis::MeasurementTask::provider_failure
//! [`redact_secrets`]: crate::analysis::redact_secrets
//! [`record_and_assess`]: crate::analysis::record_and_assess
//! [`RunOutcome`]: crate::analysis::RunOutcome
//! [`record_measurement`]: crate::analysis::record_measurement
//! [`assess_metric`]: crate::analysis::assess_metric
//! [`phase_severity`]: crate::analysis::phase_severity
//! [`GarbageCollection`]: crate::analysis::GarbageCollection
//! [`build_run_spec`]: crate::analysis::build_run_spec
//! [`build_rollout_args`]: crate::analysis::build_rollout_args
//! [`merge_args`]: crate::analysis::merge_args
//! [`resolve_metrics`]: crate::analysis::resolve_metrics

mod args;
mod assess;
mod build;
mod conditions;
mod limits;
mod phase;
mod prepare;
mod reconcile;
mod record;
mod schedule;
mod template;

pub use args::{ArgsError, PodTemplateHashes, build_rollout_args, go_format_float, merge_args};
pub use assess::{MetricAssessment, MetricTransition, RUN_TERMINATED, assess_metric, limit_breach};
pub use build::{
    BuildError, FlattenedTemplate, TemplateCatalog, build_run_spec, flatten_templates,
};
pub use conditions::measurement_phase;
pub use limits::{ERROR_RETRY_INTERVAL, MetricLimits, go_int_value};
pub use phase::{is_worse, phase_severity, worst};
pub use prepare::{
    PreparedMetric, PreparedRun, RunSpecError, SpecViolation, rule_matches, validate_metrics,
};
pub use reconcile::{
    MeasurementReport, RunDecision, RunEvent, RunOutcome, fail_run, reconcile_run,
    record_and_assess, ttl_expiry,
};
pub use record::{
    GarbageCollection, METRIC_TERMINATED, count_measurement, record_measurement, trim_measurements,
};
pub use schedule::{
    MeasurementAction, MeasurementTask, is_terminating, measurement_tasks, next_reconcile_time,
};
pub use template::{
    REDACTED, SECRET_PLACEHOLDER, SecretArgument, SecretValues, TemplateError, go_quote_inner,
    redact_secrets, resolve_metric, resolve_metrics, secret_arguments,
};
