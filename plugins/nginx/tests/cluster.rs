//! The NGINX router's `.wasm` against a real kube-apiserver (the shared local cluster), through
//! the runtime's real Kubernetes backend and the narrowest grant.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sluice_localcluster::{LocalCluster, TestNamespace};
use sluice_runtime::{
    ClientKubeBackend, EngineOptions, GrantsSpec, HostServices, Limits, Plugin, PluginEngine,
    PluginKind, PluginMetrics, PluginSpec, ReqwestHttpBackend, TrafficRouter,
};

/// Loads the router with the real kube backend of `ns`'s client.
async fn load_router(ns: &TestNamespace) -> TrafficRouter {
    let engine = PluginEngine::new(EngineOptions::default()).unwrap();
    let wasm = std::fs::read(common::plugin_wasm()).unwrap();
    let component = engine.compile_component(wasm.into()).await.unwrap();
    let grants: GrantsSpec = serde_yaml::from_str(common::GRANTS).unwrap();
    let spec = PluginSpec {
        name: "nginx".into(),
        kind: PluginKind::TrafficRouter,
        grants: grants.validate().unwrap(),
        limits: Limits::default(),
        args: Vec::new(),
        expected_type: Some("Nginx".into()),
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

/// Creates a Rollout named `web` (so the canary Ingress has a live owner) and returns its uid.
async fn create_rollout(ns: &TestNamespace) -> String {
    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"));
    let rollout: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {
                "stableService": "web-stable",
                "canaryService": "web-canary",
                "trafficRouting": {"nginx": {"stableIngress": "web"}},
                "steps": [{"setWeight": 20}]
            }}
        }
    }))
    .unwrap();
    let created = ns
        .dynamic_api(&resource)
        .create(&PostParams::default(), &rollout)
        .await
        .unwrap();
    created.metadata.uid.unwrap()
}

#[tokio::test]
async fn the_canary_ingress_is_created_and_patched_on_a_real_apiserver() {
    let ns = LocalCluster::shared()
        .namespace("nginx-router")
        .await
        .unwrap();
    let ingresses = ns.api::<Ingress>();
    let stable: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web", "annotations": {"example.com/owner": "platform"}},
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [
                {"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-stable", "port": {"number": 80}}}}]}},
                {"host": "other.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}]}}
            ]
        }
    }))
    .unwrap();
    let stable = ingresses
        .create(&PostParams::default(), &stable)
        .await
        .unwrap();
    let uid = create_rollout(&ns).await;
    let router = load_router(&ns).await;

    let mut ctx = common::context(&json!({"stableIngress": "web"}), &json!({}));
    ctx.namespace = ns.name().to_owned();
    ctx.uid = uid.clone();
    router.set_weight(&ctx, 5, &[]).await.unwrap();

    let canary = serde_json::to_value(ingresses.get("web-web-canary").await.unwrap()).unwrap();
    assert_eq!(
        canary["metadata"]["annotations"],
        json!({
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "5"
        })
    );
    assert_eq!(
        canary["metadata"]["ownerReferences"],
        json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": uid, "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(
        canary["spec"],
        json!({
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [{"host": "web.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-canary", "port": {"number": 80}}}}]}}]
        })
    );

    // Someone else annotates the canary Ingress; the next weight keeps that annotation.
    ingresses
        .patch(
            "web-web-canary",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"example.com/owner": "team-web"}}})),
        )
        .await
        .unwrap();
    let mut timings = Vec::new();
    for weight in [50, 100, 100, 100, 0] {
        let started = Instant::now();
        router.set_weight(&ctx, weight, &[]).await.unwrap();
        timings.push(started.elapsed());
    }
    let canary = ingresses.get("web-web-canary").await.unwrap();
    let annotations = canary.metadata.annotations.unwrap();
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/canary-weight"],
        "0"
    );
    assert_eq!(annotations["example.com/owner"], "team-web");

    let stable_after = ingresses.get("web").await.unwrap();
    assert_eq!(
        stable_after.metadata.resource_version,
        stable.metadata.resource_version
    );
    timings.sort();
    eprintln!(
        "nginx set-weight on the local apiserver: median {:?} (5 calls)",
        timings[2]
    );
    assert!(timings[2] < Duration::from_secs(5));
}

#[tokio::test]
async fn a_missing_stable_ingress_is_reported_by_name() {
    let ns = LocalCluster::shared()
        .namespace("nginx-missing")
        .await
        .unwrap();
    let router = load_router(&ns).await;
    let mut ctx = common::context(&json!({"stableIngress": "absent"}), &json!({}));
    ctx.namespace = ns.name().to_owned();
    let error = router.set_weight(&ctx, 5, &[]).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("stable Ingress `absent` not found"),
        "{message}"
    );
    let names: Vec<Value> = ns
        .api::<Ingress>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|i| json!(i.metadata.name))
        .collect();
    assert!(names.is_empty(), "nothing was created: {names:?}");
}
