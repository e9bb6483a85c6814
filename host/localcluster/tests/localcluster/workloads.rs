//! Workloads driven by the real kube-controller-manager and the simulated kubelet.

use anyhow::{Context as _, ensure};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_localcluster::kubelet::{SIMULATE_ANNOTATION, SIMULATE_DELAY_ANNOTATION};

use crate::support::{cluster, eventually};

fn pod_template(app: &str, image: &str, annotations: Value) -> Value {
    json!({
        "metadata": {"labels": {"app": app}, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]},
    })
}

fn replica_set(name: &str, replicas: i32, annotations: Value) -> anyhow::Result<ReplicaSet> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, "registry.local/app:v1", annotations),
        },
    }))?)
}

fn deployment(name: &str, replicas: i32, image: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": pod_template(name, image, json!({})),
        },
    }))?)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

async fn pods_of(pods: &Api<Pod>, app: &str) -> anyhow::Result<Vec<Pod>> {
    Ok(pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_set_gets_ready_pods_on_the_simulated_node() -> anyhow::Result<()> {
    let ns = cluster().namespace("rs-ready").await?;
    let sets: Api<ReplicaSet> = ns.api();
    sets.create(&PostParams::default(), &replica_set("web", 3, json!({}))?)
        .await?;

    eventually("3 ready replicas", || async {
        let rs = sets.get("web").await?;
        let ready = rs.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        Ok(if ready == 3 {
            Ok(())
        } else {
            Err(format!("{ready} ready"))
        })
    })
    .await?;

    let pods = pods_of(&ns.api(), "web").await?;
    ensure!(pods.len() == 3, "expected 3 pods, got {}", pods.len());
    let node = cluster().node_name().context("simulated kubelet runs")?;
    for pod in &pods {
        let spec = pod.spec.as_ref().context("spec")?;
        let status = pod.status.as_ref().context("status")?;
        ensure!(
            spec.node_name.as_deref() == Some(node),
            "bound to {:?}",
            spec.node_name
        );
        ensure!(
            phase(pod) == "Running" && is_ready(pod),
            "pod not running and ready: {status:?}"
        );
        let ip = status.pod_ip.as_deref().context("pod IP")?;
        ensure!(
            ip.starts_with("10.244."),
            "pod IP {ip} outside 10.244.0.0/16"
        );
        let containers = status
            .container_statuses
            .as_ref()
            .context("container statuses")?;
        ensure!(
            containers.len() == 1
                && containers[0].ready
                && containers[0].started == Some(true)
                && containers[0]
                    .state
                    .as_ref()
                    .and_then(|s| s.running.as_ref())
                    .is_some(),
            "container status as a kubelet writes it: {containers:?}"
        );
        ensure!(
            status.start_time.is_some() && status.host_ip.is_some(),
            "{status:?}"
        );
    }
    let ips: std::collections::HashSet<_> = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    ensure!(ips.len() == 3, "pod IPs are distinct: {ips:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rolls_out_a_new_revision() -> anyhow::Result<()> {
    let ns = cluster().namespace("deploy-rollout").await?;
    let deployments: Api<Deployment> = ns.api();
    deployments
        .create(
            &PostParams::default(),
            &deployment("api", 3, "registry.local/api:v1")?,
        )
        .await?;

    let complete = |generation: i64| {
        let deployments = deployments.clone();
        move || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("api").await?;
                let status = d.status.unwrap_or_default();
                let done = status.observed_generation == Some(generation)
                    && status.updated_replicas == Some(3)
                    && status.available_replicas == Some(3)
                    && status.replicas == Some(3);
                Ok(if done {
                    Ok(())
                } else {
                    Err(format!("{status:?}"))
                })
            }
        }
    };
    eventually("revision 1 available", complete(1)).await?;

    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.local/api:v2"}
    ]}}}});
    deployments
        .patch("api", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    eventually("revision 2 rolled out", complete(2)).await?;

    let sets: Api<ReplicaSet> = ns.api();
    let sets = sets.list(&ListParams::default()).await?.items;
    ensure!(
        sets.len() == 2,
        "one ReplicaSet per revision, got {}",
        sets.len()
    );
    for rs in &sets {
        let image = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.containers[0].image.clone())
            .unwrap_or_default();
        let replicas = rs.spec.as_ref().and_then(|s| s.replicas);
        let expected = if image.ends_with(":v2") { 3 } else { 0 };
        ensure!(
            replicas == Some(expected),
            "{image}: {replicas:?} replicas, expected {expected}"
        );
    }
    let pods: Api<Pod> = ns.api();
    eventually("only v2 pods left", || async {
        let pods = pods_of(&pods, "api").await?;
        let images: Vec<String> = pods
            .iter()
            .filter_map(|p| p.spec.as_ref()?.containers[0].image.clone())
            .collect();
        let done = images.len() == 3 && images.iter().all(|i| i.ends_with(":v2"));
        Ok(if done {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        })
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployment_garbage_collects_its_replica_sets_and_pods() -> anyhow::Result<()> {
    let ns = cluster().namespace("gc").await?;
    let deployments: Api<Deployment> = ns.api();
    let sets: Api<ReplicaSet> = ns.api();
    let pods: Api<Pod> = ns.api();
    deployments
        .create(
            &PostParams::default(),
            &deployment("owner", 2, "registry.local/owner:v1")?,
        )
        .await?;
    eventually("ReplicaSet and 2 pods", || async {
        let n_sets = sets.list(&ListParams::default()).await?.items.len();
        let n_pods = pods_of(&pods, "owner").await?.len();
        Ok(if n_sets == 1 && n_pods == 2 {
            Ok(())
        } else {
            Err(format!("{n_sets} sets, {n_pods} pods"))
        })
    })
    .await?;

    deployments
        .delete("owner", &DeleteParams::background())
        .await?;
    eventually("ReplicaSets and pods collected", || async {
        let n_sets = sets.list(&ListParams::default()).await?.items.len();
        let n_pods = pods_of(&pods, "owner").await?.len();
        Ok(if n_sets == 0 && n_pods == 0 {
            Ok(())
        } else {
            Err(format!("{n_sets} sets, {n_pods} pods"))
        })
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_simulate_unready_failing_and_unschedulable_pods() -> anyhow::Result<()> {
    let ns = cluster().namespace("simulate").await?;
    let sets: Api<ReplicaSet> = ns.api();
    let pods: Api<Pod> = ns.api();
    for (name, mode) in [
        ("unready", "unready"),
        ("crash", "fail"),
        ("stuck", "pending"),
    ] {
        let rs = replica_set(name, 1, json!({ SIMULATE_ANNOTATION: mode }))?;
        sets.create(&PostParams::default(), &rs).await?;
    }
    let mut never: Pod = serde_json::from_value(json!({
        "metadata": {"name": "oneshot", "labels": {"app": "oneshot"},
                     "annotations": {SIMULATE_ANNOTATION: "fail"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "job", "image": "registry.local/job:v1"}]},
    }))?;
    never = pods.create(&PostParams::default(), &never).await?;
    let oneshot = never.metadata.name.clone().context("name")?;

    let unready = eventually("unready pod running but not ready", || async {
        let found = pods_of(&pods, "unready").await?;
        Ok(match found.first() {
            Some(p) if phase(p) == "Running" => Ok(p.clone()),
            other => Err(format!("{:?}", other.map(|p| &p.status))),
        })
    })
    .await?;
    ensure!(!is_ready(&unready), "unready pod must not be Ready");
    let container = &unready
        .status
        .as_ref()
        .context("status")?
        .container_statuses
        .as_ref()
        .context("containers")?[0];
    ensure!(
        !container.ready && container.started == Some(true),
        "{container:?}"
    );

    eventually("crashing pod in CrashLoopBackOff", || async {
        let found = pods_of(&pods, "crash").await?;
        let reason = found.first().and_then(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .state
                .as_ref()?
                .waiting
                .as_ref()?
                .reason
                .clone()
        });
        Ok(match reason.as_deref() {
            Some("CrashLoopBackOff") if !is_ready(&found[0]) && phase(&found[0]) == "Running" => {
                Ok(())
            }
            _ => Err(format!("{:?}", found.first().map(|p| &p.status))),
        })
    })
    .await?;

    eventually("restartPolicy Never pod Failed", || async {
        let p = pods.get(&oneshot).await?;
        Ok(if phase(&p) == "Failed" {
            Ok(())
        } else {
            Err(format!("{:?}", p.status))
        })
    })
    .await?;

    // The unschedulable pod is never bound, while the others were bound meanwhile.
    let stuck = pods_of(&pods, "stuck").await?;
    ensure!(stuck.len() == 1, "{stuck:?}");
    ensure!(
        stuck[0]
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none()
            && phase(&stuck[0]) == "Pending",
        "pending simulation must stay unscheduled: {:?}",
        stuck[0]
    );

    // Changing the annotation on a live pod takes effect.
    let name = unready.metadata.name.clone().context("name")?;
    let patch = json!({"metadata": {"annotations": {SIMULATE_ANNOTATION: "ready"}}});
    pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    eventually("pod ready after the annotation changed", || async {
        let p = pods.get(&name).await?;
        Ok(if is_ready(&p) {
            Ok(())
        } else {
            Err(format!("{:?}", p.status))
        })
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_delay_is_honoured_and_deleted_pods_are_finalised() -> anyhow::Result<()> {
    let ns = cluster().namespace("lifecycle").await?;
    let pods: Api<Pod> = ns.api();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "slow", "annotations": {SIMULATE_DELAY_ANNOTATION: "1500ms"}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:v1"}]},
    }))?;
    let created = std::time::Instant::now();
    pods.create(&PostParams::default(), &pod).await?;
    eventually("pod scheduled and creating", || async {
        let p = pods.get("slow").await?;
        let creating = p.status.as_ref().and_then(|s| {
            s.container_statuses
                .as_ref()?
                .first()?
                .state
                .as_ref()?
                .waiting
                .as_ref()?
                .reason
                .clone()
        });
        Ok(if creating.as_deref() == Some("ContainerCreating") {
            Ok(())
        } else {
            Err(format!("{:?}", p.status))
        })
    })
    .await?;
    eventually("pod ready", || async {
        let p = pods.get("slow").await?;
        Ok(if is_ready(&p) {
            Ok(())
        } else {
            Err(format!("{:?}", p.status))
        })
    })
    .await?;
    ensure!(
        created.elapsed() >= std::time::Duration::from_millis(1500),
        "ready after {:?}, before the 1500ms delay",
        created.elapsed()
    );

    // Default grace period is 30 s; the simulated kubelet finalises at once.
    let deleting = std::time::Instant::now();
    pods.delete("slow", &DeleteParams::default()).await?;
    eventually("pod gone", || async {
        Ok(match pods.get_opt("slow").await? {
            None => Ok(()),
            Some(p) => Err(format!(
                "deletionTimestamp {:?}",
                p.metadata.deletion_timestamp
            )),
        })
    })
    .await?;
    ensure!(
        deleting.elapsed() < std::time::Duration::from_secs(10),
        "finalised after {:?}",
        deleting.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_endpoints_list_ready_and_unready_pods() -> anyhow::Result<()> {
    let ns = cluster().namespace("endpoints").await?;
    let sets: Api<ReplicaSet> = ns.api();
    sets.create(&PostParams::default(), &replica_set("svc", 2, json!({}))?)
        .await?;
    let mut unready = replica_set("svc-canary", 1, json!({ SIMULATE_ANNOTATION: "unready" }))?;
    // Same `app` label as the stable pods, so the Service selects both.
    let labels = json!({"app": "svc", "track": "canary"});
    let spec = unready.spec.as_mut().context("spec")?;
    spec.selector = serde_json::from_value(json!({"matchLabels": labels.clone()}))?;
    spec.template
        .as_mut()
        .context("template")?
        .metadata
        .as_mut()
        .context("metadata")?
        .labels = Some(serde_json::from_value(labels)?);
    sets.create(&PostParams::default(), &unready).await?;

    let services: Api<Service> = ns.api();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "svc"},
        "spec": {"selector": {"app": "svc"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))?;
    services.create(&PostParams::default(), &service).await?;

    let endpoints: Api<Endpoints> = ns.api();
    eventually("2 ready and 1 not-ready address", || async {
        let Some(ep) = endpoints.get_opt("svc").await? else {
            return Ok(Err("no Endpoints yet".to_owned()));
        };
        let subsets = ep.subsets.unwrap_or_default();
        let ready: Vec<String> = subsets
            .iter()
            .flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone()))
            .collect();
        let not_ready = subsets
            .iter()
            .flat_map(|s| s.not_ready_addresses.iter().flatten())
            .count();
        Ok(
            if ready.len() == 2
                && not_ready == 1
                && ready.iter().all(|ip| ip.starts_with("10.244."))
            {
                Ok(())
            } else {
                Err(format!("ready {ready:?}, not ready {not_ready}"))
            },
        )
    })
    .await?;
    Ok(())
}
