//! End-to-end: canary analysis steps measured by the built-in Prometheus provider against a real
//! Prometheus scraping an exporter whose error ratio the test controls.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use common::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sluice_api::analysis::AnalysisTemplate;
use sluice_localcluster::{LocalCluster, LocalPrometheus, MetricsExporter};

/// Requests the traffic generator records per tick (every 200 ms).
const REQUESTS_PER_TICK: u64 = 20;

/// The error ratio of the `shop` service over the last 5 s.
const ERROR_RATIO: &str = r#"sum(rate(http_requests_total{service="shop",code="500"}[5s])) / sum(rate(http_requests_total{service="shop"}[5s]))"#;

/// An exporter scraped by a real Prometheus, fed by a traffic generator whose error percentage
/// the test sets.
struct Traffic {
    prometheus: LocalPrometheus,
    error_percent: Arc<AtomicU64>,
    generator: tokio::task::JoinHandle<()>,
    _exporter: Arc<MetricsExporter>,
}

impl Traffic {
    async fn start(error_percent: u64) -> anyhow::Result<Self> {
        let exporter = Arc::new(MetricsExporter::start().await?);
        let prometheus = LocalPrometheus::start(&[exporter.address()]).await?;
        let error_percent = Arc::new(AtomicU64::new(error_percent));
        let generator = tokio::spawn({
            let exporter = exporter.clone();
            let error_percent = error_percent.clone();
            async move {
                loop {
                    let errors = REQUESTS_PER_TICK * error_percent.load(Ordering::Relaxed) / 100;
                    exporter.record_requests(
                        &[("service", "shop"), ("code", "200")],
                        REQUESTS_PER_TICK - errors,
                    );
                    exporter.record_requests(&[("service", "shop"), ("code", "500")], errors);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Ok(Self {
            prometheus,
            error_percent,
            generator,
            _exporter: exporter,
        })
    }

    fn set_error_percent(&self, percent: u64) {
        self.error_percent.store(percent, Ordering::Relaxed);
    }

    /// Waits until Prometheus reports an error ratio that `accept`s.
    async fn wait_for_ratio(&self, accept: impl Fn(f64) -> bool) -> anyhow::Result<f64> {
        Ok(self
            .prometheus
            .wait_for_value(ERROR_RATIO, Duration::from_secs(30), accept)
            .await?)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.generator.abort();
    }
}

/// An AnalysisTemplate measuring [`ERROR_RATIO`] every 2 s with `conditions` (the metric's
/// success/failure conditions and limits).
async fn create_error_ratio_template(
    client: &Client,
    namespace: &str,
    name: &str,
    prometheus_url: &str,
    conditions: serde_json::Value,
) -> anyhow::Result<()> {
    let mut metric = json!({
        "name": "error-ratio",
        "interval": "2s",
        "provider": {"prometheus": {"address": prometheus_url, "query": ERROR_RATIO}},
    });
    for (key, value) in conditions.as_object().context("conditions")? {
        metric[key] = value.clone();
    }
    let template: AnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {"metrics": [metric]},
    }))?;
    Api::<AnalysisTemplate>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &template)
        .await?;
    Ok(())
}

/// A traffic-routed canary (echo router) of 4 pods: 25%, the analysis, 75%.
fn routed_canary_with_analysis(name: &str, template: &str) -> sluice_api::rollout::Rollout {
    rollout(
        name,
        4,
        json!({
            "canaryService": format!("{name}-canary"),
            "stableService": format!("{name}-stable"),
            "abortScaleDownDelaySeconds": 5,
            "trafficRouting": {"plugins": {ECHO_ROUTER: {}}},
            "steps": [
                {"setWeight": 25},
                {"analysis": {"templates": [{"templateName": template}]}},
                {"setWeight": 75},
            ],
        }),
    )
}

/// The ReplicaSet with this pod-template hash.
fn by_hash<'a>(replica_sets: &'a [ReplicaSet], hash: &str) -> Option<&'a ReplicaSet> {
    replica_sets.iter().find(|rs| {
        rs.labels()
            .get("rollouts-pod-template-hash")
            .map(String::as_str)
            == Some(hash)
    })
}

/// The error ratio rises mid-rollout: the AnalysisRun fails, the Rollout aborts (Degraded, with
/// Argo's message), the router gets weight 0, the canary Service selects the stable revision
/// again, and the canary is scaled down only once `abortScaleDownDelaySeconds` passed. The
/// transitions are reported as Kubernetes Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rising_error_ratio_aborts_the_canary() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-prom-abort").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let traffic = Traffic::start(0).await?;
    traffic.wait_for_ratio(|ratio| ratio == 0.0).await?;
    let prometheus_url = traffic.prometheus.url();
    install_plugins(&client, &namespace).await?;
    create_error_ratio_template(
        &client,
        &namespace,
        "error-ratio",
        &prometheus_url,
        json!({"successCondition": "result[0] < 0.05", "failureLimit": 1}),
    )
    .await?;
    create_service(&client, &namespace, "shop-canary", "shop").await?;
    create_service(&client, &namespace, "shop-stable", "shop").await?;
    let controller = RunningController::start_with_builtins(client.clone(), &namespace)?;
    let router = echo_router_weights(&client, &namespace, "shop");

    create_rollout(
        &client,
        &namespace,
        &routed_canary_with_analysis("shop", "error-ratio"),
    )
    .await?;
    let first = wait_healthy(&client, &namespace, "shop").await?;
    let stable = first
        .status
        .clone()
        .unwrap_or_default()
        .stable_rs
        .context("stable revision")?;
    set_image(&client, &namespace, "shop", "example/app:2").await?;

    // The analysis runs and passes its first measurements at 25% canary traffic.
    let run_name = eventually(
        "a successful measurement",
        Duration::from_secs(60),
        || async {
            let runs = runs(&client, &namespace).await?;
            let passed = runs.iter().find(|run| {
                run.status.as_ref().is_some_and(|status| {
                    status
                        .metric_results
                        .iter()
                        .any(|result| result.successful >= 1)
                })
            });
            Ok(passed.map(ResourceExt::name_any))
        },
    )
    .await?;
    assert_eq!(router.values().last().map(String::as_str), Some("25"));
    let canary = get_rollout(&client, &namespace, "shop")
        .await?
        .status
        .unwrap_or_default()
        .current_pod_hash
        .context("canary revision")?;
    assert_eq!(
        selected_hash(&client, &namespace, "shop-canary").await?,
        Some(canary.clone()),
        "the canary Service selects the canary during the update"
    );

    traffic.set_error_percent(50);
    let aborted = wait_phase(&client, &namespace, "shop", "Degraded").await?;
    let status = aborted.status.clone().unwrap_or_default();
    let runs = runs(&client, &namespace).await?;
    assert_eq!(runs.len(), 1, "one AnalysisRun");
    assert_eq!(runs[0].name_any(), run_name);
    assert_eq!(phase_of(&runs[0]), Some("Failed"));
    let run_message = runs[0]
        .status
        .as_ref()
        .and_then(|status| status.message.clone())
        .unwrap_or_default();
    assert_eq!(
        run_message,
        "Metric \"error-ratio\" assessed Failed due to failed (2) > failureLimit (1)"
    );
    assert_eq!(
        status.message.as_deref(),
        Some(
            format!("RolloutAborted: Rollout aborted update to revision 2: {run_message}").as_str()
        )
    );
    assert!(status.abort);
    assert_eq!(status.stable_rs.as_deref(), Some(stable.as_str()));
    let weights = status.canary.weights.clone().context("weights")?;
    assert_eq!((weights.canary.weight, weights.stable.weight), (0, 100));
    assert_eq!(
        router.values().last().map(String::as_str),
        Some("0"),
        "the router carries no canary traffic: {:?}",
        router.values()
    );
    eventually(
        "the canary Service back on stable",
        Duration::from_secs(10),
        || async {
            Ok((selected_hash(&client, &namespace, "shop-canary")
                .await?
                .as_deref()
                == Some(stable.as_str()))
            .then_some(()))
        },
    )
    .await?;
    assert_eq!(
        selected_hash(&client, &namespace, "shop-stable").await?,
        Some(stable.clone())
    );

    // The canary keeps its pod until abortScaleDownDelaySeconds (5 s) after the abort.
    let aborted_at = status.aborted_at.clone().context("abortedAt")?.0;
    let deadline = eventually(
        "the canary's scale-down deadline",
        Duration::from_secs(10),
        || async {
            let replica_sets = owned_replica_sets(&client, &namespace, &aborted).await?;
            let deadline = by_hash(&replica_sets, &canary)
                .and_then(|rs| {
                    rs.annotations()
                        .get("scale-down-deadline")
                        .map(|deadline| deadline.parse::<Timestamp>())
                })
                .transpose()?;
            Ok(deadline)
        },
    )
    .await?;
    assert!(
        deadline >= aborted_at + SignedDuration::from_secs(4),
        "deadline {deadline} is abortScaleDownDelaySeconds after the abort at {aborted_at}"
    );
    let scaled_down_at = eventually(
        "the canary scaled down",
        Duration::from_secs(30),
        || async {
            let replica_sets = owned_replica_sets(&client, &namespace, &aborted).await?;
            let canary_replicas = replicas_of(&replica_sets, Some(&canary));
            let stable_replicas = replicas_of(&replica_sets, Some(&stable));
            Ok((canary_replicas == 0 && stable_replicas == 4).then(Timestamp::now))
        },
    )
    .await?;
    assert!(
        scaled_down_at >= deadline,
        "scaled down at {scaled_down_at}, before the deadline {deadline}"
    );

    let events = events_including(&client, &namespace, "Rollout", "shop", |event| {
        event.reason == "RolloutAborted"
    })
    .await?;
    assert_eq!(
        only_event(&events, "RolloutUpdated")?.note,
        "Rollout updated to revision 2"
    );
    assert!(
        events
            .iter()
            .any(|event| event.reason == "RolloutStepCompleted"
                && event.note == "Rollout step 1/3 completed (setWeight: 25)"),
        "{events:#?}"
    );
    let failed = only_event(&events, "AnalysisRunFailed")?;
    assert_eq!(failed.type_, "Warning");
    assert_eq!(
        failed.note,
        format!("Step Analysis Run '{run_name}' Status New: 'Failed' Previous: 'Running'")
    );
    let abort = only_event(&events, "RolloutAborted")?;
    assert_eq!(abort.type_, "Warning");
    assert_eq!(
        abort.note,
        format!("Rollout aborted update to revision 2: {run_message}")
    );
    assert!(
        events
            .iter()
            .any(|event| event.reason == "TrafficWeightUpdated"
                && event.note == "Traffic weight updated from 25 to 0"),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|event| event.reason == "SwitchService"
            && event.note
                == format!(
                    "Switched selector for service 'shop-canary' from '{canary}' to '{stable}'"
                )),
        "{events:#?}"
    );
    let run_events = events_including(&client, &namespace, "AnalysisRun", &run_name, |event| {
        event.reason == "AnalysisRunFailed"
    })
    .await?;
    assert_eq!(only_event(&run_events, "MetricFailed")?.type_, "Warning");
    assert_eq!(
        only_event(&run_events, "AnalysisRunFailed")?.note,
        "Analysis Completed. Result: Failed"
    );

    controller.stop().await?;
    Ok(())
}

/// An error ratio between the success and the failure thresholds is Inconclusive: the rollout
/// pauses; the patch `sluice promote` sends resumes it past the analysis step, to Healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inconclusive_analysis_pauses_until_promoted() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-prom-inconclusive").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let traffic = Traffic::start(10).await?;
    traffic
        .wait_for_ratio(|ratio| (0.05..=0.2).contains(&ratio))
        .await?;
    let prometheus_url = traffic.prometheus.url();
    install_plugins(&client, &namespace).await?;
    create_error_ratio_template(
        &client,
        &namespace,
        "error-ratio-band",
        &prometheus_url,
        json!({
            "successCondition": "result[0] < 0.05",
            "failureCondition": "result[0] > 0.2",
        }),
    )
    .await?;
    create_service(&client, &namespace, "cart-canary", "cart").await?;
    create_service(&client, &namespace, "cart-stable", "cart").await?;
    let controller = RunningController::start_with_builtins(client.clone(), &namespace)?;
    let router = echo_router_weights(&client, &namespace, "cart");

    create_rollout(
        &client,
        &namespace,
        &routed_canary_with_analysis("cart", "error-ratio-band"),
    )
    .await?;
    wait_healthy(&client, &namespace, "cart").await?;
    set_image(&client, &namespace, "cart", "example/app:2").await?;
    let paused = wait_phase(&client, &namespace, "cart", "Paused").await?;
    let status = paused.status.clone().unwrap_or_default();
    assert_eq!(status.message.as_deref(), Some("InconclusiveAnalysisRun"));
    assert!(status.controller_pause);
    assert_eq!(
        status.current_step_index,
        Some(1),
        "held at the analysis step"
    );
    let step_run = status
        .canary
        .current_step_analysis_run_status
        .clone()
        .context("step run")?;
    assert_eq!(
        step_run.status.map(|phase| phase.as_str()),
        Some("Inconclusive")
    );
    let runs = runs(&client, &namespace).await?;
    assert_eq!(phase_of(&runs[0]), Some("Inconclusive"));
    assert_eq!(
        router.values().last().map(String::as_str),
        Some("25"),
        "the canary keeps its traffic while paused: {:?}",
        router.values()
    );

    // The Paused condition follows the pause conditions one reconcile later (as in Argo); promote
    // only once it is there, so the Paused and Resumed transitions both happen.
    wait_rollout(
        &client,
        &namespace,
        "cart",
        "the Paused condition",
        |rollout| {
            rollout.status.as_ref().is_some_and(|status| {
                status
                    .conditions
                    .iter()
                    .any(|condition| condition.type_ == "Paused" && condition.status == "True")
            })
        },
    )
    .await?;

    // `sluice promote cart` on an inconclusive canary step (host/cli/src/patches.rs, case a):
    // clear the pause, and go to the step after the analysis.
    patch_status(
        &client,
        &namespace,
        "cart",
        json!({"pauseConditions": null, "controllerPause": false, "currentStepIndex": 2}),
    )
    .await?;
    let healthy = wait_healthy(&client, &namespace, "cart").await?;
    let status = healthy.status.clone().unwrap_or_default();
    assert_eq!(status.stable_rs, status.current_pod_hash, "promoted");
    assert_eq!(status.current_step_index, Some(3));
    let runs = self::runs(&client, &namespace).await?;
    assert_eq!(runs.len(), 1, "the skipped analysis is not repeated");

    let events = events_including(&client, &namespace, "Rollout", "cart", |event| {
        event.reason == "RolloutCompleted"
            && event
                .note
                .starts_with("Rollout completed update to revision 2")
    })
    .await?;
    let inconclusive = only_event(&events, "AnalysisRunInconclusive")?;
    assert!(
        inconclusive.note.starts_with(&format!(
            "Step Analysis Run '{}' Status New: 'Inconclusive' Previous: ",
            step_run.name
        )),
        "{inconclusive:?}"
    );
    assert!(
        events.iter().any(|event| event.reason == "RolloutPaused"
            && event.note == "Rollout is paused (InconclusiveAnalysisRun)"),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|event| event.reason == "RolloutResumed"),
        "{events:#?}"
    );

    controller.stop().await?;
    Ok(())
}
