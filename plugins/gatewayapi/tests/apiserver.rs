//! The Gateway API router against a real kube-apiserver (`sluice-localcluster`) through the
//! runtime's client-backed kube capability, with the narrowest grants (get and patch on the
//! three route kinds in the Rollout's namespace).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use common::{context, rule_names, weight};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use sluice_localcluster::LocalCluster;
use sluice_runtime::{
    ClientKubeBackend, HeaderMatch, HeaderRoute, MirrorRoute, RouteMatch, StringMatch,
    Verification, WeightDestination,
};
use sluice_testkit::ConflictingKube;

fn api(
    namespace: &sluice_localcluster::TestNamespace,
    version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    namespace.dynamic_api(&ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        version,
        kind,
    )))
}

async fn create(api: &Api<DynamicObject>, object: Value) {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

async fn read(api: &Api<DynamicObject>, name: &str) -> Value {
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

fn backends(port: i64) -> Value {
    json!([
        {"name": "web-stable", "port": port, "weight": 100},
        {"name": "web-canary", "port": port, "weight": 0},
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_on_a_real_api_server() {
    let cluster = LocalCluster::shared();
    let namespace = cluster.namespace("gatewayapi").await.unwrap();
    let (http, grpc, tcp) = (
        api(&namespace, "v1", "HTTPRoute"),
        api(&namespace, "v1", "GRPCRoute"),
        api(&namespace, "v1alpha2", "TCPRoute"),
    );
    let mut http_backends = backends(80);
    http_backends
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "legacy", "port": 8080, "weight": 10}));
    create(
        &http,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "labels": {"team": "shop"}},
            "spec": {
                "parentRefs": [{"name": "edge"}],
                "rules": [{
                    "name": "main",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": http_backends,
                    "timeouts": {"request": "10s"}
                }]
            }
        }),
    )
    .await;
    create(&grpc, json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": {"name": "web-grpc"},
        "spec": {"rules": [{"matches": [{"method": {"service": "shop.Cart"}}], "backendRefs": backends(9090)}]}
    }))
    .await;
    create(&tcp, json!({
        "apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute", "metadata": {"name": "web-tcp"},
        "spec": {"rules": [{"backendRefs": backends(5432)}]}
    }))
    .await;
    let original_http = read(&http, "web").await;

    // One concurrent write before the first patch: the API server answers 409 and the router retries.
    let kube = Arc::new(ConflictingKube::new(
        Arc::new(ClientKubeBackend::new(namespace.client())),
        1,
    ));
    let router = common::load_router(kube.clone()).await;
    let ctx = context(
        namespace.name(),
        json!({"httpRoute": "web", "grpcRoute": "web-grpc", "tcpRoute": "web-tcp"}),
    );
    let additional = [WeightDestination {
        service_name: "web-exp".into(),
        pod_template_hash: "h".into(),
        weight: 10,
    }];

    router.set_weight(&ctx, 30, &additional).await.unwrap();
    assert_eq!(
        kube.plugin_patches.load(Ordering::SeqCst),
        4,
        "one conflict, then one patch per route"
    );
    for (route, port) in [
        (read(&http, "web").await, 80),
        (read(&grpc, "web-grpc").await, 9090),
        (read(&tcp, "web-tcp").await, 5432),
    ] {
        assert_eq!(weight(&route, 0, "web-canary"), Some(30));
        assert_eq!(weight(&route, 0, "web-stable"), Some(60));
        assert!(
            route["spec"]["rules"][0]["backendRefs"]
                .as_array()
                .unwrap()
                .contains(&json!({"name": "web-exp", "port": port, "weight": 10}))
        );
    }
    let route = read(&http, "web").await;
    assert_eq!(weight(&route, 0, "legacy"), Some(10));
    assert_eq!(
        route["spec"]["rules"][0]["timeouts"],
        json!({"request": "10s"})
    );
    assert_eq!(route["metadata"]["labels"]["team"], "shop");
    assert_eq!(
        route["metadata"]["labels"]["sluice.test/concurrent-writes"],
        "1"
    );
    assert_eq!(
        router.verify_weight(&ctx, 30, &additional).await.unwrap(),
        Verification::Verified
    );
    assert_eq!(
        router.verify_weight(&ctx, 40, &additional).await.unwrap(),
        Verification::NotVerified
    );

    let header = HeaderRoute {
        name: "canary-by-header".into(),
        matches: vec![HeaderMatch {
            header_name: "x-canary".into(),
            value: StringMatch::Exact("yes".into()),
        }],
    };
    router.set_header_route(&ctx, &header).await.unwrap();
    let mirror = MirrorRoute {
        name: "mirror-api".into(),
        matches: vec![RouteMatch {
            method: Some(StringMatch::Exact("POST".into())),
            path: Some(StringMatch::Prefix("/api".into())),
            headers: vec![],
        }],
        percentage: Some(20),
    };
    router.set_mirror_route(&ctx, &mirror).await.unwrap();
    let route = read(&http, "web").await;
    assert_eq!(
        rule_names(&route),
        [
            Some("main".into()),
            Some("canary-by-header".into()),
            Some("mirror-api".into())
        ]
    );
    assert_eq!(
        route["spec"]["rules"][1]["backendRefs"],
        json!([{"name": "web-canary", "port": 80}])
    );
    assert_eq!(
        route["spec"]["rules"][1]["matches"][0]["headers"],
        json!([{"type": "Exact", "name": "x-canary", "value": "yes"}])
    );
    assert_eq!(
        route["spec"]["rules"][2]["filters"],
        json!([{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "web-canary", "port": 80}, "percent": 20}}])
    );
    assert!(route["metadata"]["annotations"]["rollouts.sluice.dev/managed-routes"].is_string());
    assert_eq!(
        read(&grpc, "web-grpc").await["spec"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    router.set_weight(&ctx, 50, &[]).await.unwrap();
    router.remove_managed_routes(&ctx).await.unwrap();
    let route = read(&http, "web").await;
    assert_eq!(rule_names(&route), [Some("main".into())]);
    assert_eq!(
        route["metadata"]["annotations"].get("rollouts.sluice.dev/managed-routes"),
        None
    );
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "web-exp removed"
    );
    assert_eq!(
        (
            weight(&route, 0, "web-canary"),
            weight(&route, 0, "web-stable")
        ),
        (Some(50), Some(50))
    );
    assert_eq!(
        route["spec"]["parentRefs"],
        original_http["spec"]["parentRefs"]
    );
    let grpc_route = read(&grpc, "web-grpc").await;
    assert_eq!(grpc_route["spec"]["rules"].as_array().unwrap().len(), 1);

    const CALLS: u32 = 20;
    let started = Instant::now();
    for call in 0..CALLS {
        router
            .set_weight(&ctx, i32::try_from(call).unwrap(), &[])
            .await
            .unwrap();
    }
    println!(
        "set-weight over 3 routes against the local kube-apiserver: {:?} per call over {CALLS} calls",
        started.elapsed() / CALLS
    );
}
