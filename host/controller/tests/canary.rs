//! End-to-end: basic canaries and invalid Rollouts against the local control plane.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use sluice_api::validation::{summarize, validate_rollout};
use sluice_localcluster::LocalCluster;

/// A basic canary (no router) of 4 replicas through setWeight 25 / pause 1s / setWeight 50 /
/// pause 1s: the ReplicaSets have sluice-core's sizes at each pause, the rollout ends Healthy,
/// and once it is settled a reconcile makes no API request.
#[tokio::test]
async fn basic_canary_reaches_healthy_with_the_planned_replica_counts() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-basic").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let controller = RunningController::start(client.clone(), &namespace)?;

    let steps = json!({"steps": [
        {"setWeight": 25}, {"pause": {"duration": "1s"}},
        {"setWeight": 50}, {"pause": {"duration": "1s"}},
    ]});
    create_rollout(&client, &namespace, &rollout("web", 4, steps)).await?;
    let first = wait_healthy(&client, &namespace, "web").await?;
    let first_hash = first.status.clone().unwrap_or_default().stable_rs;
    let replica_sets = owned_replica_sets(&client, &namespace, &first).await?;
    assert_eq!(
        replica_sets.len(),
        1,
        "the first revision gets one ReplicaSet"
    );
    assert_eq!(replicas_of(&replica_sets, first_hash.as_deref()), 4);

    set_image(&client, &namespace, "web", "example/app:2").await?;
    // (step index, canary spec.replicas, stable spec.replicas) at every change, until Healthy.
    let mut seen: Vec<(i32, i32, i32)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let healthy = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the canary did not finish: {seen:?}"
        );
        let rollout = get_rollout(&client, &namespace, "web").await?;
        let status = rollout.status.clone().unwrap_or_default();
        let replica_sets = owned_replica_sets(&client, &namespace, &rollout).await?;
        let canary_hash = status.current_pod_hash.clone();
        if canary_hash != first_hash {
            let snapshot = (
                status.current_step_index.unwrap_or(-1),
                replicas_of(&replica_sets, canary_hash.as_deref()),
                replicas_of(&replica_sets, first_hash.as_deref()),
            );
            if seen.last() != Some(&snapshot) {
                seen.push(snapshot);
            }
            if status.phase.map(|phase| phase.as_str()) == Some("Healthy")
                && status.stable_rs == canary_hash
            {
                break rollout;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        seen.contains(&(1, 1, 3)),
        "paused at 25%: canary 1, stable 3; saw {seen:?}"
    );
    assert!(
        seen.contains(&(3, 2, 2)),
        "paused at 50%: canary 2, stable 2; saw {seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&(4, 4, 0)),
        "promoted: canary 4, stable 0; saw {seen:?}"
    );
    let position = |wanted| seen.iter().position(|snapshot| *snapshot == wanted);
    assert!(
        position((1, 1, 3)) < position((3, 2, 2)),
        "steps in order: {seen:?}"
    );

    let status = healthy.status.clone().unwrap_or_default();
    assert_eq!(status.phase.map(|phase| phase.as_str()), Some("Healthy"));
    assert_eq!(status.stable_rs, status.current_pod_hash);
    assert_eq!(status.current_step_index, Some(4));
    assert!(status.pause_conditions.is_empty());

    // Steady state: once the old ReplicaSet's pods are gone, reconciles (forced here by a
    // metadata change that does not touch the spec) write nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = controller.metrics.requests_in_namespace(&namespace);
    let annotate = json!({"metadata": {"annotations": {"example.com/touched": "yes"}}});
    kube::Api::<sluice_api::rollout::Rollout>::namespaced(client.clone(), &namespace)
        .patch(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&annotate),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = controller.metrics.requests_in_namespace(&namespace);
    assert_eq!(after, before, "a no-op reconcile makes no API request");

    controller.stop().await?;
    Ok(())
}

/// An invalid Rollout gets InvalidSpec with the validation message, phase Degraded and no
/// ReplicaSet, and does not hold up a valid Rollout in the same namespace.
#[tokio::test]
async fn invalid_rollout_is_degraded_without_stalling_others() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-invalid").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let controller = RunningController::start(client.clone(), &namespace)?;

    let mut invalid = rollout("broken", 2, json!({"steps": [{"setWeight": 50}]}));
    if let Some(selector) = invalid.spec.selector.as_mut() {
        selector.match_labels = Some([("app".to_string(), "other".to_string())].into());
    }
    let expected = summarize(&validate_rollout(&invalid));
    assert!(
        !expected.is_empty(),
        "the manifest breaks a validation rule"
    );
    create_rollout(&client, &namespace, &invalid).await?;
    create_rollout(
        &client,
        &namespace,
        &rollout("fine", 2, json!({"steps": [{"setWeight": 50}]})),
    )
    .await?;

    wait_healthy(&client, &namespace, "fine").await?;
    let broken = eventually(
        "InvalidSpec on the broken Rollout",
        Duration::from_secs(30),
        || async {
            let rollout = get_rollout(&client, &namespace, "broken").await?;
            let status = rollout.status.clone().unwrap_or_default();
            let condition = status
                .conditions
                .iter()
                .find(|condition| condition.type_ == "InvalidSpec")
                .cloned();
            Ok(condition.map(|condition| (rollout, condition)))
        },
    )
    .await?;
    let (broken, condition) = broken;
    assert_eq!(condition.status, "True");
    assert_eq!(condition.reason, "InvalidSpec");
    assert_eq!(condition.message, expected);
    let status = broken.status.clone().unwrap_or_default();
    assert_eq!(status.phase.map(|phase| phase.as_str()), Some("Degraded"));
    assert!(
        owned_replica_sets(&client, &namespace, &broken)
            .await?
            .is_empty()
    );
    let events = events_including(&client, &namespace, "Rollout", "broken", |event| {
        event.reason == "InvalidSpec"
    })
    .await?;
    let invalid_spec = only_event(&events, "InvalidSpec")?;
    assert_eq!(invalid_spec.type_, "Warning");
    assert_eq!(invalid_spec.note, expected);

    controller.stop().await?;
    Ok(())
}
