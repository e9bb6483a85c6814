//! End-to-end: an analysis step measured by the echo metric-provider plugin fails and the
//! rollout is aborted.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use sluice_localcluster::LocalCluster;

/// A value that fails the success condition fails the run, which aborts the rollout: phase
/// Degraded with Argo's message and the canary scaled to zero at once (basic canary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_analysis_step_aborts_the_rollout() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-analysis-fail").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    install_plugins(&client, &namespace).await?;
    create_echo_template(&client, &namespace).await?;
    let controller = RunningController::start(client.clone(), &namespace)?;

    let steps = json!({"steps": [{"setWeight": 50}, analysis_step("0.5")]});
    create_rollout(&client, &namespace, &rollout("doomed", 2, steps)).await?;
    let first = wait_healthy(&client, &namespace, "doomed").await?;
    let stable = first.status.clone().unwrap_or_default().stable_rs;
    set_image(&client, &namespace, "doomed", "example/app:2").await?;
    let aborted = eventually("the rollout aborted", Duration::from_secs(60), || async {
        let rollout = get_rollout(&client, &namespace, "doomed").await?;
        let status = rollout.status.clone().unwrap_or_default();
        Ok((status.phase.map(|phase| phase.as_str()) == Some("Degraded")).then_some(rollout))
    })
    .await?;
    let status = aborted.status.clone().unwrap_or_default();
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "Argo's abort message, got {message:?}"
    );
    assert!(status.abort, "the abort is recorded in status");
    assert_eq!(
        status.stable_rs, stable,
        "the stable revision does not change"
    );

    let runs = runs(&client, &namespace).await?;
    assert_eq!(runs.len(), 1);
    assert_eq!(phase_of(&runs[0]), Some("Failed"));
    wait_canary_scaled_to_zero(&client, &namespace, &aborted, 2, Duration::from_secs(10)).await?;

    controller.stop().await?;
    Ok(())
}
