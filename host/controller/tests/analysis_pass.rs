//! End-to-end: an analysis step measured by the echo metric-provider plugin (loaded from
//! `file://` through the plugin ConfigMap) passes and the canary is promoted.

mod common;

use std::time::Duration;

use common::*;
use kube::ResourceExt;
use serde_json::json;
use sluice_localcluster::LocalCluster;

/// A value that meets the success condition lets the analysis step pass: the run is
/// Successful, labelled as Argo labels step runs, and the Rollout becomes Healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_analysis_step_promotes_the_canary() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-analysis-pass").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    install_plugins(&client, &namespace).await?;
    create_echo_template(&client, &namespace).await?;
    let controller = RunningController::start(client.clone(), &namespace)?;

    let steps = json!({"steps": [{"setWeight": 50}, analysis_step("0.99")]});
    create_rollout(&client, &namespace, &rollout("checked", 2, steps)).await?;
    let first = wait_healthy(&client, &namespace, "checked").await?;
    let first_hash = first.status.clone().unwrap_or_default().stable_rs;
    set_image(&client, &namespace, "checked", "example/app:2").await?;
    let promoted = eventually("the canary promoted", Duration::from_secs(60), || async {
        let rollout = get_rollout(&client, &namespace, "checked").await?;
        let status = rollout.status.clone().unwrap_or_default();
        let done = status.phase.map(|phase| phase.as_str()) == Some("Healthy")
            && status.current_pod_hash != first_hash
            && status.current_step_index == Some(2)
            && status.stable_rs == status.current_pod_hash;
        Ok(done.then_some(rollout))
    })
    .await?;

    let runs = runs(&client, &namespace).await?;
    assert_eq!(runs.len(), 1, "one run for the analysis step");
    let run = &runs[0];
    assert_eq!(phase_of(run), Some("Successful"));
    let labels = run.labels();
    assert_eq!(labels.get("rollout-type").map(String::as_str), Some("Step"));
    assert_eq!(labels.get("step-index").map(String::as_str), Some("1"));
    assert_eq!(
        labels.get("rollouts-pod-template-hash"),
        promoted
            .status
            .as_ref()
            .and_then(|status| status.current_pod_hash.as_ref())
    );
    assert!(
        run.owner_references()
            .iter()
            .any(|owner| owner.kind == "Rollout" && owner.controller == Some(true))
    );
    let measurement = &run.status.as_ref().expect("status").metric_results[0].measurements[0];
    assert_eq!(measurement.value.as_deref(), Some("0.99"));

    controller.stop().await?;
    Ok(())
}
