//! End-to-end: a standalone AnalysisRun with `ttlStrategy` is measured, completes, and is then
//! deleted by the controller once its TTL has passed.

mod common;

use std::time::Duration;

use common::*;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use sluice_api::analysis::AnalysisRun;
use sluice_localcluster::LocalCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_run_is_deleted_after_its_ttl() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-analysis-ttl").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    install_plugins(&client, &namespace).await?;
    let controller = RunningController::start(client.clone(), &namespace)?;

    let run: AnalysisRun = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "short-lived"},
        "spec": {
            "ttlStrategy": {"secondsAfterSuccess": 2, "secondsAfterFailure": 600},
            "metrics": [{
                "name": "quality",
                "successCondition": "result >= 0.95",
                "provider": {"plugin": {ECHO_PROVIDER: {"value": "0.99"}}},
            }],
        },
    }))?;
    let runs = Api::<AnalysisRun>::namespaced(client.clone(), &namespace);
    runs.create(&PostParams::default(), &run).await?;

    let completed = eventually("the run Successful", Duration::from_secs(30), || async {
        let run = runs.get_opt("short-lived").await?;
        Ok(run.filter(|run| phase_of(run) == Some("Successful")))
    })
    .await?;
    assert!(
        completed
            .status
            .as_ref()
            .and_then(|status| status.completed_at.as_ref())
            .is_some(),
        "completedAt recorded"
    );
    eventually(
        "the run deleted after its TTL",
        Duration::from_secs(30),
        || async { Ok(runs.get_opt("short-lived").await?.is_none().then_some(())) },
    )
    .await?;
    controller.stop().await
}
