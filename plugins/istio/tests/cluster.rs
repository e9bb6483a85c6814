//! The Istio router's `.wasm` against a real kube-apiserver (the shared local cluster, which
//! serves the Istio networking CRDs of `tests/crds/`), through the runtime's real Kubernetes
//! backend and the narrowest grant.

mod common;

use std::sync::Arc;
use std::time::Instant;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_localcluster::{LocalCluster, TestNamespace};
use sluice_runtime::{
    ClientKubeBackend, EngineOptions, GrantsSpec, HeaderMatch, HeaderRoute, HostServices, Limits,
    Plugin, PluginEngine, PluginKind, PluginMetrics, PluginSpec, ReqwestHttpBackend, StringMatch,
    TrafficRouter,
};

/// Only what the router needs in the Rollout's namespace.
const GRANTS: &str = "kube: [{group: networking.istio.io, kinds: [VirtualService, DestinationRule], verbs: [get, patch]}]";

async fn load_router(ns: &TestNamespace) -> TrafficRouter {
    let engine = PluginEngine::new(EngineOptions::default()).unwrap();
    let wasm = std::fs::read(common::plugin_wasm()).unwrap();
    let component = engine.compile_component(wasm.into()).await.unwrap();
    let grants: GrantsSpec = serde_yaml::from_str(GRANTS).unwrap();
    let spec = PluginSpec {
        name: "istio".into(),
        kind: PluginKind::TrafficRouter,
        grants: grants.validate().unwrap(),
        limits: Limits::default(),
        args: Vec::new(),
        expected_type: Some("Istio".into()),
    };
    let services = HostServices {
        kube: Arc::new(ClientKubeBackend::new(ns.client())),
        http: Arc::new(ReqwestHttpBackend::new().unwrap()),
        observer: None,
    };
    match engine
        .load_plugin(spec, &component, services, PluginMetrics::unregistered())
        .await
    {
        Ok(Plugin::TrafficRouter(router)) => router,
        Ok(_) => panic!("loaded as the wrong kind"),
        Err(e) => panic!("{e}"),
    }
}

fn istio(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "networking.istio.io",
        "v1beta1",
        kind,
    ))
}

async fn create(ns: &TestNamespace, kind: &str, object: Value) {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    ns.dynamic_api(&istio(kind))
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

async fn read(ns: &TestNamespace, kind: &str, name: &str) -> Value {
    serde_json::to_value(ns.dynamic_api(&istio(kind)).get(name).await.unwrap()).unwrap()
}

#[tokio::test]
async fn virtual_service_and_destination_rule_on_a_real_apiserver() {
    let ns = LocalCluster::shared()
        .namespace("istio-router")
        .await
        .unwrap();
    create(&ns, "VirtualService", json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {
            "hosts": ["web"],
            "http": [
                {"name": "primary", "retries": {"attempts": 3}, "route": [
                    {"destination": {"host": "web", "subset": "stable", "port": {"number": 8080}}, "weight": 100},
                    {"destination": {"host": "web", "subset": "canary", "port": {"number": 8080}}, "weight": 0}
                ]},
                {"name": "docs", "route": [{"destination": {"host": "docs"}}]}
            ]
        }
    }))
    .await;
    create(
        &ns,
        "DestinationRule",
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "DestinationRule",
            "metadata": {"name": "web"},
            "spec": {"host": "web", "subsets": [
                {"name": "stable", "labels": {"app": "web"}},
                {"name": "canary", "labels": {"app": "web"}}
            ]}
        }),
    )
    .await;

    let router = load_router(&ns).await;
    let config = json!({
        "virtualService": {"name": "web", "routes": ["primary"]},
        "destinationRule": {"name": "web", "canarySubsetName": "canary", "stableSubsetName": "stable"}
    });
    let rollout = json!({"spec": {"strategy": {"canary": {"trafficRouting": {"managedRoutes": [{"name": "by-header"}]}}}}});
    let ctx = common::context(&config, &rollout);
    let ctx = sluice_runtime::RolloutContext {
        namespace: ns.name().to_owned(),
        ..ctx
    };

    router
        .update_hash(&ctx, "6b8c9d", "5f7a1e", &[])
        .await
        .unwrap();
    let mut timings = Vec::new();
    for weight in [5, 50, 100, 30] {
        let started = Instant::now();
        router.set_weight(&ctx, weight, &[]).await.unwrap();
        timings.push(started.elapsed());
    }
    let header = HeaderRoute {
        name: "by-header".into(),
        matches: vec![HeaderMatch {
            header_name: "x-canary".into(),
            value: StringMatch::Exact("yes".into()),
        }],
    };
    router.set_header_route(&ctx, &header).await.unwrap();

    let vs = read(&ns, "VirtualService", "web").await;
    assert_eq!(
        vs["spec"]["http"],
        json!([
            {"name": "by-header", "match": [{"headers": {"x-canary": {"exact": "yes"}}}],
             "route": [{"destination": {"host": "web", "subset": "canary", "port": {"number": 8080}}, "weight": 100}]},
            {"name": "primary", "retries": {"attempts": 3}, "route": [
                {"destination": {"host": "web", "subset": "stable", "port": {"number": 8080}}, "weight": 70},
                {"destination": {"host": "web", "subset": "canary", "port": {"number": 8080}}, "weight": 30}
            ]},
            {"name": "docs", "route": [{"destination": {"host": "docs"}}]}
        ])
    );
    let rule = read(&ns, "DestinationRule", "web").await;
    assert_eq!(
        rule["metadata"]["annotations"],
        json!({"argo-rollouts.argoproj.io/managed-by-rollouts": "web"})
    );
    assert_eq!(
        rule["spec"]["subsets"],
        json!([
            {"name": "stable", "labels": {"app": "web", "rollouts-pod-template-hash": "5f7a1e"}},
            {"name": "canary", "labels": {"app": "web", "rollouts-pod-template-hash": "6b8c9d"}}
        ])
    );

    // Someone else edits the VirtualService; removing the managed routes keeps their change.
    ns.dynamic_api(&istio("VirtualService"))
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"edited": "yes"}}})),
        )
        .await
        .unwrap();
    router.remove_managed_routes(&ctx).await.unwrap();
    let vs = read(&ns, "VirtualService", "web").await;
    let names: Vec<&str> = vs["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["primary", "docs"]);
    assert_eq!(vs["metadata"]["labels"], json!({"edited": "yes"}));

    timings.sort();
    eprintln!(
        "istio set-weight on the local apiserver: median {:?} (4 calls)",
        timings[2]
    );
}

#[tokio::test]
async fn a_missing_virtual_service_is_reported_by_name() {
    let ns = LocalCluster::shared()
        .namespace("istio-missing")
        .await
        .unwrap();
    let router = load_router(&ns).await;
    let ctx = sluice_testkit::rollout_context(
        ns.name(),
        "web",
        r#"{"virtualService": {"name": "absent"}}"#,
    );
    let message = router
        .set_weight(&ctx, 5, &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&format!("VirtualService `{}/absent` not found", ns.name())),
        "{message}"
    );
}
