//! The Job provider against a real kube-apiserver through the production runtime and its
//! Kubernetes backend: the Job is accepted with Argo's labels and an owner reference to a real
//! AnalysisRun, `resume` reads the status the test writes (no kubelet runs the Pods), `terminate`
//! deletes the Job and `garbage-collect` keeps the newest.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use sluice_localcluster::LocalCluster;
use sluice_runtime::{
    AnalysisContext, AnalysisPhase, ClientKubeBackend, EngineOptions, GrantsSpec, HostServices,
    Limits, Measurement, MetricProvider, Plugin, PluginEngine, PluginKind, PluginMetrics,
    PluginSpec, ReqwestHttpBackend,
};
use sluice_testkit::analysis_context;

fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

async fn load_provider(client: kube::Client) -> anyhow::Result<MetricProvider> {
    let wasm = sluice_plugin_build::build_plugin(workspace_root(), "sluice-plugin-job")?;
    let engine = PluginEngine::new(EngineOptions::default())?;
    let compiled = engine
        .compile_component(std::fs::read(wasm)?.into())
        .await?;
    let grants: GrantsSpec = serde_json::from_value(
        json!({"kube": [{"group": "batch", "kinds": ["Job"], "verbs": ["get", "create", "delete", "list"]}]}),
    )?;
    let spec = PluginSpec {
        name: "job".into(),
        kind: PluginKind::MetricProvider,
        grants: grants.validate()?,
        limits: Limits::default(),
        args: Vec::new(),
        expected_type: Some("Job".into()),
    };
    let services = HostServices {
        kube: Arc::new(ClientKubeBackend::new(client)),
        http: Arc::new(ReqwestHttpBackend::new()?),
        observer: None,
    };
    let metrics = PluginMetrics::register(&mut prometheus_client::registry::Registry::default());
    match engine
        .load_plugin(spec, &compiled, services, metrics)
        .await?
    {
        Plugin::MetricProvider(provider) => Ok(provider),
        other => anyhow::bail!("loaded as another kind: {other:?}"),
    }
}

fn job_config() -> Value {
    json!({
        "metadata": {"labels": {"team": "checkout"}},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "smoke", "image": "busybox", "command": ["true"]}]}},
        },
    })
}

/// Creates the AnalysisRun the Jobs belong to and returns its UID.
async fn create_analysis_run(client: kube::Client, namespace: &str) -> anyhow::Result<String> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "argoproj.io",
        "v1alpha1",
        "AnalysisRun",
    ));
    let runs: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
    let run: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "checkout-1"},
        "spec": {"metrics": [{"name": "smoke", "provider": {"job": job_config()}}]},
    }))?;
    let created = runs.create(&PostParams::default(), &run).await?;
    created
        .metadata
        .uid
        .ok_or_else(|| anyhow::anyhow!("AnalysisRun without uid"))
}

/// Writes a finished condition through the status subresource, as the Job controller would.
async fn write_finished_status(jobs: &Api<Job>, name: &str, condition: &str) -> anyhow::Result<()> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut status = json!({"conditions": [{"type": condition, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]});
    if condition == "Complete" {
        status["succeeded"] = json!(1);
        status["startTime"] = json!(now);
        status["completionTime"] = json!(now);
    } else {
        status["failed"] = json!(1);
    }
    jobs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(())
}

/// Finishes the measurement's Job with `condition` and returns the phase `resume` reports.
///
/// The real Job controller may still be syncing the new Job and writes its whole status back
/// (it re-reads the Job and replaces the status), which can undo the test's write once; the
/// status is written again until the controller has seen the Job finished.
async fn finish_and_resume(
    provider: &MetricProvider,
    ctx: &AnalysisContext,
    jobs: &Api<Job>,
    measurement: &Measurement,
    condition: &str,
) -> anyhow::Result<AnalysisPhase> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        write_finished_status(jobs, &job_name(measurement), condition).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let resumed = provider.resume(ctx, measurement).await?;
        if resumed.phase != AnalysisPhase::Running || Instant::now() > deadline {
            return Ok(resumed.phase);
        }
    }
}

fn job_name(measurement: &Measurement) -> String {
    measurement
        .metadata
        .iter()
        .find(|(k, _)| k == "job-name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

async fn wait_until_gone(jobs: &Api<Job>, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while jobs.get_opt(name).await?.is_some() {
        anyhow::ensure!(Instant::now() < deadline, "job {name} still exists");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test]
async fn jobs_are_created_read_terminated_and_collected_on_a_real_apiserver() -> anyhow::Result<()>
{
    let cluster = LocalCluster::shared();
    cluster.install_crds(&workspace_root().join("crds")).await?;
    let namespace = cluster.namespace("job-provider").await?;
    let uid = create_analysis_run(namespace.client(), namespace.name()).await?;
    let provider = load_provider(namespace.client()).await?;
    let jobs: Api<Job> = Api::namespaced(namespace.client(), namespace.name());
    let ctx = AnalysisContext {
        uid: uid.clone(),
        ..analysis_context(
            namespace.name(),
            "checkout-1",
            "smoke",
            &job_config().to_string(),
        )
    };

    // Run: the apiserver accepts the Job with Argo's name, labels and owner reference.
    let started = Instant::now();
    let first = provider.run(&ctx).await?;
    let run_time = started.elapsed();
    assert_eq!(first.phase, AnalysisPhase::Running, "{first:?}");
    assert_eq!(job_name(&first), format!("{uid}.smoke.1"));
    let stored = jobs.get(&job_name(&first)).await?;
    let labels = stored.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("analysisrun.argoproj.io/uid"), Some(&uid));
    assert_eq!(
        labels
            .get("analysisrun.argoproj.io/name")
            .map(String::as_str),
        Some("checkout-1")
    );
    assert_eq!(
        labels
            .get("analysisrun.argoproj.io/metric-name")
            .map(String::as_str),
        Some("smoke")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("checkout"));
    let owner = &stored.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("AnalysisRun", "checkout-1", uid.as_str())
    );
    assert_eq!(owner.controller, Some(true));

    // Resume: running until the status says otherwise.
    let started = Instant::now();
    let still = provider.resume(&ctx, &first).await?;
    let resume_time = started.elapsed();
    assert_eq!(still.phase, AnalysisPhase::Running);
    assert_eq!(
        finish_and_resume(&provider, &ctx, &jobs, &first, "Complete").await?,
        AnalysisPhase::Successful
    );

    let second = provider.run(&ctx).await?;
    assert_eq!(job_name(&second), format!("{uid}.smoke.2"));
    assert_eq!(
        finish_and_resume(&provider, &ctx, &jobs, &second, "Failed").await?,
        AnalysisPhase::Failed
    );

    // Terminate deletes the Job.
    let third = provider.run(&ctx).await?;
    assert_eq!(job_name(&third), format!("{uid}.smoke.3"));
    let terminated = provider.terminate(&ctx, &third).await?;
    assert_eq!(terminated.phase, AnalysisPhase::Successful);
    wait_until_gone(&jobs, &job_name(&third)).await?;

    // Garbage collection keeps the newest Job of the metric.
    provider.garbage_collect(&ctx, 1).await?;
    wait_until_gone(&jobs, &job_name(&first)).await?;
    assert!(jobs.get_opt(&job_name(&second)).await?.is_some());
    println!(
        "job provider on a real apiserver: run {run_time:?}, resume {resume_time:?} per call through the runtime"
    );
    Ok(())
}
