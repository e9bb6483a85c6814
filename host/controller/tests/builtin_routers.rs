//! End-to-end: traffic-routed canaries through the built-in routers embedded by
//! `sluice-builtins` (NGINX Ingress, Istio VirtualService/DestinationRule, Gateway API
//! HTTPRoute) against the local control plane, and a failing router plugin that degrades only
//! its own Rollouts.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sluice_api::labels;
use sluice_api::rollout::Rollout;
use sluice_controller::ControllerOptions;
use sluice_localcluster::LocalCluster;

/// The canary steps every router test runs: (index of the pause after each `setWeight`, weight).
const STEPS: [(i32, i64); 2] = [(1, 20), (3, 60)];

fn steps() -> Value {
    json!([
        {"setWeight": 20}, {"pause": {"duration": "1s"}},
        {"setWeight": 60}, {"pause": {"duration": "1s"}},
    ])
}

/// Starts a controller configured like a default install (the built-in plugins embedded and
/// configured), with the plugin ConfigMap listing `routers` (YAML) over them.
async fn start_controller(
    client: &Client,
    namespace: &str,
    routers: &str,
) -> anyhow::Result<RunningController> {
    install_plugin_config(client, namespace, routers, "[]").await?;
    RunningController::start_with(
        client.clone(),
        namespace,
        ControllerOptions {
            builtins: sluice_builtins::components(),
            default_plugins: sluice_builtins::default_plugin_config(),
            ..ControllerOptions::default()
        },
    )
}

/// Reads (canary weight, stable weight) off a router's object.
type WeightsOf = fn(&DynamicObject) -> Option<(i64, i64)>;

/// What a canary through [`STEPS`] went through.
struct CanaryRun {
    /// The Rollout, Healthy on revision 2.
    last: Rollout,
    /// Every distinct (canary, stable) weight the router's object showed during the update.
    weights: Vec<(i64, i64)>,
}

/// Follows an update of the Rollout `first` (Healthy on revision 1) to a new image: at every
/// pause after a `setWeight` the router's object (`object` of `api`, read with `weights_of`)
/// and the Rollout's status show the step's weight, and once Healthy on revision 2 the object
/// sends all traffic to stable.
async fn follow_update(
    client: &Client,
    namespace: &str,
    first: Rollout,
    api: &Api<DynamicObject>,
    object: &str,
    weights_of: WeightsOf,
) -> anyhow::Result<CanaryRun> {
    let name = first.name_any();
    let recording = Recording::start(api.clone(), object, weights_of);
    set_image(client, namespace, &name, "example/app:2").await?;
    for (index, weight) in STEPS {
        let paused = wait_paused_at_step(client, namespace, &name, index).await?;
        let shown = weights_of(&api.get(object).await?);
        // On a loaded machine the 1 s pause may end between the two reads; the recorded
        // sequence below still shows this step's weight in order.
        let after = get_rollout(client, namespace, &name).await?;
        if after.status.and_then(|status| status.current_step_index) == Some(index) {
            assert_eq!(
                shown,
                Some((weight, 100 - weight)),
                "{object} at step {index}"
            );
        } else {
            println!("{object}: the pause at step {index} ended before the object was read");
        }
        let status = paused.status.unwrap_or_default();
        let recorded = status.canary.weights.map(|weights| {
            (
                i64::from(weights.canary.weight),
                i64::from(weights.stable.weight),
            )
        });
        assert_eq!(
            recorded,
            Some((weight, 100 - weight)),
            "status weights at step {index}"
        );
    }
    wait_healthy(client, namespace, &name).await?;
    // The reconcile that makes revision 2 stable still plans from "canary at the last step"
    // (weight 100, as Argo does: both Services select revision 2 by then); the next one, fully
    // promoted, returns the weight to stable.
    let last = wait_rollout(
        client,
        namespace,
        &name,
        "stable at weight 100",
        |rollout| {
            let weights = rollout
                .status
                .as_ref()
                .and_then(|status| status.canary.weights.clone());
            weights
                .is_some_and(|weights| weights.canary.weight == 0 && weights.stable.weight == 100)
        },
    )
    .await?;
    let stable_hash = |rollout: &Rollout| rollout.status.as_ref().and_then(|s| s.stable_rs.clone());
    assert_ne!(
        stable_hash(&last),
        stable_hash(&first),
        "revision 2 is stable"
    );
    assert_eq!(
        last.status
            .as_ref()
            .and_then(|s| s.current_pod_hash.clone()),
        stable_hash(&last)
    );
    assert_eq!(
        weights_of(&api.get(object).await?),
        Some((0, 100)),
        "{object} once revision 2 is stable"
    );
    let weights = recording.values();
    assert_eq!(
        weights,
        [(0, 100), (20, 80), (60, 40), (100, 0), (0, 100)],
        "{object}: the weights in step order, 100 after the last step, then back to stable"
    );
    Ok(CanaryRun { last, weights })
}

/// A canary strategy through [`STEPS`] with `web-canary`/`web-stable` and these routers.
fn routed_canary(traffic_routing: Value) -> Value {
    json!({
        "canaryService": "web-canary",
        "stableService": "web-stable",
        "scaleDownDelaySeconds": 2,
        "trafficRouting": traffic_routing,
        "steps": steps(),
    })
}

async fn create_services(client: &Client, namespace: &str) -> anyhow::Result<()> {
    create_service(client, namespace, "web-canary", "web").await?;
    create_service(client, namespace, "web-stable", "web").await
}

fn number(value: Option<&Value>) -> i64 {
    value.and_then(Value::as_i64).unwrap_or(0)
}

/// Creates the Services and the user's Ingress `web` (to `web-stable`); returns the Ingress API.
async fn create_stable_ingress(
    client: &Client,
    namespace: &str,
) -> anyhow::Result<Api<DynamicObject>> {
    create_services(client, namespace).await?;
    let ingresses = dynamic_api(client, namespace, "networking.k8s.io", "v1", "Ingress");
    create_object(
        &ingresses,
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
            "spec": {"rules": [{
                "host": "web.example.com",
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": "web-stable", "port": {"number": 80}}},
                }]},
            }]},
        }),
    )
    .await?;
    Ok(ingresses)
}

/// (canary, stable) weights of a canary Ingress: its `canary-weight` annotation when it is
/// marked `canary: "true"`.
fn canary_ingress_weights(ingress: &DynamicObject) -> Option<(i64, i64)> {
    let annotations = ingress.annotations();
    (annotations.get("nginx.ingress.kubernetes.io/canary")? == "true").then_some(())?;
    let weight: i64 = annotations
        .get("nginx.ingress.kubernetes.io/canary-weight")?
        .parse()
        .ok()?;
    Some((weight, 100 - weight))
}

/// NGINX: the canary Ingress `web-web-canary` carries each step's weight; the user's Ingress is
/// never written; at the end the weight is 0 with the new revision stable, and the old
/// ReplicaSet is scaled down only after `scaleDownDelaySeconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_canary_moves_the_canary_ingress_weight_step_by_step() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let started = std::time::Instant::now();
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-nginx").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let ingresses = create_stable_ingress(&client, &namespace).await?;
    let stable_ingress = ingresses.get("web").await?;
    let controller = start_controller(&client, &namespace, "[]").await?;

    let canary = routed_canary(json!({"nginx": {"stableIngress": "web"}}));
    create_rollout(&client, &namespace, &rollout("web", 5, canary)).await?;
    let first = wait_healthy(&client, &namespace, "web").await?;
    // The old ReplicaSet's replicas and scale-down deadline, recorded from before the update.
    let first_hash = first.status.clone().unwrap_or_default().stable_rs;
    let old_rs = owned_replica_sets(&client, &namespace, &first)
        .await?
        .into_iter()
        .find(|rs| rs.labels().get(labels::POD_TEMPLATE_HASH) == first_hash.as_ref())
        .expect("the revision 1 ReplicaSet");
    let old_rs_history = Recording::start(
        Api::<ReplicaSet>::namespaced(client.clone(), &namespace),
        &old_rs.name_any(),
        |rs: &ReplicaSet| {
            let replicas = rs.spec.as_ref().and_then(|spec| spec.replicas)?;
            let deadline = rs.annotations().get(labels::SCALE_DOWN_DEADLINE).cloned();
            Some((replicas, deadline))
        },
    );
    let run = follow_update(
        &client,
        &namespace,
        first,
        &ingresses,
        "web-web-canary",
        canary_ingress_weights,
    )
    .await?;

    let canary_ingress = ingresses.get("web-web-canary").await?;
    let owner = canary_ingress.owner_references().first().cloned();
    assert_eq!(
        owner.map(|owner| (owner.kind, owner.name, owner.controller)),
        Some(("Rollout".to_string(), "web".to_string(), Some(true))),
        "the canary Ingress is controlled by the Rollout"
    );
    assert_eq!(
        canary_ingress
            .data
            .pointer("/spec/rules/0/http/paths/0/backend/service/name"),
        Some(&json!("web-canary")),
        "the canary Ingress routes to the canary Service"
    );
    let stable_after = ingresses.get("web").await?;
    assert_eq!(
        stable_after.resource_version(),
        stable_ingress.resource_version(),
        "the user's Ingress is never written"
    );

    eventually(
        "the old ReplicaSet scaled down",
        Duration::from_secs(20),
        || async {
            let history = old_rs_history.timed();
            Ok(history
                .last()
                .is_some_and(|((replicas, _), _)| *replicas == 0)
                .then_some(()))
        },
    )
    .await?;
    let history = old_rs_history.timed();
    let (_, scaled_down_at) = history.last().cloned().expect("a scale-down");
    let deadline = history
        .iter()
        .find_map(|((replicas, deadline), _)| deadline.clone().filter(|_| *replicas > 0))
        .expect("a scale-down deadline set while the old ReplicaSet still had pods");
    let deadline: Timestamp = deadline.parse()?;
    let deadline = SystemTime::from(deadline);
    assert!(
        scaled_down_at >= deadline,
        "scaled down at {scaled_down_at:?}, before its deadline {deadline:?}: {history:?}"
    );
    assert_eq!(
        replicas_of(
            &owned_replica_sets(&client, &namespace, &run.last).await?,
            run.last
                .status
                .as_ref()
                .and_then(|s| s.stable_rs.as_deref())
        ),
        5,
        "the new stable revision runs every replica"
    );
    println!(
        "nginx canary: weights {:?}, test took {:?}",
        run.weights,
        started.elapsed()
    );
    controller.stop().await
}

/// NGINX abort while paused (indefinitely) at weight 20: the canary Ingress is back at weight 0 by the time the
/// Rollout reports Degraded, and the user's Ingress is never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_abort_returns_the_canary_ingress_to_weight_0() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let started = std::time::Instant::now();
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-nginx-abort").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let ingresses = create_stable_ingress(&client, &namespace).await?;
    let stable_ingress = ingresses.get("web").await?;
    let controller = start_controller(&client, &namespace, "[]").await?;

    let mut canary = routed_canary(json!({"nginx": {"stableIngress": "web"}}));
    canary["steps"] = json!([{"setWeight": 20}, {"pause": {}}]);
    create_rollout(&client, &namespace, &rollout("web", 5, canary)).await?;
    wait_healthy(&client, &namespace, "web").await?;
    set_image(&client, &namespace, "web", "example/app:2").await?;
    wait_paused_at_step(&client, &namespace, "web", 1).await?;
    assert_eq!(
        canary_ingress_weights(&ingresses.get("web-web-canary").await?),
        Some((20, 80))
    );
    patch_status(&client, &namespace, "web", json!({"abort": true})).await?;
    let aborted = wait_rollout(&client, &namespace, "web", "Degraded", |rollout| {
        rollout
            .status
            .as_ref()
            .and_then(|status| status.phase)
            .map(|phase| phase.as_str())
            == Some("Degraded")
    })
    .await?;
    assert_eq!(
        canary_ingress_weights(&ingresses.get("web-web-canary").await?),
        Some((0, 100)),
        "traffic is back on stable before the Rollout reports the abort"
    );
    let message = aborted
        .status
        .and_then(|status| status.message)
        .unwrap_or_default();
    assert!(message.starts_with("RolloutAborted"), "{message}");
    assert_eq!(
        ingresses.get("web").await?.resource_version(),
        stable_ingress.resource_version(),
        "the user's Ingress is never written"
    );
    println!("nginx abort: test took {:?}", started.elapsed());
    controller.stop().await
}

/// The weight of the destinations of a route list (`route` of an Istio HTTP route,
/// `backendRefs` of a Gateway API rule) whose `key` (a JSON pointer) is `canary` and `stable`.
fn split(
    destinations: Option<&Value>,
    key: &str,
    canary: &str,
    stable: &str,
) -> Option<(i64, i64)> {
    let destinations = destinations?.as_array()?;
    let weight = |wanted: &str| {
        destinations
            .iter()
            .find(|destination| destination.pointer(key) == Some(&json!(wanted)))
            .map(|destination| number(destination.get("weight")))
    };
    Some((weight(canary)?, weight(stable)?))
}

/// The HTTP route named `primary` of a VirtualService.
fn primary_route(virtual_service: &DynamicObject) -> Option<&Value> {
    virtual_service
        .data
        .pointer("/spec/http")?
        .as_array()?
        .iter()
        .find(|route| route.get("name") == Some(&json!("primary")))
}

/// Istio, host-based: the named HTTP route of the VirtualService gets each step's weights on
/// the canary and stable Services, and 100/0 at the end; its other route is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_host_canary_sets_virtual_service_weights() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let started = std::time::Instant::now();
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-istio").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    create_services(&client, &namespace).await?;
    let virtual_services = dynamic_api(
        &client,
        &namespace,
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
    );
    let admin_route = json!({
        "name": "admin",
        "match": [{"uri": {"prefix": "/admin"}}],
        "route": [{"destination": {"host": "web-admin"}}],
    });
    create_object(
        &virtual_services,
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "web"},
            "spec": {
                "hosts": ["web.example.com"],
                "http": [admin_route, {
                    "name": "primary",
                    "retries": {"attempts": 3},
                    "route": [
                        {"destination": {"host": "web-stable", "port": {"number": 80}}, "weight": 100},
                        {"destination": {"host": "web-canary", "port": {"number": 80}}, "weight": 0},
                    ],
                }],
            },
        }),
    )
    .await?;
    let controller = start_controller(&client, &namespace, "[]").await?;

    let canary = routed_canary(json!({
        "istio": {"virtualService": {"name": "web", "routes": ["primary"]}},
    }));
    create_rollout(&client, &namespace, &rollout("web", 5, canary)).await?;
    let first = wait_healthy(&client, &namespace, "web").await?;
    let run = follow_update(
        &client,
        &namespace,
        first,
        &virtual_services,
        "web",
        |virtual_service| {
            split(
                primary_route(virtual_service)?.get("route"),
                "/destination/host",
                "web-canary",
                "web-stable",
            )
        },
    )
    .await?;
    let virtual_service = virtual_services.get("web").await?;
    assert_eq!(
        virtual_service.data.pointer("/spec/http/0"),
        Some(&admin_route),
        "the route the Rollout does not name is untouched"
    );
    assert_eq!(
        primary_route(&virtual_service).and_then(|route| route.get("retries")),
        Some(&json!({"attempts": 3})),
        "fields the router does not model are kept"
    );
    println!(
        "istio host canary: weights {:?}, test took {:?}",
        run.weights,
        started.elapsed()
    );
    controller.stop().await
}

/// Istio, subset-based: the VirtualService splits between the DestinationRule's `canary` and
/// `stable` subsets, whose `rollouts-pod-template-hash` labels follow the revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_subset_canary_pins_destination_rule_subsets() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let started = std::time::Instant::now();
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-istio-subset").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    create_services(&client, &namespace).await?;
    let virtual_services = dynamic_api(
        &client,
        &namespace,
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
    );
    let destination_rules = dynamic_api(
        &client,
        &namespace,
        "networking.istio.io",
        "v1beta1",
        "DestinationRule",
    );
    create_object(
        &virtual_services,
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "web"},
            "spec": {
                "hosts": ["web"],
                "http": [{
                    "name": "primary",
                    "route": [
                        {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
                        {"destination": {"host": "web", "subset": "canary"}, "weight": 0},
                    ],
                }],
            },
        }),
    )
    .await?;
    create_object(
        &destination_rules,
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "DestinationRule",
            "metadata": {"name": "web"},
            "spec": {
                "host": "web",
                "subsets": [
                    {"name": "canary", "labels": {"app": "web"}},
                    {"name": "stable", "labels": {"app": "web"}},
                ],
            },
        }),
    )
    .await?;
    let controller = start_controller(&client, &namespace, "[]").await?;

    let canary = routed_canary(json!({"istio": {
        "virtualService": {"name": "web", "routes": ["primary"]},
        "destinationRule": {"name": "web", "canarySubsetName": "canary", "stableSubsetName": "stable"},
    }}));
    create_rollout(&client, &namespace, &rollout("web", 5, canary)).await?;
    let first = wait_healthy(&client, &namespace, "web").await?;
    let first_hash = first.status.clone().unwrap_or_default().stable_rs;
    let subset_hashes = |destination_rule: &DynamicObject| {
        let subsets = destination_rule.data.pointer("/spec/subsets")?.as_array()?;
        let hash = |name: &str| {
            subsets
                .iter()
                .find(|subset| subset.get("name") == Some(&json!(name)))?
                .pointer("/labels/rollouts-pod-template-hash")?
                .as_str()
                .map(str::to_string)
        };
        Some((hash("canary"), hash("stable")))
    };
    assert_eq!(
        subset_hashes(&destination_rules.get("web").await?),
        Some((first_hash.clone(), first_hash.clone())),
        "both subsets select revision 1 while it is the only one"
    );
    let hashes = Recording::start(destination_rules.clone(), "web", subset_hashes);
    let run = follow_update(
        &client,
        &namespace,
        first,
        &virtual_services,
        "web",
        |virtual_service| {
            split(
                primary_route(virtual_service)?.get("route"),
                "/destination/subset",
                "canary",
                "stable",
            )
        },
    )
    .await?;
    let last_hash = run.last.status.clone().unwrap_or_default().stable_rs;
    let hashes = hashes.values();
    assert!(
        hashes.contains(&(last_hash.clone(), first_hash.clone())),
        "the canary subset selects revision 2 while revision 1 is stable: {hashes:?}"
    );
    assert_eq!(
        hashes.last(),
        Some(&(last_hash.clone(), last_hash.clone())),
        "both subsets select revision 2 once it is stable: {hashes:?}"
    );
    let destination_rule = destination_rules.get("web").await?;
    assert_eq!(
        destination_rule
            .annotations()
            .get("argo-rollouts.argoproj.io/managed-by-rollouts"),
        Some(&"web".to_string())
    );
    println!(
        "istio subset canary: weights {:?}, subset hashes {hashes:?}, test took {:?}",
        run.weights,
        started.elapsed()
    );
    controller.stop().await
}

/// Gateway API through the plugin block `argoproj-labs/gatewayAPI`: the HTTPRoute's canary and
/// stable backendRefs get each step's weights and 0/100 at the end; a backend and a rule the
/// Rollout does not manage keep their weights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_canary_sets_http_route_backend_weights() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let started = std::time::Instant::now();
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-gatewayapi").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    create_services(&client, &namespace).await?;
    let routes = dynamic_api(
        &client,
        &namespace,
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    );
    let legacy_rule = json!({
        "matches": [{"path": {"type": "PathPrefix", "value": "/legacy"}}],
        "backendRefs": [{"name": "legacy", "port": 8080, "weight": 1}],
    });
    create_object(
        &routes,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web"},
            "spec": {
                "parentRefs": [{"name": "edge"}],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": "web-stable", "port": 80, "weight": 100},
                        {"name": "web-canary", "port": 80, "weight": 0},
                        {"name": "mirror-sink", "port": 80, "weight": 7},
                    ],
                }, legacy_rule],
            },
        }),
    )
    .await?;
    let controller = start_controller(&client, &namespace, "[]").await?;

    let canary = routed_canary(json!({"plugins": {
        "argoproj-labs/gatewayAPI": {"httpRoute": "web", "namespace": namespace},
    }}));
    create_rollout(&client, &namespace, &rollout("web", 5, canary)).await?;
    let first = wait_healthy(&client, &namespace, "web").await?;
    let run = follow_update(&client, &namespace, first, &routes, "web", |route| {
        split(
            route.data.pointer("/spec/rules/0/backendRefs"),
            "/name",
            "web-canary",
            "web-stable",
        )
    })
    .await?;
    let route = routes.get("web").await?;
    assert_eq!(
        split(
            route.data.pointer("/spec/rules/0/backendRefs"),
            "/name",
            "mirror-sink",
            "web-stable",
        ),
        Some((7, 100)),
        "the unmanaged backend keeps its weight"
    );
    assert_eq!(
        route.data.pointer("/spec/rules/1"),
        Some(&legacy_rule),
        "the rule without the Rollout's Services is untouched"
    );
    println!(
        "gateway api canary: weights {:?}, test took {:?}",
        run.weights,
        started.elapsed()
    );
    controller.stop().await
}

/// Waits until the Rollout is Degraded with a message that contains every one of `parts`.
async fn wait_degraded_with(
    client: &Client,
    namespace: &str,
    name: &str,
    parts: &[&str],
) -> anyhow::Result<String> {
    let rollout = wait_rollout(
        client,
        namespace,
        name,
        &format!("Degraded with {parts:?}"),
        |rollout| {
            let status = rollout.status.clone().unwrap_or_default();
            let message = status.message.unwrap_or_default();
            status.phase.map(|phase| phase.as_str()) == Some("Degraded")
                && parts.iter().all(|part| message.contains(part))
        },
    )
    .await?;
    Ok(rollout
        .status
        .and_then(|status| status.message)
        .unwrap_or_default())
}

/// A router plugin that traps, one that outlives its call timeout, a built-in that fails to load
/// on its first use (a metric provider configured as a router) and one that is not
/// configured: each of their Rollouts is Degraded with a message naming the plugin and what went wrong, while a third Rollout in the
/// same namespace goes through a whole update to Healthy; the failing ones stay Degraded until
/// their plugin is replaced by a working one in the plugin ConfigMap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_router_plugins_degrade_only_their_rollouts() -> anyhow::Result<()> {
    let _serial = one_at_a_time().await;
    let started = std::time::Instant::now();
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("ctl-router-failure").await?;
    let client = ns.client();
    let namespace = ns.name().to_string();
    let trap = fixture_plugin("sluice-fixture-trap").await?;
    let slow = fixture_plugin("sluice-fixture-slow-host").await?;
    let routers = format!(
        "- name: sluice/trap\n  location: file://{}\n- name: sluice/slow\n  location: file://{}\n  limits: {{timeout: 1s}}\n- name: sluice/misbuilt\n  location: builtin:prometheus\n",
        trap.display(),
        slow.display()
    );
    for name in ["trapped", "slow", "misbuilt", "unconfigured"] {
        create_service(&client, &namespace, &format!("{name}-canary"), name).await?;
        create_service(&client, &namespace, &format!("{name}-stable"), name).await?;
    }
    let controller = start_controller(&client, &namespace, &routers).await?;

    let routed_by = |name: &str, plugin: &str| {
        json!({
            "canaryService": format!("{name}-canary"),
            "stableService": format!("{name}-stable"),
            "trafficRouting": {"plugins": {plugin: {}}},
            "steps": steps(),
        })
    };
    create_rollout(
        &client,
        &namespace,
        &rollout("trapped", 2, routed_by("trapped", "sluice/trap")),
    )
    .await?;
    create_rollout(
        &client,
        &namespace,
        &rollout("slow", 2, routed_by("slow", "sluice/slow")),
    )
    .await?;
    create_rollout(
        &client,
        &namespace,
        &rollout("misbuilt", 2, routed_by("misbuilt", "sluice/misbuilt")),
    )
    .await?;
    create_rollout(
        &client,
        &namespace,
        &rollout(
            "unconfigured",
            2,
            routed_by("unconfigured", "sluice/missing"),
        ),
    )
    .await?;
    create_rollout(
        &client,
        &namespace,
        &rollout("steady", 2, json!({"steps": steps()})),
    )
    .await?;

    let trapped = wait_degraded_with(
        &client,
        &namespace,
        "trapped",
        &[
            "ReconciliationError",
            "sluice/trap",
            "trapped in update-hash",
        ],
    )
    .await?;
    let slow = wait_degraded_with(
        &client,
        &namespace,
        "slow",
        &[
            "ReconciliationError",
            "sluice/slow",
            "timed out in set-weight",
        ],
    )
    .await?;
    let misbuilt = wait_degraded_with(
        &client,
        &namespace,
        "misbuilt",
        &[
            "ReconciliationError",
            "sluice/misbuilt",
            "does not implement world sluice:plugin/traffic-router-plugin",
        ],
    )
    .await?;
    let unconfigured = wait_degraded_with(
        &client,
        &namespace,
        "unconfigured",
        &["ReconciliationError", "sluice/missing", "is not available"],
    )
    .await?;
    println!(
        "trapped: {trapped}\nslow: {slow}\nmisbuilt: {misbuilt}\nunconfigured: {unconfigured}"
    );

    wait_healthy(&client, &namespace, "steady").await?;
    set_image(&client, &namespace, "steady", "example/app:2").await?;
    for (index, _) in STEPS {
        wait_paused_at_step(&client, &namespace, "steady", index).await?;
    }
    wait_healthy(&client, &namespace, "steady").await?;
    for (name, plugin) in [
        ("trapped", "sluice/trap"),
        ("slow", "sluice/slow"),
        ("misbuilt", "sluice/misbuilt"),
        ("unconfigured", "sluice/missing"),
    ] {
        let status = get_rollout(&client, &namespace, name)
            .await?
            .status
            .unwrap_or_default();
        assert_eq!(status.phase.map(|phase| phase.as_str()), Some("Degraded"));
        assert!(
            status.message.unwrap_or_default().contains(plugin),
            "{name} still names {plugin}"
        );
    }

    // The trapping plugin replaced by a working one: its Rollout recovers without a restart.
    let echo = fixture_plugin("sluice-fixture-echo-router").await?;
    let routers = format!(
        "- name: sluice/trap\n  location: file://{}\n  grants:\n    kube:\n      - {{kinds: [ConfigMap], verbs: [get, create, patch, delete]}}\n",
        echo.display()
    );
    install_plugin_config(&client, &namespace, &routers, "[]").await?;
    let recovered = wait_healthy(&client, &namespace, "trapped").await?;
    assert_eq!(
        recovered.status.and_then(|status| status.message),
        None,
        "the error is gone once the router works"
    );
    println!("router failures: test took {:?}", started.elapsed());
    controller.stop().await
}
