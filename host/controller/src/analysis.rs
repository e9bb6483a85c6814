//! The AnalysisRun reconciler: the analysis engine of `sluice-core` decides, the metric-provider
//! plugins measure (concurrently), the engine records and assesses, the status is written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use sluice_api::analysis::{AnalysisPhase, AnalysisRun, Measurement, Metric, MetricProvider};
use sluice_core::Timestamp;
use sluice_core::analysis::{
    MeasurementAction, MeasurementReport, MeasurementTask, RunOutcome, SecretValues, fail_run,
    measurement_phase, reconcile_run, record_and_assess, redact_secrets, secret_arguments,
    ttl_expiry,
};
use sluice_core::condition::MetricValue;
use sluice_runtime::{
    AnalysisContext, AnalysisPhase as PluginPhase, Measurement as PluginMeasurement,
    SecretSubstitution,
};
use tracing::Instrument;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::metrics::{AnalysisRunInfoLabels, MetricPhaseLabels, ObjectLabels};
use crate::status_patch::{patch_status, status_json};

const MIN_REQUEUE: Duration = Duration::from_millis(50);
const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// Reconciles one AnalysisRun.
pub(crate) async fn reconcile(run: Arc<AnalysisRun>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let span =
        tracing::info_span!("reconcile_analysis_run", analysis_run = %name, namespace = %namespace);
    let started = Instant::now();
    let result = reconcile_inner(&run, &ctx).instrument(span).await;
    let labels = ObjectLabels { namespace, name };
    ctx.metrics
        .observe_run_reconcile(&labels, started.elapsed());
    if let Err(error) = &result {
        ctx.metrics.run_reconcile_failed(&labels, error);
    }
    result
}

/// Requeues a failed AnalysisRun reconcile.
pub(crate) fn error_policy(run: Arc<AnalysisRun>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        analysis_run = %run.name_any(),
        namespace = %run.namespace().unwrap_or_default(),
        error = %error,
        "reconcile failed"
    );
    Action::requeue(ERROR_REQUEUE)
}

async fn reconcile_inner(run: &AnalysisRun, ctx: &Context) -> Result<Action> {
    if run.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    if ttl_expiry(run).is_some_and(|expiry| expiry <= now) {
        return delete_expired(run, ctx).await;
    }
    let decision = reconcile_run(run, now);
    let outcome = if decision.is_idle() {
        decision.outcome
    } else {
        measure(run, decision.tasks().cloned().collect(), ctx, now).await?
    };
    for collection in &outcome.garbage_collect {
        garbage_collect(run, collection.metric_index, collection.limit, ctx).await;
    }
    write_status(run, &outcome, ctx).await?;
    export_state(run, &outcome, ctx);
    Ok(match outcome.requeue_after {
        Some(delay) => Action::requeue(delay.max(MIN_REQUEUE)),
        None => Action::await_change(),
    })
}

/// Deletes a completed run whose `ttlStrategy` expired.
async fn delete_expired(run: &AnalysisRun, ctx: &Context) -> Result<Action> {
    let name = run.name_any();
    let api: Api<AnalysisRun> =
        Api::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default());
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(source) => return Err(Error::kube(format!("delete AnalysisRun {name}"), source)),
    }
    tracing::info!(analysis_run = %name, "deleted after its ttlStrategy");
    Ok(Action::await_change())
}

/// Executes the tasks concurrently and records their measurements.
async fn measure(
    run: &AnalysisRun,
    tasks: Vec<MeasurementTask>,
    ctx: &Context,
    now: Timestamp,
) -> Result<RunOutcome> {
    let status = run.status.clone().unwrap_or_default();
    let secrets = match read_secrets(run, ctx).await {
        Ok(secrets) => secrets,
        Err(message) => return Ok(fail_run(&status, message, now)),
    };
    let (placeholders, substitutions) = secret_placeholders(run, &secrets);
    let mut metrics = Vec::with_capacity(tasks.len());
    for task in &tasks {
        match task.resolve_metric(&run.spec, SecretValues::Resolved(&placeholders)) {
            Ok(metric) => metrics.push(metric),
            Err(error) => {
                return Ok(fail_run(
                    &status,
                    format!("Unable to resolve metric arguments: {error}"),
                    now,
                ));
            }
        }
    }
    let reports = join_all(
        tasks
            .into_iter()
            .zip(metrics)
            .map(|(task, metric)| take_measurement(run, task, metric, &substitutions, ctx, now)),
    )
    .await;
    let reports = reports
        .into_iter()
        .map(|mut report| {
            redact_secrets(
                &mut report.measurement,
                secrets.values().map(String::as_str),
            );
            report
        })
        .collect();
    Ok(record_and_assess(run, reports, now))
}

/// What the plugin sees in place of each secret argument, and the substitutions the host makes
/// in the plugin's outgoing requests, so secret values never enter the sandbox.
fn secret_placeholders(
    run: &AnalysisRun,
    secrets: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<SecretSubstitution>) {
    let uid = run.uid().unwrap_or_default();
    let nonce: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    secrets
        .iter()
        .enumerate()
        .map(|(index, (argument, value))| {
            let placeholder = format!("sluice-secret-{index}-{nonce}");
            (
                (argument.clone(), placeholder.clone()),
                SecretSubstitution {
                    placeholder,
                    value: value.clone(),
                },
            )
        })
        .unzip()
}

/// Reads the Secrets behind `valueFrom.secretKeyRef` arguments (only runs that have some make
/// this request). The error is the run's message.
async fn read_secrets(
    run: &AnalysisRun,
    ctx: &Context,
) -> std::result::Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    let arguments = secret_arguments(&run.spec.args);
    if arguments.is_empty() {
        return Ok(values);
    }
    let namespace = run.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    for argument in arguments {
        let secret = api
            .get(&argument.secret.name)
            .await
            .map_err(|error| format!("Unable to resolve metric arguments: {error}"))?;
        let value = secret
            .data
            .and_then(|data| data.get(&argument.secret.key).cloned())
            .ok_or_else(|| {
                format!(
                    "Unable to resolve metric arguments: key '{}' does not exist in secret '{}'",
                    argument.secret.key, argument.secret.name
                )
            })?;
        values.insert(
            argument.argument.to_string(),
            String::from_utf8_lossy(&value.0).into_owned(),
        );
    }
    Ok(values)
}

/// The metric-provider plugin of a metric and its configuration: `prometheus`, `web` and `job`
/// map to the built-in providers of those names, `plugin.<name>` to that plugin.
fn provider_of(provider: &MetricProvider) -> Option<(String, serde_json::Value)> {
    if let Some(prometheus) = &provider.prometheus {
        return Some(("prometheus".into(), block(prometheus)));
    }
    if let Some(web) = &provider.web {
        return Some(("web".into(), block(web)));
    }
    if let Some(job) = &provider.job {
        return Some(("job".into(), block(job)));
    }
    provider
        .plugin
        .as_ref()
        .and_then(|plugins| plugins.iter().next())
        .map(|(name, config)| (name.clone(), config.clone()))
}

fn block(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// The provider type label of a metric (`analysis_run_metric_phase{type}`).
fn provider_type(provider: &MetricProvider) -> String {
    provider
        .kinds()
        .first()
        .map_or_else(String::new, |kind| (*kind).to_string())
}

async fn take_measurement(
    run: &AnalysisRun,
    task: MeasurementTask,
    metric: Metric,
    secrets: &[SecretSubstitution],
    ctx: &Context,
    now: Timestamp,
) -> MeasurementReport {
    let failure = |task: MeasurementTask, message: String| MeasurementReport {
        measurement: task.provider_failure(message, now),
        task,
        provider_metadata: None,
    };
    let Some((plugin_name, config)) = provider_of(&metric.provider) else {
        let kinds = metric.provider.kinds().join(", ");
        return failure(
            task,
            format!("metric provider {kinds} is not supported: use a metric-provider plugin"),
        );
    };
    let provider = match ctx.plugins.metric_provider(&plugin_name).await {
        Ok(provider) => provider.with_secrets(secrets.to_vec()),
        Err(error) => return failure(task, error.to_string()),
    };
    let analysis_context = AnalysisContext {
        namespace: run.namespace().unwrap_or_default(),
        analysis_run: run.name_any(),
        uid: run.uid().unwrap_or_default(),
        metric_name: metric.name.clone(),
        plugin_name: plugin_name.clone(),
        plugin_config: config.to_string(),
        metric_json: serde_json::to_string(&metric).unwrap_or_default(),
    };
    let result = match &task.action {
        MeasurementAction::Run => provider.run(&analysis_context).await,
        MeasurementAction::Resume(current) => {
            provider
                .resume(&analysis_context, &to_plugin(current))
                .await
        }
        MeasurementAction::Terminate(current) => {
            provider
                .terminate(&analysis_context, &to_plugin(current))
                .await
        }
    };
    let measurement = match result {
        Ok(measurement) => from_plugin(measurement, &metric, now),
        Err(error) => return failure(task, error.to_string()),
    };
    let first_measurement = run
        .status
        .as_ref()
        .and_then(|status| {
            status
                .metric_results
                .iter()
                .find(|result| result.name == metric.name)
        })
        .is_none_or(|result| result.measurements.is_empty());
    let provider_metadata = if first_measurement {
        provider
            .get_metadata(&analysis_context)
            .await
            .ok()
            .filter(|metadata| !metadata.is_empty())
            .map(|metadata| metadata.into_iter().collect())
    } else {
        None
    };
    MeasurementReport {
        task,
        measurement,
        provider_metadata,
    }
}

/// Calls the provider's `garbage-collect` for a metric whose measurements were trimmed; a
/// failure is logged only (Argo does the same).
async fn garbage_collect(run: &AnalysisRun, metric_index: usize, limit: usize, ctx: &Context) {
    let Some(metric) = run.spec.metrics.get(metric_index) else {
        return;
    };
    let Some((plugin_name, config)) = provider_of(&metric.provider) else {
        return;
    };
    let Ok(provider) = ctx.plugins.metric_provider(&plugin_name).await else {
        return;
    };
    let analysis_context = AnalysisContext {
        namespace: run.namespace().unwrap_or_default(),
        analysis_run: run.name_any(),
        uid: run.uid().unwrap_or_default(),
        metric_name: metric.name.clone(),
        plugin_name,
        plugin_config: config.to_string(),
        metric_json: serde_json::to_string(metric).unwrap_or_default(),
    };
    let limit = u32::try_from(limit).unwrap_or(u32::MAX);
    if let Err(error) = provider.garbage_collect(&analysis_context, limit).await {
        tracing::warn!(metric = %metric.name, %error, "garbage-collect failed");
    }
}

fn to_plugin_phase(phase: Option<AnalysisPhase>) -> PluginPhase {
    match phase {
        None | Some(AnalysisPhase::Pending) => PluginPhase::Pending,
        Some(AnalysisPhase::Running) => PluginPhase::Running,
        Some(AnalysisPhase::Successful) => PluginPhase::Successful,
        Some(AnalysisPhase::Failed) => PluginPhase::Failed,
        Some(AnalysisPhase::Error) => PluginPhase::Error,
        Some(AnalysisPhase::Inconclusive) => PluginPhase::Inconclusive,
    }
}

fn from_plugin_phase(phase: PluginPhase) -> AnalysisPhase {
    match phase {
        PluginPhase::Pending => AnalysisPhase::Pending,
        PluginPhase::Running => AnalysisPhase::Running,
        PluginPhase::Successful => AnalysisPhase::Successful,
        PluginPhase::Failed => AnalysisPhase::Failed,
        PluginPhase::Error => AnalysisPhase::Error,
        PluginPhase::Inconclusive => AnalysisPhase::Inconclusive,
    }
}

fn seconds(time: Option<&Time>) -> Option<i64> {
    time.map(|time| time.0.as_second())
}

fn time(seconds: Option<i64>) -> Option<Time> {
    seconds
        .and_then(|seconds| Timestamp::from_second(seconds).ok())
        .map(Time)
}

fn to_plugin(measurement: &Measurement) -> PluginMeasurement {
    PluginMeasurement {
        phase: to_plugin_phase(measurement.phase),
        value: measurement.value.clone(),
        message: measurement.message.clone(),
        started_at: seconds(measurement.started_at.as_ref()),
        finished_at: seconds(measurement.finished_at.as_ref()),
        resume_at: seconds(measurement.resume_at.as_ref()),
        metadata: measurement
            .metadata
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    }
}

/// The plugin's measurement as recorded. A finished `successful` measurement that carries a
/// value is judged by the host with the metric's conditions (the plugin reports that it
/// measured; the conditions decide success or failure).
fn from_plugin(measurement: PluginMeasurement, metric: &Metric, now: Timestamp) -> Measurement {
    let mut recorded = Measurement {
        phase: Some(from_plugin_phase(measurement.phase)),
        message: measurement.message,
        started_at: time(measurement.started_at).or(Some(Time(now))),
        finished_at: time(measurement.finished_at),
        value: measurement.value,
        metadata: measurement.metadata.into_iter().collect(),
        resume_at: time(measurement.resume_at),
    };
    if recorded.phase == Some(AnalysisPhase::Successful)
        && recorded.finished_at.is_some()
        && let Some(value) = &recorded.value
    {
        let result = MetricValue::from_measurement_value(value);
        let (phase, message) = measurement_phase(metric, &result);
        recorded.phase = Some(phase);
        if message.is_some() {
            recorded.message = message;
        }
    }
    recorded
}

async fn write_status(run: &AnalysisRun, outcome: &RunOutcome, ctx: &Context) -> Result<()> {
    let old = status_json(run.status.as_ref(), "AnalysisRun status")?;
    let new = status_json(Some(&outcome.status), "AnalysisRun status")?;
    if !patch_status(ctx, run, &old, &new, &ctx.stores.analysis_runs_for_analysis).await? {
        return Ok(());
    }
    crate::events::publish(ctx, run, "Analyze", &outcome.events).await;
    Ok(())
}

fn export_state(run: &AnalysisRun, outcome: &RunOutcome, ctx: &Context) {
    let namespace = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let phase = outcome
        .status
        .phase
        .unwrap_or(AnalysisPhase::Pending)
        .as_str()
        .to_string();
    let metrics = run
        .spec
        .metrics
        .iter()
        .map(|metric| {
            let result = outcome
                .status
                .metric_results
                .iter()
                .find(|result| result.name == metric.name);
            MetricPhaseLabels {
                namespace: namespace.clone(),
                name: name.clone(),
                metric: metric.name.clone(),
                r#type: provider_type(&metric.provider),
                dry_run: result.is_some_and(|result| result.dry_run).to_string(),
                phase: result
                    .and_then(|result| result.phase)
                    .unwrap_or(AnalysisPhase::Pending)
                    .as_str()
                    .to_string(),
            }
        })
        .collect();
    ctx.metrics.set_run_state(
        AnalysisRunInfoLabels {
            namespace,
            name,
            phase,
        },
        metrics,
    );
}
