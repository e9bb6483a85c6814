//! End-to-end: a traffic-routed canary whose router is the echo router plugin (loaded from
//! `file://` through the plugin ConfigMap).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use sluice_api::analysis::AnalysisRun;
use sluice_localcluster::LocalCluster;

/// A traffic-routed canary through the echo router plugin: the router receives every step's
/// weight, and when the analysis run fails it gets weight 0 before the Rollout is Degraded;
/// the canary is scaled down after `abortScaleDownDelaySeconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_routed_canary_sets_weights_and_returns_traffic_on_abort() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-router").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    install_plugins(&client, &namespace).await?;
    create_echo_template(&client, &namespace).await?;
    create_service(&client, &namespace, "shop-canary", "shop").await?;
    create_service(&client, &namespace, "shop-stable", "shop").await?;
    let controller = RunningController::start(client.clone(), &namespace)?;

    let canary = json!({
        "canaryService": "shop-canary",
        "stableService": "shop-stable",
        "abortScaleDownDelaySeconds": 1,
        "trafficRouting": {"plugins": {ECHO_ROUTER: {}}},
        "steps": [
            {"setWeight": 20}, {"pause": {"duration": "1s"}},
            {"setWeight": 60}, {"pause": {"duration": "1s"}},
            analysis_step("0.5"),
        ],
    });
    create_rollout(&client, &namespace, &rollout("shop", 5, canary)).await?;
    let first = wait_healthy(&client, &namespace, "shop").await?;
    let stable = first.status.clone().unwrap_or_default().stable_rs;
    set_image(&client, &namespace, "shop", "example/app:2").await?;

    // Every write of the echo router and every AnalysisRun change, as watch events.
    let weights = Recording::start(
        Api::<ConfigMap>::namespaced(client.clone(), &namespace),
        "shop-echo",
        |map: &ConfigMap| map.data.as_ref()?.get("weight").cloned(),
    );
    let failed_runs = Arc::new(Mutex::new(None::<SystemTime>));
    let run_watch = tokio::spawn({
        let failed_runs = failed_runs.clone();
        let api: Api<AnalysisRun> = Api::namespaced(client.clone(), &namespace);
        async move {
            let mut events = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(run)) = events.next().await {
                if phase_of(&run) == Some("Failed") {
                    failed_runs
                        .lock()
                        .expect("runs")
                        .get_or_insert_with(SystemTime::now);
                }
            }
        }
    });
    let aborted = eventually("the rollout aborted", Duration::from_secs(60), || async {
        let rollout = get_rollout(&client, &namespace, "shop").await?;
        let status = rollout.status.clone().unwrap_or_default();
        Ok((status.phase.map(|phase| phase.as_str()) == Some("Degraded")).then_some(rollout))
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    run_watch.abort();
    let weights = weights.timed();
    let sequence: Vec<&str> = weights.iter().map(|(weight, _)| weight.as_str()).collect();
    let position = |wanted: &str| sequence.iter().position(|weight| *weight == wanted);
    assert!(
        position("20").is_some(),
        "setWeight 20 reached the router: {sequence:?}"
    );
    assert!(
        position("60").is_some(),
        "setWeight 60 reached the router: {sequence:?}"
    );
    assert!(
        position("20") < position("60"),
        "weights in step order: {sequence:?}"
    );
    assert_eq!(
        sequence.last(),
        Some(&"0"),
        "traffic back on stable: {sequence:?}"
    );
    let failed_at = failed_runs.lock().expect("runs").expect("the run failed");
    let (_, stable_at) = weights.last().expect("a weight");
    println!(
        "AnalysisRun Failed event -> weight 0 event (both seen by watches): {:?}",
        stable_at.duration_since(failed_at).unwrap_or_default()
    );

    let status = aborted.status.clone().unwrap_or_default();
    assert!(
        status
            .message
            .unwrap_or_default()
            .starts_with("RolloutAborted: Rollout aborted update to revision 2")
    );
    assert_eq!(
        status.stable_rs, stable,
        "the stable revision does not change"
    );
    // after the abort scale-down delay
    wait_canary_scaled_to_zero(&client, &namespace, &aborted, 5, Duration::from_secs(15)).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let selected = |service: Service| {
        service
            .spec
            .and_then(|spec| spec.selector)
            .unwrap_or_default()
            .get("rollouts-pod-template-hash")
            .cloned()
    };
    assert_eq!(
        selected(services.get("shop-stable").await?),
        stable,
        "the stable Service keeps selecting the stable revision"
    );
    assert!(
        selected(services.get("shop-canary").await?).is_some(),
        "the canary Service is managed by the Rollout"
    );

    controller.stop().await?;
    Ok(())
}
