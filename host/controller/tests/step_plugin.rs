//! End-to-end: the canary `plugin` step with the built-in approval step plugin against the real
//! API server. The gate opens a ConfigMap per step, the test approves or rejects it as an
//! operator would, and the Rollout goes on, or aborts with earlier steps' plugins aborted.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sluice_api::rollout::{Rollout, StepPluginOperation, StepPluginPhase, StepPluginStatus};

const APPROVAL: &str = "sluice/approval";

/// A canary of 2 pods: 50%, the `qa` gate, the `release` gate, 100%; the gates poll every 10 s
/// (the shortest interval a step plugin may ask for).
fn gated_canary(name: &str) -> Rollout {
    rollout(
        name,
        2,
        json!({
            "steps": [
                {"setWeight": 50},
                {"plugin": {"name": APPROVAL, "config": {"configMap": format!("{name}-qa"), "pollSeconds": 10}}},
                {"plugin": {"name": APPROVAL, "config": {"configMap": format!("{name}-release"), "pollSeconds": 10}}},
            ],
        }),
    )
}

/// The gate ConfigMap's data once it shows `state`.
async fn gate_in_state(
    client: &Client,
    namespace: &str,
    name: &str,
    state: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    eventually(
        &format!("ConfigMap {name} in state {state}"),
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move {
                Ok(api
                    .get_opt(name)
                    .await?
                    .and_then(|config_map| config_map.data)
                    .filter(|data| data.get("state").map(String::as_str) == Some(state)))
            }
        },
    )
    .await
}

/// Sets data keys of a gate, as `kubectl patch configmap` does.
async fn decide(
    client: &Client,
    namespace: &str,
    name: &str,
    data: serde_json::Value,
) -> anyhow::Result<()> {
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": data})),
        )
        .await?;
    Ok(())
}

fn statuses(rollout: &Rollout) -> Vec<StepPluginStatus> {
    rollout
        .status
        .as_ref()
        .map(|status| status.canary.step_plugin_statuses.clone())
        .unwrap_or_default()
}

fn status_of(
    rollout: &Rollout,
    index: i32,
    operation: StepPluginOperation,
) -> Option<StepPluginStatus> {
    statuses(rollout)
        .into_iter()
        .find(|status| status.index == index && status.operation == operation)
}

/// Approving both gates takes the update to Healthy; the next update reopens the gates (an
/// earlier approval does not carry over); rejecting the second gate aborts the update with the
/// plugin's message, and the first gate's plugin is asked to abort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_gates_promote_and_a_rejection_aborts() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = sluice_localcluster::LocalCluster::shared();
    let ns = cluster.namespace("ctl-step-plugin").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let controller = RunningController::start_with_builtins(client.clone(), &namespace)?;
    create_rollout(&client, &namespace, &gated_canary("shop")).await?;
    wait_healthy(&client, &namespace, "shop").await?;

    // Update 1: the qa gate opens and waits; the Rollout stays at step 1, Progressing.
    set_image(&client, &namespace, "shop", "example/app:2").await?;
    let waiting = gate_in_state(&client, &namespace, "shop-qa", "waiting").await?;
    assert_eq!(waiting.get("decision").map(String::as_str), Some("pending"));
    assert_eq!(waiting.get("step").map(String::as_str), Some("2"));
    let running = wait_rollout(&client, &namespace, "shop", "qa gate running", |rollout| {
        status_of(rollout, 1, StepPluginOperation::Run)
            .is_some_and(|status| status.phase == Some(StepPluginPhase::Running))
    })
    .await?;
    let status = running.status.clone().unwrap_or_default();
    assert_eq!(status.current_step_index, Some(1));
    assert_eq!(
        status.phase.map(|phase| phase.as_str()),
        Some("Progressing")
    );
    let run = status_of(&running, 1, StepPluginOperation::Run).expect("run status");
    assert!(
        run.message
            .as_deref()
            .is_some_and(|message| message.contains("ConfigMap shop-qa")),
        "{run:?}"
    );
    assert_eq!(run.backoff.as_ref().map(|b| b.0.as_str()), Some("10s"));
    assert_eq!(run.status, Some(json!({"configMap": "shop-qa"})));

    // Approving both gates finishes the update.
    decide(
        &client,
        &namespace,
        "shop-qa",
        json!({"decision": "approve", "approver": "qa-team"}),
    )
    .await?;
    gate_in_state(&client, &namespace, "shop-release", "waiting").await?;
    decide(
        &client,
        &namespace,
        "shop-release",
        json!({"decision": "approve"}),
    )
    .await?;
    let healthy = wait_healthy(&client, &namespace, "shop").await?;
    let qa = status_of(&healthy, 1, StepPluginOperation::Run).expect("qa status");
    assert_eq!(qa.phase, Some(StepPluginPhase::Successful));
    assert_eq!(qa.message.as_deref(), Some("approved by qa-team"));
    assert!(qa.executions >= 2, "{qa:?}");
    assert!(qa.finished_at.is_some());
    gate_in_state(&client, &namespace, "shop-qa", "approved").await?;

    // Update 2: the gates open again; the earlier approval is discarded.
    set_image(&client, &namespace, "shop", "example/app:3").await?;
    let reopened = gate_in_state(&client, &namespace, "shop-qa", "waiting").await?;
    assert_eq!(
        reopened.get("decision").map(String::as_str),
        Some("pending")
    );
    assert_eq!(reopened.get("approver"), None);
    decide(
        &client,
        &namespace,
        "shop-qa",
        json!({"decision": "approve"}),
    )
    .await?;
    gate_in_state(&client, &namespace, "shop-release", "waiting").await?;
    decide(
        &client,
        &namespace,
        "shop-release",
        json!({"decision": "reject", "reason": "checkout latency regressed"}),
    )
    .await?;

    let aborted = wait_rollout(&client, &namespace, "shop", "aborted", |rollout| {
        rollout.status.as_ref().is_some_and(|status| {
            status.abort && status.phase.map(|p| p.as_str()) == Some("Degraded")
        })
    })
    .await?;
    let message = aborted
        .status
        .as_ref()
        .and_then(|status| status.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(
            "Step Plugin 3 (sluice/approval) failed: rejected: checkout latency regressed"
        ),
        "{message}"
    );
    // The qa gate, which had succeeded, is aborted; the rejected gate itself is not.
    gate_in_state(&client, &namespace, "shop-qa", "aborted").await?;
    let after = wait_rollout(&client, &namespace, "shop", "qa gate aborted", |rollout| {
        status_of(rollout, 1, StepPluginOperation::Abort)
            .is_some_and(|status| status.phase == Some(StepPluginPhase::Successful))
    })
    .await?;
    assert_eq!(status_of(&after, 2, StepPluginOperation::Abort), None);
    assert_eq!(
        status_of(&after, 2, StepPluginOperation::Run).and_then(|status| status.phase),
        Some(StepPluginPhase::Failed)
    );
    let release = api_data(&client, &namespace, "shop-release").await?;
    assert_eq!(release.get("state").map(String::as_str), Some("rejected"));

    controller.stop().await
}

/// A step naming a plugin that is not configured: the step's status says so as an Error and is
/// retried; the Rollout is not aborted and stays at the step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_step_plugin_is_an_error_in_status_not_an_abort() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = sluice_localcluster::LocalCluster::shared();
    let ns = cluster.namespace("ctl-step-unknown").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let controller = RunningController::start_with_builtins(client.clone(), &namespace)?;
    let gated = rollout(
        "cart",
        1,
        json!({"steps": [{"setWeight": 50}, {"plugin": {"name": "acme/change-freeze"}}]}),
    );
    create_rollout(&client, &namespace, &gated).await?;
    wait_healthy(&client, &namespace, "cart").await?;
    set_image(&client, &namespace, "cart", "example/app:2").await?;
    let errored = wait_rollout(
        &client,
        &namespace,
        "cart",
        "step plugin error",
        |rollout| {
            status_of(rollout, 1, StepPluginOperation::Run)
                .is_some_and(|status| status.phase == Some(StepPluginPhase::Error))
        },
    )
    .await?;
    let run = status_of(&errored, 1, StepPluginOperation::Run).expect("run status");
    let message = run.message.unwrap_or_default();
    assert!(
        message.contains("acme/change-freeze") && message.contains("no step plugin"),
        "{message}"
    );
    assert_eq!(run.backoff.map(|backoff| backoff.0), Some("30s".into()));
    let status = errored.status.unwrap_or_default();
    assert!(!status.abort);
    assert_eq!(status.current_step_index, Some(1));
    controller.stop().await
}

async fn api_data(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(name)
        .await?
        .data
        .unwrap_or_default())
}
