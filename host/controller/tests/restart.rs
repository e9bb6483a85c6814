//! End-to-end: the controller is killed mid-rollout and started again; the rollout resumes at
//! the step it was on, without repeating or skipping one.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use sluice_localcluster::LocalCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_at_the_same_step() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-restart").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let controller = RunningController::start(client.clone(), &namespace)?;

    let steps = json!({"steps": [
        {"setWeight": 25}, {"pause": {}},
        {"setWeight": 50}, {"pause": {"duration": "2s"}},
    ]});
    create_rollout(&client, &namespace, &rollout("api", 4, steps)).await?;
    let first = wait_healthy(&client, &namespace, "api").await?;
    let stable = first.status.clone().unwrap_or_default().stable_rs;
    set_image(&client, &namespace, "api", "example/app:2").await?;

    // Paused indefinitely at step 1 with 1 canary and 3 stable pods.
    let paused = eventually("the pause at step 1", Duration::from_secs(60), || async {
        let rollout = get_rollout(&client, &namespace, "api").await?;
        let status = rollout.status.clone().unwrap_or_default();
        let paused = status.current_step_index == Some(1) && !status.pause_conditions.is_empty();
        Ok(paused.then_some(rollout))
    })
    .await?;
    let canary = paused.status.clone().unwrap_or_default().current_pod_hash;
    let counts = |replica_sets: &[_]| {
        (
            replicas_of(replica_sets, canary.as_deref()),
            replicas_of(replica_sets, stable.as_deref()),
        )
    };
    assert_eq!(
        counts(&owned_replica_sets(&client, &namespace, &paused).await?),
        (1, 3)
    );

    // Kill it while paused and start a new one: nothing moves.
    controller.kill().await;
    let controller = RunningController::start(client.clone(), &namespace)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resumed = get_rollout(&client, &namespace, "api").await?;
    let status = resumed.status.clone().unwrap_or_default();
    assert_eq!(
        status.current_step_index,
        Some(1),
        "still at the pause step"
    );
    assert!(!status.pause_conditions.is_empty(), "still paused");
    let replica_sets = owned_replica_sets(&client, &namespace, &resumed).await?;
    assert_eq!(replica_sets.len(), 2, "no ReplicaSet created again");
    assert_eq!(
        counts(&replica_sets),
        (1, 3),
        "no scaling repeated or skipped"
    );

    // Promote (what `kubectl argo rollouts promote` patches), then kill the controller during the
    // timed pause of step 3.
    patch_status(&client, &namespace, "api", json!({"pauseConditions": null})).await?;
    eventually(
        "the timed pause at step 3",
        Duration::from_secs(60),
        || async {
            let rollout = get_rollout(&client, &namespace, "api").await?;
            let status = rollout.status.clone().unwrap_or_default();
            Ok((status.current_step_index == Some(3)).then_some(()))
        },
    )
    .await?;
    let at_step_3 = get_rollout(&client, &namespace, "api").await?;
    assert_eq!(
        counts(&owned_replica_sets(&client, &namespace, &at_step_3).await?),
        (2, 2)
    );
    controller.kill().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let controller = RunningController::start(client.clone(), &namespace)?;

    let done = wait_healthy(&client, &namespace, "api").await?;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(status.current_step_index, Some(4));
    assert_eq!(status.stable_rs, canary, "the canary became stable");
    let replica_sets = owned_replica_sets(&client, &namespace, &done).await?;
    assert_eq!(
        replica_sets.len(),
        2,
        "still two ReplicaSets: none created twice"
    );
    assert_eq!(counts(&replica_sets), (4, 0));

    controller.stop().await?;
    Ok(())
}
