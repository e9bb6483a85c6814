//! Job metric provider: a Kubernetes Job whose outcome is the measurement.
//!
//! `run` creates a Job from the metric's `provider.job` (`metadata`, `spec`), owned by the
//! AnalysisRun and labelled as Argo labels it, and returns a running measurement; `resume` reads
//! the Job's conditions (`Complete` → successful, `Failed` → failed); `terminate` deletes the Job;
//! `garbage-collect` deletes the metric's oldest Jobs beyond the limit. See the crate README.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use sluice_plugin_sdk::kube::{self, Gvk, KubeError, ListParams};
use sluice_plugin_sdk::{AnalysisContext, AnalysisPhase, Measurement, MetricProvider, PluginError};

/// The plugin type the host checks at load (Argo's provider type name).
pub const PLUGIN_TYPE: &str = "Job";
/// Measurement metadata key of the Job's name (Argo `JobNameKey`).
pub const JOB_NAME_KEY: &str = "job-name";
/// Measurement metadata key of the Job's namespace.
pub const JOB_NAMESPACE_KEY: &str = "job-namespace";
/// Label and annotation carrying the AnalysisRun's name.
pub const RUN_NAME_KEY: &str = "analysisrun.argoproj.io/name";
/// Label and annotation carrying the metric's name.
pub const METRIC_NAME_KEY: &str = "analysisrun.argoproj.io/metric-name";
/// Label carrying the AnalysisRun's UID (Argo selects a run's Jobs by it).
pub const RUN_UID_KEY: &str = "analysisrun.argoproj.io/uid";
/// Seconds until the host should look at a running Job again.
pub const RESUME_AFTER_SECONDS: i64 = 10;
/// How many names `run` tries when a Job of the next number already exists.
const CREATE_ATTEMPTS: u64 = 5;

/// The Job metric provider.
pub struct JobProvider;

fn job_gvk() -> Gvk {
    Gvk {
        group: "batch".into(),
        version: "v1".into(),
        kind: "Job".into(),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The metric's `provider.job` block: `plugin-config` when it has a `spec`, otherwise
/// `provider.job` of `metric-json`.
fn job_template(ctx: &AnalysisContext) -> Result<Value, PluginError> {
    let config: Value = PluginError::parse_config(&ctx.plugin_config)?;
    if config.get("spec").is_some() {
        return Ok(config);
    }
    let metric: Value = PluginError::parse_config(&ctx.metric_json)?;
    metric
        .pointer("/provider/job")
        .filter(|job| job.get("spec").is_some())
        .cloned()
        .ok_or_else(|| PluginError::InvalidConfig("provider.job.spec is required".into()))
}

/// Argo's Job name: `<run uid>.<metric>.<number>`.
pub fn job_name(run_uid: &str, metric: &str, number: u64) -> String {
    format!("{run_uid}.{metric}.{number}")
}

/// The number at the end of a Job name made by [`job_name`].
fn job_number(name: &str) -> Option<u64> {
    name.rsplit('.').next()?.parse().ok()
}

/// The label selector of one metric's Jobs.
fn metric_selector(ctx: &AnalysisContext) -> String {
    format!(
        "{RUN_UID_KEY}={},{METRIC_NAME_KEY}={}",
        ctx.uid, ctx.metric_name
    )
}

/// Whether `value` is a valid label value (63 characters of `[A-Za-z0-9._-]`, alphanumeric ends).
fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && value
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric())
}

/// The Job object for `name`: the template's metadata labels and annotations, Argo's run and
/// metric labels and annotations, a controller reference to the AnalysisRun, and the spec.
pub fn job_object(ctx: &AnalysisContext, template: &Value, name: &str) -> Value {
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut annotations = template
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(RUN_UID_KEY.into(), json!(ctx.uid));
    for (key, value) in [
        (RUN_NAME_KEY, &ctx.analysis_run),
        (METRIC_NAME_KEY, &ctx.metric_name),
    ] {
        annotations.insert(key.into(), json!(value));
        if is_label_value(value) {
            labels.insert(key.into(), json!(value));
        }
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ctx.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AnalysisRun",
                "name": ctx.analysis_run,
                "uid": ctx.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": template.get("spec").cloned().unwrap_or_else(|| Value::Object(Map::new())),
    })
}

fn metadata_value<'a>(measurement: &'a Measurement, key: &str) -> Option<&'a str> {
    measurement
        .metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Marks `measurement` as an error that finished now.
fn into_error(mut measurement: Measurement, message: String) -> Measurement {
    let finished = now().max(measurement.started_at.unwrap_or(0));
    measurement.phase = AnalysisPhase::Error;
    measurement.message = Some(message);
    measurement.finished_at = Some(finished);
    measurement.resume_at = None;
    measurement
}

/// Maps a Kubernetes error: a denial stays a call error (the host reports it), anything else is
/// the measurement's error.
fn kube_failure(
    measurement: Measurement,
    what: &str,
    error: KubeError,
) -> Result<Measurement, PluginError> {
    match error {
        KubeError::AccessDenied(message) => Err(PluginError::AccessDenied(message)),
        other => Ok(into_error(
            measurement,
            format!("{what}: {}", describe(&other)),
        )),
    }
}

fn describe(error: &KubeError) -> String {
    match error {
        KubeError::AccessDenied(m) => format!("access denied: {m}"),
        KubeError::NotFound(m) => format!("not found: {m}"),
        KubeError::Conflict(m) => format!("conflict: {m}"),
        KubeError::Invalid(m) => format!("invalid: {m}"),
        KubeError::Unavailable(m) => format!("unavailable: {m}"),
    }
}

/// Lists the metric's Jobs (all pages).
fn metric_jobs(ctx: &AnalysisContext) -> Result<Vec<Value>, KubeError> {
    let mut jobs = Vec::new();
    let mut continue_token = None;
    loop {
        let params = ListParams {
            label_selector: Some(metric_selector(ctx)),
            field_selector: None,
            limit: None,
            continue_token: continue_token.take(),
        };
        let page = kube::list_dynamic(job_gvk(), Some(&ctx.namespace), &params)?;
        jobs.extend(page.items);
        match page.continue_token {
            Some(token) => continue_token = Some(token),
            None => return Ok(jobs),
        }
    }
}

fn name_of(job: &Value) -> &str {
    job.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Deletes a Job; one that is already gone counts as deleted.
fn delete_job(namespace: &str, name: &str) -> Result<(), KubeError> {
    match kube::delete_dynamic(job_gvk(), Some(namespace), name) {
        Ok(()) | Err(KubeError::NotFound(_)) => Ok(()),
        Err(error) => Err(error),
    }
}

impl MetricProvider for JobProvider {
    fn plugin_type() -> String {
        PLUGIN_TYPE.into()
    }

    fn run(ctx: AnalysisContext) -> Result<Measurement, PluginError> {
        let template = job_template(&ctx)?;
        let started = now();
        let running = Measurement {
            phase: AnalysisPhase::Running,
            value: None,
            message: None,
            started_at: Some(started),
            finished_at: None,
            resume_at: Some(started + RESUME_AFTER_SECONDS),
            metadata: Vec::new(),
        };
        let existing = match metric_jobs(&ctx) {
            Ok(jobs) => jobs,
            Err(error) => return kube_failure(running, "listing the metric's Jobs", error),
        };
        let mut number = existing
            .iter()
            .filter_map(|job| job_number(name_of(job)))
            .max()
            .unwrap_or(0)
            + 1;
        for _ in 0..CREATE_ATTEMPTS {
            let name = job_name(&ctx.uid, &ctx.metric_name, number);
            match kube::create_dynamic(Some(&ctx.namespace), &job_object(&ctx, &template, &name)) {
                Ok(created) => {
                    let name = name_of(&created).to_owned();
                    sluice_plugin_sdk::info!(
                        "job {}/{name} created for metric {}",
                        ctx.namespace,
                        ctx.metric_name
                    );
                    let mut measurement = running;
                    measurement.metadata = vec![
                        (JOB_NAME_KEY.into(), name),
                        (JOB_NAMESPACE_KEY.into(), ctx.namespace.clone()),
                    ];
                    return Ok(measurement);
                }
                Err(KubeError::Conflict(_)) => number += 1,
                Err(error) => return kube_failure(running, &format!("creating job {name}"), error),
            }
        }
        Ok(into_error(
            running,
            format!("could not find a free job name after {CREATE_ATTEMPTS} attempts"),
        ))
    }

    fn resume(ctx: AnalysisContext, mut current: Measurement) -> Result<Measurement, PluginError> {
        let Some(name) = metadata_value(&current, JOB_NAME_KEY).map(str::to_owned) else {
            return Ok(into_error(current, "job metadata reference missing".into()));
        };
        let namespace = metadata_value(&current, JOB_NAMESPACE_KEY)
            .unwrap_or(&ctx.namespace)
            .to_owned();
        let job = match kube::get_dynamic(job_gvk(), Some(&namespace), &name) {
            Ok(job) => job,
            Err(error) => {
                return kube_failure(current, &format!("reading job {namespace}/{name}"), error);
            }
        };
        let conditions = job
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let holds = |kind: &str| {
            conditions
                .iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        };
        let phase = if holds("Failed") {
            AnalysisPhase::Failed
        } else if holds("Complete") {
            AnalysisPhase::Successful
        } else {
            current.resume_at = Some(now() + RESUME_AFTER_SECONDS);
            return Ok(current);
        };
        sluice_plugin_sdk::info!("job {namespace}/{name} completed: {phase:?}");
        current.phase = phase;
        current.finished_at = Some(now().max(current.started_at.unwrap_or(0)));
        current.resume_at = None;
        Ok(current)
    }

    fn terminate(
        ctx: AnalysisContext,
        mut current: Measurement,
    ) -> Result<Measurement, PluginError> {
        let Some(name) = metadata_value(&current, JOB_NAME_KEY).map(str::to_owned) else {
            return Ok(into_error(current, "job metadata reference missing".into()));
        };
        let namespace = metadata_value(&current, JOB_NAMESPACE_KEY)
            .unwrap_or(&ctx.namespace)
            .to_owned();
        if let Err(error) = delete_job(&namespace, &name) {
            return kube_failure(current, &format!("deleting job {namespace}/{name}"), error);
        }
        sluice_plugin_sdk::info!("job {namespace}/{name} terminated");
        current.phase = AnalysisPhase::Successful;
        current.message = Some("Metric Terminated".into());
        current.finished_at = Some(now().max(current.started_at.unwrap_or(0)));
        current.resume_at = None;
        Ok(current)
    }

    fn garbage_collect(ctx: AnalysisContext, limit: u32) -> Result<(), PluginError> {
        let mut jobs = metric_jobs(&ctx)?;
        let keep = usize::try_from(limit).unwrap_or(usize::MAX);
        if jobs.len() <= keep {
            return Ok(());
        }
        let created = |job: &Value| {
            job.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        jobs.sort_by_key(|job| (created(job), job_number(name_of(job)).unwrap_or(0)));
        let excess = jobs.len() - keep;
        for job in &jobs[..excess] {
            delete_job(&ctx.namespace, name_of(job))?;
            sluice_plugin_sdk::info!("job {}/{} garbage collected", ctx.namespace, name_of(job));
        }
        Ok(())
    }
}

sluice_plugin_sdk::export_metric_provider!(JobProvider);

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> AnalysisContext {
        AnalysisContext {
            namespace: "shop".into(),
            analysis_run: "checkout-6f9c-2".into(),
            uid: "0b5c7a2e-1111-4c1e-9d7a-3f2b1c0d9e8f".into(),
            metric_name: "smoke".into(),
            plugin_name: String::new(),
            plugin_config: String::new(),
            metric_json: String::new(),
        }
    }

    #[test]
    fn jobs_are_named_and_labelled_as_argo_does() {
        let ctx = context();
        let name = job_name(&ctx.uid, &ctx.metric_name, 3);
        assert_eq!(name, "0b5c7a2e-1111-4c1e-9d7a-3f2b1c0d9e8f.smoke.3");
        assert_eq!(job_number(&name), Some(3));
        let template = json!({"metadata": {"labels": {"team": "a"}, "annotations": {"x": "y"}}, "spec": {"backoffLimit": 1}});
        let job = job_object(&ctx, &template, &name);
        assert_eq!(job["metadata"]["labels"]["team"], "a");
        assert_eq!(job["metadata"]["labels"][RUN_UID_KEY], ctx.uid);
        assert_eq!(job["metadata"]["labels"][RUN_NAME_KEY], "checkout-6f9c-2");
        assert_eq!(job["metadata"]["labels"][METRIC_NAME_KEY], "smoke");
        assert_eq!(job["metadata"]["annotations"]["x"], "y");
        assert_eq!(
            job["metadata"]["annotations"][RUN_NAME_KEY],
            "checkout-6f9c-2"
        );
        assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], ctx.uid);
        assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(job["spec"], json!({"backoffLimit": 1}));
    }

    #[test]
    fn names_that_are_not_label_values_stay_annotations_only() {
        let mut ctx = context();
        ctx.analysis_run = "a".repeat(64);
        let job = job_object(&ctx, &json!({"spec": {}}), "x.smoke.1");
        assert!(job["metadata"]["labels"].get(RUN_NAME_KEY).is_none());
        assert_eq!(
            job["metadata"]["annotations"][RUN_NAME_KEY],
            ctx.analysis_run
        );
    }
}
