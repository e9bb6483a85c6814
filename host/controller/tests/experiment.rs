//! End-to-end: Experiments, standalone and as a canary step, against the local control plane.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sluice_api::experiment::Experiment;
use sluice_localcluster::LocalCluster;

async fn get_experiment(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Experiment> {
    Ok(Api::<Experiment>::namespaced(client.clone(), namespace)
        .get(name)
        .await?)
}

fn phase(experiment: &Experiment) -> Option<&'static str> {
    experiment
        .status
        .as_ref()
        .and_then(|status| status.phase)
        .map(|phase| phase.as_str())
}

/// Waits until the Experiment reaches a completed phase and returns it.
async fn wait_experiment_completed(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Experiment> {
    eventually(
        &format!("Experiment {name} completed"),
        Duration::from_secs(60),
        || async {
            let experiment = get_experiment(client, namespace, name).await?;
            let done = experiment
                .status
                .as_ref()
                .and_then(|status| status.phase)
                .is_some_and(|phase| phase.is_completed());
            Ok(done.then_some(experiment))
        },
    )
    .await
}

/// The Experiments a Rollout owns.
async fn owned_experiments(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
) -> anyhow::Result<Vec<Experiment>> {
    Ok(Api::<Experiment>::namespaced(client.clone(), namespace)
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|experiment| {
            experiment
                .owner_references()
                .iter()
                .any(|owner| owner.uid == owner_uid)
        })
        .collect())
}

/// A standalone Experiment with two templates and `duration: 3s` runs both ReplicaSets (and the
/// Service one template asks for), becomes Successful and scales its ReplicaSets down after
/// `scaleDownDelaySeconds`; a reconcile with nothing to do then makes no API request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_experiment_succeeds_after_its_duration_and_scales_down() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-experiment").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    install_plugins(&client, &namespace).await?;
    let controller = RunningController::start(client.clone(), &namespace)?;

    let template = |app: &str| {
        json!({
            "metadata": {"labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "image": format!("example/{app}:1"),
                                     "ports": [{"name": "http", "containerPort": 8080}]}]},
        })
    };
    let experiment: Experiment = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "side-by-side"},
        "spec": {
            "duration": "3s",
            "scaleDownDelaySeconds": 1,
            "templates": [
                {"name": "baseline", "replicas": 1,
                 "selector": {"matchLabels": {"app": "baseline"}}, "template": template("baseline")},
                {"name": "candidate", "replicas": 2, "service": {},
                 "selector": {"matchLabels": {"app": "candidate"}}, "template": template("candidate")},
            ],
        },
    }))?;
    Api::<Experiment>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &experiment)
        .await?;

    let running = eventually(
        "the experiment running",
        Duration::from_secs(60),
        || async {
            let experiment = get_experiment(&client, &namespace, "side-by-side").await?;
            Ok((phase(&experiment) == Some("Running")).then_some(experiment))
        },
    )
    .await?;
    let status = running.status.clone().unwrap_or_default();
    assert!(
        status.available_at.is_some(),
        "availableAt is set once every template runs"
    );
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &namespace);
    for (name, replicas) in [("side-by-side-baseline", 1), ("side-by-side-candidate", 2)] {
        let rs = replica_sets.get(name).await?;
        assert_eq!(
            rs.spec.as_ref().and_then(|spec| spec.replicas),
            Some(replicas)
        );
        assert!(
            rs.owner_references()
                .iter()
                .any(|owner| owner.kind == "Experiment" && owner.name == "side-by-side"),
            "{name} is owned by the Experiment"
        );
        assert_eq!(
            rs.annotations()
                .get("experiment-template")
                .map(String::as_str),
            name.strip_prefix("side-by-side-")
        );
    }
    let service = Api::<Service>::namespaced(client.clone(), &namespace)
        .get("side-by-side-candidate")
        .await?;
    let selector = service
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.clone())
        .unwrap_or_default();
    let candidate_hash = status
        .template_statuses
        .iter()
        .find(|template| template.name == "candidate")
        .and_then(|template| template.pod_template_hash.clone());
    assert_eq!(
        selector.get("rollouts-pod-template-hash"),
        candidate_hash.as_ref(),
        "the template's Service selects its pods"
    );

    let done = wait_experiment_completed(&client, &namespace, "side-by-side").await?;
    assert_eq!(phase(&done), Some("Successful"));
    let status = done.status.clone().unwrap_or_default();
    assert!(
        status
            .template_statuses
            .iter()
            .all(|template| template.status.as_deref() == Some("Successful")),
        "every template ends Successful: {:?}",
        status.template_statuses
    );
    eventually(
        "the experiment's ReplicaSets scaled to zero",
        Duration::from_secs(30),
        || async {
            let mut zero = true;
            for name in ["side-by-side-baseline", "side-by-side-candidate"] {
                let rs = replica_sets.get(name).await?;
                zero &= rs.spec.as_ref().and_then(|spec| spec.replicas) == Some(0);
                zero &= rs
                    .status
                    .as_ref()
                    .is_some_and(|status| status.replicas == 0);
            }
            // The experiment's status follows its ReplicaSets' down to zero pods.
            let experiment = get_experiment(&client, &namespace, "side-by-side").await?;
            zero &= experiment.status.as_ref().is_some_and(|status| {
                status
                    .template_statuses
                    .iter()
                    .all(|template| template.replicas == 0 && template.available_replicas == 0)
            });
            Ok(zero.then_some(()))
        },
    )
    .await?;

    // An Event per transition, with Argo's reasons: the phases, each template's status, the
    // ReplicaSets created and scaled down.
    let events = events_including(&client, &namespace, "Experiment", "side-by-side", |event| {
        event.reason == "ScalingReplicaSet" && event.note.contains("candidate from 2 to 0")
    })
    .await?;
    for (reason, note) in [
        (
            "ExperimentPending",
            "Experiment transitioned from  -> Pending",
        ),
        (
            "ExperimentRunning",
            "Experiment transitioned from Pending -> Running",
        ),
        (
            "ExperimentSuccessful",
            "Experiment transitioned from Running -> Successful",
        ),
    ] {
        let event = only_event(&events, reason)?;
        assert_eq!(
            (event.type_.as_str(), event.note.as_str()),
            ("Normal", note)
        );
    }
    for (reason, count) in [
        ("NewReplicaSetCreated", 2),
        ("TemplateProgressing", 2),
        ("TemplateRunning", 2),
        ("TemplateSuccessful", 2),
        ("ScalingReplicaSet", 2),
    ] {
        let found: Vec<&SeenEvent> = events
            .iter()
            .filter(|event| event.reason == reason)
            .collect();
        assert_eq!(found.len(), count, "{reason} events: {events:#?}");
    }
    assert!(
        events
            .iter()
            .any(|event| event.note == "Created ReplicaSet side-by-side-candidate with size 2"),
        "{events:#?}"
    );

    // Steady state costs nothing: a change that wakes the reconciler (an annotation) leads to a
    // reconcile that reads the caches, writes nothing and publishes no Event.
    let before = controller.metrics.requests_in_namespace(&namespace);
    Api::<Experiment>::namespaced(client.clone(), &namespace)
        .patch(
            "side-by-side",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {"touched": "yes"}}})),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        controller.metrics.requests_in_namespace(&namespace),
        before,
        "a no-op reconcile of a finished experiment makes no API request"
    );
    assert_eq!(
        events_about(&client, &namespace, "Experiment", "side-by-side")
            .await?
            .len(),
        events.len(),
        "no Event without a transition"
    );

    controller.stop().await?;
    Ok(())
}

/// A canary whose second step is an experiment (the canary and the stable pod templates side
/// by side, analysed with the echo provider returning `value`).
fn experiment_rollout(name: &str, value: &str) -> sluice_api::rollout::Rollout {
    rollout(
        name,
        2,
        json!({"steps": [
            {"setWeight": 50},
            {"experiment": {
                "duration": "2s",
                "templates": [
                    {"name": "canary", "specRef": "canary"},
                    {"name": "baseline", "specRef": "stable"},
                ],
                "analyses": [{
                    "name": "quality",
                    "templateName": "echo-check",
                    "args": [{"name": "value", "value": value}],
                }],
            }},
        ]}),
    )
}

/// An `experiment` step whose experiment succeeds lets the rollout finish: the Experiment is
/// owned by the Rollout, named `<rollout>-<hash>-<revision>-<step>` and labelled with the
/// canary's pod-template hash; the rollout becomes Healthy on the new revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_step_that_succeeds_completes_the_rollout() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-experiment-step").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    install_plugins(&client, &namespace).await?;
    create_echo_template(&client, &namespace).await?;
    let controller = RunningController::start(client.clone(), &namespace)?;

    create_rollout(&client, &namespace, &experiment_rollout("trial", "0.99")).await?;
    let first = wait_healthy(&client, &namespace, "trial").await?;
    let stable = first.status.clone().unwrap_or_default().stable_rs;
    set_image(&client, &namespace, "trial", "example/app:2").await?;

    let healthy = eventually(
        "the rollout Healthy on revision 2",
        Duration::from_secs(90),
        || async {
            let rollout = get_rollout(&client, &namespace, "trial").await?;
            let status = rollout.status.clone().unwrap_or_default();
            Ok((status.phase.map(|phase| phase.as_str()) == Some("Healthy")
                && status.stable_rs.is_some()
                && status.stable_rs != stable
                && status.stable_rs == status.current_pod_hash)
                .then_some(rollout))
        },
    )
    .await?;
    let canary = healthy
        .status
        .clone()
        .unwrap_or_default()
        .current_pod_hash
        .unwrap_or_default();
    let experiments =
        owned_experiments(&client, &namespace, &healthy.uid().unwrap_or_default()).await?;
    assert_eq!(experiments.len(), 1, "one Experiment for the step");
    let experiment = &experiments[0];
    assert_eq!(experiment.name_any(), format!("trial-{canary}-2-1"));
    assert_eq!(
        experiment.labels().get("rollouts-pod-template-hash"),
        Some(&canary)
    );
    assert_eq!(phase(experiment), Some("Successful"));
    let status = experiment.status.clone().unwrap_or_default();
    assert_eq!(status.analysis_runs.len(), 1);
    assert_eq!(
        status.analysis_runs[0].phase.map(|phase| phase.as_str()),
        Some("Successful")
    );

    controller.stop().await?;
    Ok(())
}

/// An `experiment` step whose analysis fails fails the Experiment, which aborts the rollout:
/// Degraded, the stable revision unchanged and the canary scaled to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_step_whose_analysis_fails_aborts_the_rollout() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-experiment-fail").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    install_plugins(&client, &namespace).await?;
    create_echo_template(&client, &namespace).await?;
    let controller = RunningController::start(client.clone(), &namespace)?;

    create_rollout(&client, &namespace, &experiment_rollout("flop", "0.5")).await?;
    let first = wait_healthy(&client, &namespace, "flop").await?;
    let stable = first.status.clone().unwrap_or_default().stable_rs;
    set_image(&client, &namespace, "flop", "example/app:2").await?;

    let aborted = eventually("the rollout aborted", Duration::from_secs(90), || async {
        let rollout = get_rollout(&client, &namespace, "flop").await?;
        let status = rollout.status.clone().unwrap_or_default();
        Ok((status.phase.map(|phase| phase.as_str()) == Some("Degraded")).then_some(rollout))
    })
    .await?;
    let status = aborted.status.clone().unwrap_or_default();
    assert!(status.abort, "the abort is recorded in status");
    assert_eq!(
        status.stable_rs, stable,
        "the stable revision does not change"
    );
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "Argo's abort message, got {message:?}"
    );

    let experiments =
        owned_experiments(&client, &namespace, &aborted.uid().unwrap_or_default()).await?;
    assert_eq!(experiments.len(), 1);
    assert_eq!(phase(&experiments[0]), Some("Failed"));
    let name = experiments[0].name_any();
    let events = events_including(&client, &namespace, "Experiment", &name, |event| {
        event.reason == "ExperimentFailed"
    })
    .await?;
    let failed = only_event(&events, "ExperimentFailed")?;
    assert_eq!(
        (failed.type_.as_str(), failed.note.as_str()),
        ("Warning", "Experiment transitioned from Running -> Failed")
    );
    let analysis = only_event(&events, "AnalysisRunFailed")?;
    assert_eq!(analysis.type_, "Warning");
    // from Pending or Running, depending on whether a reconcile saw the run measuring
    assert!(
        analysis
            .note
            .starts_with("AnalysisRun 'quality' transitioned from ")
            && analysis
                .note
                .contains(" -> Failed: Metric \"quality\" assessed Failed"),
        "{analysis:?}"
    );
    wait_canary_scaled_to_zero(&client, &namespace, &aborted, 2, Duration::from_secs(15)).await?;

    controller.stop().await?;
    Ok(())
}
