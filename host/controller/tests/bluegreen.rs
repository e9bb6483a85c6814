//! End-to-end: blue-green Rollouts with active and preview Services, manual promotion through
//! the patch `sluice promote` sends, and pre/post-promotion analysis through the echo provider.

mod common;

use std::time::Duration;

use anyhow::Context as _;
use common::*;
use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sluice_localcluster::LocalCluster;

/// Records the pod-template hash the Service selects, every time it changes.
fn selector_history(client: &Client, namespace: &str, service: &str) -> Recording<String> {
    Recording::start(
        Api::<Service>::namespaced(client.clone(), namespace),
        service,
        |service: &Service| {
            service
                .spec
                .as_ref()?
                .selector
                .as_ref()?
                .get("rollouts-pod-template-hash")
                .cloned()
        },
    )
}

/// Creates `<name>-active` and `<name>-preview`, installs the echo plugins and the echo template,
/// and starts a controller.
async fn setup(client: &Client, namespace: &str, name: &str) -> anyhow::Result<RunningController> {
    install_plugins(client, namespace).await?;
    create_echo_template(client, namespace).await?;
    create_service(client, namespace, &format!("{name}-active"), name).await?;
    create_service(client, namespace, &format!("{name}-preview"), name).await?;
    RunningController::start(client.clone(), namespace)
}

/// `autoPromotionEnabled: false`: the preview Service is pinned to the new ReplicaSet while the
/// active one keeps the old; the promote patch switches the active Service; the post-promotion
/// analysis fails, so the update is aborted and the active Service goes back to the stable
/// ReplicaSet (phase Degraded, Argo's message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_post_promotion_analysis_switches_back_to_stable() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-bluegreen-post").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let controller = setup(&client, &namespace, "app").await?;

    let strategy = json!({
        "activeService": "app-active",
        "previewService": "app-preview",
        "autoPromotionEnabled": false,
        "abortScaleDownDelaySeconds": 2,
        "postPromotionAnalysis": {
            "templates": [{"templateName": "echo-check"}],
            "args": [{"name": "value", "value": "0.5"}],
        },
    });
    create_rollout(&client, &namespace, &blue_green_rollout("app", 2, strategy)).await?;
    let first = wait_healthy(&client, &namespace, "app").await?;
    let blue = first
        .status
        .clone()
        .unwrap_or_default()
        .stable_rs
        .context("stable revision")?;
    assert_eq!(
        selected_hash(&client, &namespace, "app-active").await?,
        Some(blue.clone())
    );
    let active = selector_history(&client, &namespace, "app-active");
    set_image(&client, &namespace, "app", "example/app:2").await?;

    let paused = wait_phase(&client, &namespace, "app", "Paused").await?;
    let status = paused.status.clone().unwrap_or_default();
    assert_eq!(status.message.as_deref(), Some("BlueGreenPause"));
    let green = status.current_pod_hash.clone().context("new revision")?;
    assert_ne!(green, blue);
    assert_eq!(
        selected_hash(&client, &namespace, "app-preview").await?,
        Some(green.clone()),
        "the preview Service is pinned to the new ReplicaSet"
    );
    assert_eq!(
        selected_hash(&client, &namespace, "app-active").await?,
        Some(blue.clone()),
        "the active Service still selects the old ReplicaSet"
    );
    assert_eq!(
        status.blue_green.preview_selector.as_deref(),
        Some(green.as_str())
    );
    assert_eq!(
        status.blue_green.active_selector.as_deref(),
        Some(blue.as_str())
    );
    let replica_sets = owned_replica_sets(&client, &namespace, &paused).await?;
    assert_eq!(
        replicas_of(&replica_sets, Some(&green)),
        2,
        "full preview stack"
    );
    assert_eq!(replicas_of(&replica_sets, Some(&blue)), 2);
    assert!(
        runs(&client, &namespace).await?.is_empty(),
        "no analysis before promotion"
    );

    // `sluice promote app` on a paused blue-green rollout (host/cli/src/patches.rs, case b).
    patch_status(&client, &namespace, "app", json!({"pauseConditions": null})).await?;

    let aborted = wait_phase(&client, &namespace, "app", "Degraded").await?;
    let status = aborted.status.clone().unwrap_or_default();
    let runs = runs(&client, &namespace).await?;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(phase_of(run), Some("Failed"));
    assert_eq!(
        run.labels().get("rollout-type").map(String::as_str),
        Some("PostPromotion")
    );
    let run_message = run
        .status
        .as_ref()
        .and_then(|status| status.message.clone())
        .unwrap_or_default();
    assert_eq!(
        status.message.as_deref(),
        Some(
            format!("RolloutAborted: Rollout aborted update to revision 2: {run_message}").as_str()
        )
    );
    assert!(status.abort);
    assert_eq!(
        status.stable_rs.as_deref(),
        Some(blue.as_str()),
        "stable unchanged"
    );
    eventually(
        "the active Service back on the stable ReplicaSet",
        Duration::from_secs(10),
        || async {
            Ok((selected_hash(&client, &namespace, "app-active")
                .await?
                .as_deref()
                == Some(blue.as_str()))
            .then_some(()))
        },
    )
    .await?;
    assert_eq!(
        active.values(),
        [blue.clone(), green.clone(), blue.clone()],
        "active: old, promoted to new, back to old"
    );
    eventually(
        "the aborted stack scaled down after abortScaleDownDelaySeconds",
        Duration::from_secs(20),
        || async {
            let replica_sets = owned_replica_sets(&client, &namespace, &aborted).await?;
            Ok((replicas_of(&replica_sets, Some(&green)) == 0
                && replicas_of(&replica_sets, Some(&blue)) == 2)
                .then_some(()))
        },
    )
    .await?;

    let events = events_including(&client, &namespace, "Rollout", "app", |event| {
        event.reason == "RolloutAborted"
    })
    .await?;
    assert!(
        events.iter().any(|event| event.reason == "RolloutPaused"
            && event.note == "Rollout is paused (BlueGreenPause)"),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|event| event.reason == "SwitchService"
            && event.note
                == format!(
                    "Switched selector for service 'app-active' from '{blue}' to '{green}'"
                )),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|event| event.reason == "SwitchService"
            && event.note
                == format!(
                    "Switched selector for service 'app-active' from '{green}' to '{blue}'"
                )),
        "{events:#?}"
    );
    let failed = only_event(&events, "AnalysisRunFailed")?;
    assert_eq!(failed.type_, "Warning");
    assert!(
        failed.note.starts_with(&format!(
            "PostPromotion Analysis Run '{}' Status New: 'Failed'",
            run.name_any()
        )),
        "{failed:?}"
    );
    assert_eq!(only_event(&events, "RolloutAborted")?.type_, "Warning");

    controller.stop().await?;
    Ok(())
}

/// A passing pre-promotion analysis runs against the preview stack; the Rollout is then promoted
/// automatically: the active Service switches, the new revision becomes stable and the old stack
/// is scaled down after `scaleDownDelaySeconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_pre_promotion_analysis_promotes() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-bluegreen-pre").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let controller = setup(&client, &namespace, "web").await?;

    let strategy = json!({
        "activeService": "web-active",
        "previewService": "web-preview",
        "scaleDownDelaySeconds": 2,
        "prePromotionAnalysis": {
            "templates": [{"templateName": "echo-check"}],
            "args": [{"name": "value", "value": "0.99"}],
        },
    });
    create_rollout(&client, &namespace, &blue_green_rollout("web", 2, strategy)).await?;
    let first = wait_healthy(&client, &namespace, "web").await?;
    let blue = first
        .status
        .clone()
        .unwrap_or_default()
        .stable_rs
        .context("stable revision")?;
    let active = selector_history(&client, &namespace, "web-active");
    set_image(&client, &namespace, "web", "example/app:2").await?;

    let promoted = wait_healthy(&client, &namespace, "web").await?;
    let status = promoted.status.clone().unwrap_or_default();
    let green = status.stable_rs.clone().context("new stable revision")?;
    assert_ne!(green, blue);
    assert_eq!(active.values(), [blue.clone(), green.clone()]);
    assert_eq!(
        selected_hash(&client, &namespace, "web-preview").await?,
        Some(green.clone())
    );
    let runs = runs(&client, &namespace).await?;
    assert_eq!(runs.len(), 1);
    assert_eq!(phase_of(&runs[0]), Some("Successful"));
    assert_eq!(
        runs[0].labels().get("rollout-type").map(String::as_str),
        Some("PrePromotion")
    );
    eventually(
        "the old stack scaled down after scaleDownDelaySeconds",
        Duration::from_secs(20),
        || async {
            let replica_sets = owned_replica_sets(&client, &namespace, &promoted).await?;
            Ok((replicas_of(&replica_sets, Some(&blue)) == 0
                && replicas_of(&replica_sets, Some(&green)) == 2)
                .then_some(()))
        },
    )
    .await?;

    let events = events_including(&client, &namespace, "Rollout", "web", |event| {
        event.reason == "RolloutCompleted"
            && event.note
                == format!(
                    "Rollout completed update to revision 2 ({green}): Completed blue-green update"
                )
    })
    .await?;
    assert!(
        events
            .iter()
            .any(|event| event.reason == "AnalysisRunSuccessful"
                && event.note.starts_with(&format!(
                    "PrePromotion Analysis Run '{}' Status New: 'Successful'",
                    runs[0].name_any()
                ))),
        "{events:#?}"
    );
    controller.stop().await?;
    Ok(())
}
