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

/// `--instance-id`: a Rollout labelled for instance `blue` is handled by that controller alone,
/// including its AnalysisRun (which carries the label); a second controller without an instance
/// ID watching the same namespace makes no write at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_handles_its_rollouts_and_their_analysis_runs_alone() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-instance-id").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    install_plugins(&client, &namespace).await?;
    create_echo_template(&client, &namespace).await?;
    let blue = RunningController::start_with(
        client.clone(),
        &namespace,
        sluice_controller::ControllerOptions {
            instance_id: Some("blue".into()),
            ..sluice_controller::ControllerOptions::default()
        },
    )?;
    let unlabelled = RunningController::start(client.clone(), &namespace)?;

    let steps = json!({"steps": [{"setWeight": 50}, analysis_step("0.99")]});
    let mut labelled = rollout("blue-app", 2, steps);
    labelled.metadata.labels = Some(
        [(
            "argo-rollouts.argoproj.io/controller-instance-id".to_string(),
            "blue".to_string(),
        )]
        .into(),
    );
    create_rollout(&client, &namespace, &labelled).await?;
    let first = wait_healthy(&client, &namespace, "blue-app").await?;
    let first_hash = first.status.unwrap_or_default().stable_rs;
    set_image(&client, &namespace, "blue-app", "example/app:2").await?;
    wait_rollout(
        &client,
        &namespace,
        "blue-app",
        "promoted past the analysis",
        |rollout| {
            let status = rollout.status.clone().unwrap_or_default();
            status.current_pod_hash != first_hash
                && status.current_step_index == Some(2)
                && status.stable_rs == status.current_pod_hash
        },
    )
    .await?;

    let runs = runs(&client, &namespace).await?;
    assert_eq!(runs.len(), 1);
    assert_eq!(phase_of(&runs[0]), Some("Successful"));
    assert_eq!(
        runs[0]
            .labels()
            .get("argo-rollouts.argoproj.io/controller-instance-id")
            .map(String::as_str),
        Some("blue")
    );
    assert!(blue.metrics.requests_in_namespace(&namespace) > 0);
    assert_eq!(
        unlabelled.metrics.requests_in_namespace(&namespace),
        0,
        "the controller without an instance ID wrote to the other instance's objects"
    );

    unlabelled.stop().await?;
    blue.stop().await
}
