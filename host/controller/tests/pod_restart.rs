//! End-to-end: `spec.restartAt` (the patch `sluice restart` sends) evicts every pod created
//! before it, never below the availability `maxUnavailable` allows, and records
//! `status.restartedAt`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use sluice_api::rollout::Rollout;
use sluice_localcluster::LocalCluster;

#[tokio::test]
async fn restart_at_replaces_every_older_pod_and_records_it() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-restart").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let controller = RunningController::start(client.clone(), &namespace)?;

    let canary = json!({"maxUnavailable": 1, "steps": [{"setWeight": 50}]});
    create_rollout(&client, &namespace, &rollout("web", 3, canary)).await?;
    let healthy = wait_healthy(&client, &namespace, "web").await?;
    let stable = healthy
        .status
        .unwrap_or_default()
        .stable_rs
        .unwrap_or_default();
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    let before: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(before.len(), 3);

    // Pod creation timestamps have a one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let restart_at = Timestamp::now().round(k8s_openapi::jiff::Unit::Second)?;
    Api::<Rollout>::namespaced(client.clone(), &namespace)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"restartAt": restart_at.to_string()}})),
        )
        .await?;

    let fewest_ready = Arc::new(AtomicUsize::new(3));
    let restarted = eventually("the restart to complete", Duration::from_secs(60), || {
        let client = client.clone();
        let namespace = namespace.clone();
        let pods = pods.clone();
        let fewest = fewest_ready.clone();
        async move {
            let listed = pods.list(&ListParams::default().labels("app=web")).await?;
            let ready = listed
                .items
                .iter()
                .filter(|pod| pod.metadata.deletion_timestamp.is_none())
                .filter(|pod| {
                    pod.status
                        .as_ref()
                        .and_then(|status| status.conditions.as_ref())
                        .is_some_and(|conditions| {
                            conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
                .count();
            fewest.fetch_min(ready, Ordering::Relaxed);
            let status = get_rollout(&client, &namespace, "web")
                .await?
                .status
                .unwrap_or_default();
            anyhow::Ok(
                (status.restarted_at.as_ref().map(|time| time.0) == Some(restart_at))
                    .then_some(listed.items),
            )
        }
    })
    .await?;
    let live: Vec<&Pod> = restarted
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(live.len(), 3, "the ReplicaSet is whole again");
    for pod in &live {
        assert!(
            !before.contains(&pod.name_any()),
            "{} was not restarted",
            pod.name_any()
        );
        let created = pod.creation_timestamp().map(|time| time.0);
        assert!(
            created >= Some(restart_at),
            "{} is older than restartAt",
            pod.name_any()
        );
        assert_eq!(
            pod.labels().get("rollouts-pod-template-hash"),
            Some(&stable),
            "the restart keeps the revision"
        );
    }
    let fewest_ready = fewest_ready.load(Ordering::Relaxed);
    assert!(
        fewest_ready >= 2,
        "at most maxUnavailable (1) pod was down at once; fewest ready seen: {fewest_ready}"
    );
    // Healthy again once the last replacement is available.
    let healthy = wait_healthy(&client, &namespace, "web").await?;
    let status = healthy.status.unwrap_or_default();
    assert_eq!(status.restarted_at.map(|time| time.0), Some(restart_at));
    controller.stop().await
}
