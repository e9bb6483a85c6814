//! The Job provider on the testkit's in-memory Kubernetes: create, resume on each Job outcome,
//! terminate and garbage-collect, through the real runtime and grant checks.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};
use sluice_runtime::PluginError;
use sluice_testkit::{
    AnalysisContext, AnalysisPhase, CallError, Measurement, MetricProvider, PluginHarness,
    analysis_context,
};

/// The grants the Job provider needs: Jobs in the AnalysisRun's namespace.
const GRANTS: &str = "kube: [{group: batch, kinds: [Job], verbs: [get, create, delete, list]}]";

/// The plugin's `.wasm`, built once per test binary.
fn plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        sluice_plugin_build::build_plugin(root, "sluice-plugin-job")
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fn harness() -> PluginHarness {
    PluginHarness::metric_provider(plugin())
        .unwrap()
        .expect_type("Job")
        .grants_yaml(GRANTS)
        .unwrap()
}

fn job_config() -> Value {
    json!({
        "metadata": {"labels": {"team": "checkout"}, "annotations": {"purpose": "smoke"}},
        "spec": {
            "backoffLimit": 1,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "smoke", "image": "busybox", "command": ["true"]}]}},
        },
    })
}

fn context() -> AnalysisContext {
    analysis_context("shop", "checkout-1", "smoke", &job_config().to_string())
}

fn job(harness: &PluginHarness, name: &str) -> Option<Value> {
    harness.kube().object("batch/v1", "Job", Some("shop"), name)
}

/// Writes `conditions` into the stored Job's status, as the Job controller would.
fn set_conditions(harness: &PluginHarness, name: &str, conditions: Value) {
    let mut stored = job(harness, name).unwrap();
    stored["status"] = json!({"conditions": conditions});
    harness.kube().insert(stored).unwrap();
}

fn metadata<'a>(measurement: &'a Measurement, key: &str) -> Option<&'a str> {
    measurement
        .metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

async fn started(provider: &MetricProvider) -> Measurement {
    provider.run(&context()).await.unwrap()
}

#[tokio::test]
async fn run_creates_an_owned_labelled_job_and_returns_a_running_measurement() {
    let harness = harness();
    let provider = harness.load_provider().await.unwrap();
    let measurement = started(&provider).await;
    assert_eq!(measurement.phase, AnalysisPhase::Running);
    assert_eq!(measurement.finished_at, None);
    let resume_at = measurement.resume_at.unwrap();
    assert!((resume_at - now() - 10).abs() <= 2, "resume at {resume_at}");
    assert_eq!(
        metadata(&measurement, "job-name"),
        Some("shop-checkout-1-uid.smoke.1")
    );
    assert_eq!(metadata(&measurement, "job-namespace"), Some("shop"));

    let stored = job(&harness, "shop-checkout-1-uid.smoke.1").unwrap();
    let labels = &stored["metadata"]["labels"];
    assert_eq!(labels["analysisrun.argoproj.io/uid"], "shop-checkout-1-uid");
    assert_eq!(labels["analysisrun.argoproj.io/name"], "checkout-1");
    assert_eq!(labels["analysisrun.argoproj.io/metric-name"], "smoke");
    assert_eq!(labels["team"], "checkout");
    assert_eq!(stored["metadata"]["annotations"]["purpose"], "smoke");
    assert_eq!(
        stored["metadata"]["annotations"]["analysisrun.argoproj.io/name"],
        "checkout-1"
    );
    assert_eq!(
        stored["metadata"]["ownerReferences"],
        json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun", "name": "checkout-1",
                "uid": "shop-checkout-1-uid", "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(stored["spec"], job_config()["spec"]);

    // The next measurement gets the next number.
    let second = started(&provider).await;
    assert_eq!(
        metadata(&second, "job-name"),
        Some("shop-checkout-1-uid.smoke.2")
    );
}

#[tokio::test]
async fn resume_follows_the_job_to_success_or_failure() {
    let harness = harness();
    let provider = harness.load_provider().await.unwrap();
    let first = started(&provider).await;
    let second = started(&provider).await;

    // No conditions yet: still running, looked at again later.
    let still = provider.resume(&context(), &first).await.unwrap();
    assert_eq!(
        (still.phase, still.finished_at),
        (AnalysisPhase::Running, None)
    );
    assert!(still.resume_at.unwrap() >= now() + 8);

    set_conditions(
        &harness,
        "shop-checkout-1-uid.smoke.1",
        json!([{"type": "Complete", "status": "True"}]),
    );
    let succeeded = provider.resume(&context(), &first).await.unwrap();
    assert_eq!(succeeded.phase, AnalysisPhase::Successful);
    assert_eq!(succeeded.value, None);
    assert!(succeeded.finished_at.is_some() && succeeded.resume_at.is_none());
    assert_eq!(
        metadata(&succeeded, "job-name"),
        Some("shop-checkout-1-uid.smoke.1")
    );

    set_conditions(
        &harness,
        "shop-checkout-1-uid.smoke.2",
        json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
    );
    let failed = provider.resume(&context(), &second).await.unwrap();
    assert_eq!(failed.phase, AnalysisPhase::Failed);
    assert!(failed.finished_at.is_some());
}

#[tokio::test]
async fn resume_without_the_job_is_an_error_measurement() {
    let harness = harness();
    let provider = harness.load_provider().await.unwrap();
    let running = started(&provider).await;
    let mut unlabelled = running.clone();
    unlabelled.metadata.clear();
    let missing = provider.resume(&context(), &unlabelled).await.unwrap();
    assert_eq!(
        (missing.phase, missing.message.as_deref()),
        (AnalysisPhase::Error, Some("job metadata reference missing"))
    );

    provider.terminate(&context(), &running).await.unwrap();
    let gone = provider.resume(&context(), &running).await.unwrap();
    assert_eq!(gone.phase, AnalysisPhase::Error);
    assert!(gone.message.unwrap().contains("not found"));
}

#[tokio::test]
async fn terminate_deletes_the_job_and_finishes_successfully() {
    let harness = harness();
    let provider = harness.load_provider().await.unwrap();
    let running = started(&provider).await;
    let terminated = provider.terminate(&context(), &running).await.unwrap();
    assert_eq!(terminated.phase, AnalysisPhase::Successful);
    assert_eq!(terminated.message.as_deref(), Some("Metric Terminated"));
    assert!(terminated.finished_at.is_some());
    assert!(job(&harness, "shop-checkout-1-uid.smoke.1").is_none());
    // Terminating again (the Job is gone) still succeeds.
    assert_eq!(
        provider
            .terminate(&context(), &running)
            .await
            .unwrap()
            .phase,
        AnalysisPhase::Successful
    );
}

#[tokio::test]
async fn garbage_collect_keeps_the_newest_jobs_of_the_metric() {
    let harness = harness();
    let provider = harness.load_provider().await.unwrap();
    for _ in 0..4 {
        started(&provider).await;
    }
    let other_metric = analysis_context("shop", "checkout-1", "load", &job_config().to_string());
    provider.run(&other_metric).await.unwrap();

    provider.garbage_collect(&context(), 2).await.unwrap();
    let remaining: Vec<bool> = (1..=4)
        .map(|n| job(&harness, &format!("shop-checkout-1-uid.smoke.{n}")).is_some())
        .collect();
    assert_eq!(remaining, vec![false, false, true, true]);
    assert!(
        job(&harness, "shop-checkout-1-uid.load.1").is_some(),
        "another metric's Job is kept"
    );

    // New numbers continue after the newest remaining Job.
    assert_eq!(
        metadata(&started(&provider).await, "job-name"),
        Some("shop-checkout-1-uid.smoke.5")
    );
    provider.garbage_collect(&context(), 5).await.unwrap();
    assert_eq!(
        (3..=5)
            .filter(|n| job(&harness, &format!("shop-checkout-1-uid.smoke.{n}")).is_some())
            .count(),
        3
    );
}

#[tokio::test]
async fn missing_spec_and_missing_grants_are_call_errors() {
    let harness = harness();
    let provider = harness.load_provider().await.unwrap();
    let error = provider
        .run(&analysis_context("shop", "checkout-1", "smoke", "{}"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::Plugin { error: PluginError::InvalidConfig(m), .. } if m.contains("provider.job.spec")),
        "{error:?}"
    );

    let mut from_metric = analysis_context("shop", "checkout-1", "smoke", "{}");
    from_metric.metric_json =
        json!({"name": "smoke", "provider": {"job": job_config()}}).to_string();
    assert_eq!(
        provider.run(&from_metric).await.unwrap().phase,
        AnalysisPhase::Running
    );

    let ungranted = PluginHarness::metric_provider(plugin()).unwrap();
    let error = ungranted
        .load_provider()
        .await
        .unwrap()
        .run(&context())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::AccessDenied { message, .. } if message.contains("Job")),
        "{error:?}"
    );
}
