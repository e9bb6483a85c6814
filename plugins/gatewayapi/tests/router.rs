//! The Gateway API router through the testkit: the real `.wasm` on the production runtime over
//! the in-memory Kubernetes store.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use common::{context, harness, rule_names, weight};
use serde_json::{Value, json};
use sluice_runtime::{
    CallError, HeaderMatch, HeaderRoute, MirrorRoute, PluginError, RouteMatch, StringMatch,
    Verification, WeightDestination,
};
use sluice_testkit::ConflictingKube;
use sluice_testkit::{InMemoryKube, PluginHarness};

fn http_config() -> Value {
    json!({"httpRoutes": [{"name": "web", "useHeaderRoutes": true}]})
}

fn route(harness: &PluginHarness, api_version: &str, kind: &str, name: &str) -> Value {
    harness
        .kube()
        .object(api_version, kind, Some("shop"), name)
        .unwrap()
}

fn http_route(harness: &PluginHarness) -> Value {
    route(harness, "gateway.networking.k8s.io/v1", "HTTPRoute", "web")
}

fn managed_annotation(route: &Value) -> Option<&Value> {
    route["metadata"]["annotations"].get("rollouts.sluice.dev/managed-routes")
}

fn destination(service: &str, weight: i32) -> WeightDestination {
    WeightDestination {
        service_name: service.into(),
        pod_template_hash: "h1".into(),
        weight,
    }
}

fn plugin_error(result: Result<impl std::fmt::Debug, CallError>) -> PluginError {
    match result {
        Err(CallError::Plugin { error, .. }) => error,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

fn header_route(name: &str, value: Option<&str>) -> HeaderRoute {
    HeaderRoute {
        name: name.into(),
        matches: value
            .map(|v| {
                vec![HeaderMatch {
                    header_name: "x-canary".into(),
                    value: StringMatch::Exact(v.into()),
                }]
            })
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn weights_with_and_without_additional_destinations() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context("shop", http_config());
    let before = http_route(&harness);
    for desired in [0, 5, 50, 100] {
        router.set_weight(&ctx, desired, &[]).await.unwrap();
        let route = http_route(&harness);
        assert_eq!(weight(&route, 0, "web-canary"), Some(i64::from(desired)));
        assert_eq!(
            weight(&route, 0, "web-stable"),
            Some(i64::from(100 - desired))
        );
        assert_eq!(
            weight(&route, 0, "legacy"),
            Some(10),
            "unmanaged backend untouched"
        );
        assert_eq!(
            route["spec"]["rules"][1], before["spec"]["rules"][1],
            "rule without canary/stable untouched"
        );
        assert_eq!(
            router.verify_weight(&ctx, desired, &[]).await.unwrap(),
            Verification::Verified
        );
    }
    let route = http_route(&harness);
    for field in ["parentRefs", "hostnames"] {
        assert_eq!(route["spec"][field], before["spec"][field]);
    }
    assert_eq!(
        route["spec"]["rules"][0]["filters"],
        before["spec"]["rules"][0]["filters"]
    );
    assert_eq!(
        route["spec"]["rules"][0]["timeouts"],
        json!({"request": "10s"})
    );
    assert_eq!(route["metadata"]["labels"], json!({"team": "shop"}));

    for desired in [0, 5, 50, 100 - 15] {
        let additional = [destination("exp-a", 10), destination("exp-b", 5)];
        router.set_weight(&ctx, desired, &additional).await.unwrap();
        let route = http_route(&harness);
        assert_eq!(weight(&route, 0, "web-canary"), Some(i64::from(desired)));
        assert_eq!(
            weight(&route, 0, "web-stable"),
            Some(i64::from(85 - desired))
        );
        assert_eq!(
            (weight(&route, 0, "exp-a"), weight(&route, 0, "exp-b")),
            (Some(10), Some(5))
        );
        assert_eq!(weight(&route, 0, "legacy"), Some(10));
        assert_eq!(
            router
                .verify_weight(&ctx, desired, &additional)
                .await
                .unwrap(),
            Verification::Verified
        );
    }
    let added = &http_route(&harness)["spec"]["rules"][0]["backendRefs"][3];
    assert_eq!(added, &json!({"name": "exp-a", "port": 80, "weight": 10}));

    router
        .set_weight(&ctx, 20, &[destination("exp-a", 30)])
        .await
        .unwrap();
    let route = http_route(&harness);
    assert_eq!(
        (weight(&route, 0, "exp-a"), weight(&route, 0, "exp-b")),
        (Some(30), None),
        "exp-b removed"
    );
    router.set_weight(&ctx, 20, &[]).await.unwrap();
    let route = http_route(&harness);
    assert_eq!(weight(&route, 0, "exp-a"), None);
    assert_eq!(
        managed_annotation(&route),
        None,
        "no record left once nothing is managed"
    );
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn verify_weight_reports_both_ways() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context("shop", http_config());
    assert_eq!(
        router.verify_weight(&ctx, 30, &[]).await.unwrap(),
        Verification::NotVerified
    );
    router.set_weight(&ctx, 30, &[]).await.unwrap();
    assert_eq!(
        router.verify_weight(&ctx, 30, &[]).await.unwrap(),
        Verification::Verified
    );
    assert_eq!(
        router.verify_weight(&ctx, 31, &[]).await.unwrap(),
        Verification::NotVerified
    );
    assert_eq!(
        router
            .verify_weight(&ctx, 30, &[destination("exp", 5)])
            .await
            .unwrap(),
        Verification::NotVerified
    );
    // Someone edits the weights behind the router's back.
    let mut edited = http_route(&harness);
    edited["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(99);
    harness.kube().insert(edited).unwrap();
    assert_eq!(
        router.verify_weight(&ctx, 30, &[]).await.unwrap(),
        Verification::NotVerified
    );
}

#[tokio::test]
async fn header_routes_are_added_replaced_and_removed() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context("shop", json!({"httpRoute": "web", "grpcRoute": "web-grpc"}));
    router.set_weight(&ctx, 10, &[]).await.unwrap();
    router
        .set_header_route(&ctx, &header_route("canary-by-header", Some("yes")))
        .await
        .unwrap();

    let route = http_route(&harness);
    assert_eq!(
        rule_names(&route),
        [Some("main".into()), None, Some("canary-by-header".into())]
    );
    let header_rule = &route["spec"]["rules"][2];
    assert_eq!(
        header_rule["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"type": "Exact", "name": "x-canary", "value": "yes"}]}])
    );
    assert_eq!(
        header_rule["backendRefs"],
        json!([{"name": "web-canary", "port": 80}])
    );
    assert_eq!(
        route["metadata"]["annotations"]["rollouts.sluice.dev/managed-routes"],
        r#"{"web":{"headerRoutes":{"canary-by-header":["canary-by-header"]}}}"#
    );
    let grpc = route_of(&harness, "GRPCRoute", "web-grpc");
    assert_eq!(
        grpc["spec"]["rules"][1]["matches"],
        json!([{"method": {"service": "shop.Cart"}, "headers": [{"type": "Exact", "name": "x-canary", "value": "yes"}]}])
    );

    // Weight changes leave the header rule's single canary backend alone.
    router.set_weight(&ctx, 40, &[]).await.unwrap();
    assert_eq!(
        http_route(&harness)["spec"]["rules"][2]["backendRefs"],
        json!([{"name": "web-canary", "port": 80}])
    );
    assert_eq!(
        router.verify_weight(&ctx, 40, &[]).await.unwrap(),
        Verification::Verified
    );

    // Upsert with the same name replaces the rule.
    router
        .set_header_route(&ctx, &header_route("canary-by-header", Some("please")))
        .await
        .unwrap();
    let route = http_route(&harness);
    assert_eq!(route["spec"]["rules"].as_array().unwrap().len(), 3);
    assert_eq!(
        route["spec"]["rules"][2]["matches"][0]["headers"][0]["value"],
        "please"
    );

    // No matches removes it.
    router
        .set_header_route(&ctx, &header_route("canary-by-header", None))
        .await
        .unwrap();
    let route = http_route(&harness);
    assert_eq!(rule_names(&route), [Some("main".into()), None]);
    assert_eq!(managed_annotation(&route), None);
    assert_eq!(
        route_of(&harness, "GRPCRoute", "web-grpc")["spec"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn header_routes_only_go_to_routes_that_use_them() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context("shop", json!({"httpRoutes": [{"name": "web"}]}));
    router
        .set_header_route(&ctx, &header_route("h", Some("1")))
        .await
        .unwrap();
    assert_eq!(rule_names(&http_route(&harness)).len(), 2);
    assert!(harness.exchanges().is_empty(), "nothing read or written");
}

fn route_of(harness: &PluginHarness, kind: &str, name: &str) -> Value {
    let version = if kind == "TCPRoute" { "v1alpha2" } else { "v1" };
    route(
        harness,
        &format!("gateway.networking.k8s.io/{version}"),
        kind,
        name,
    )
}

fn mirror_route(name: &str, percentage: Option<i32>, path: Option<&str>) -> MirrorRoute {
    MirrorRoute {
        name: name.into(),
        matches: path
            .map(|p| {
                vec![RouteMatch {
                    method: Some(StringMatch::Exact("GET".into())),
                    path: Some(StringMatch::Prefix(p.into())),
                    headers: vec![],
                }]
            })
            .unwrap_or_default(),
        percentage,
    }
}

#[tokio::test]
async fn mirror_routes_are_added_replaced_and_removed() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context("shop", http_config());
    router.set_weight(&ctx, 20, &[]).await.unwrap();
    router
        .set_mirror_route(&ctx, &mirror_route("mirror-api", Some(40), Some("/api")))
        .await
        .unwrap();
    let route = http_route(&harness);
    let mirror = &route["spec"]["rules"][2];
    assert_eq!(mirror["name"], "mirror-api");
    assert_eq!(
        mirror["matches"],
        json!([{"method": "GET", "path": {"type": "PathPrefix", "value": "/api"}}])
    );
    assert_eq!(
        mirror["backendRefs"], route["spec"]["rules"][0]["backendRefs"],
        "forwards like the weighted rule"
    );
    assert_eq!(
        mirror["filters"][1],
        json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "web-canary", "port": 80}, "percent": 40}})
    );
    assert_eq!(
        mirror["filters"][0],
        route["spec"]["rules"][0]["filters"][0]
    );

    // Weights follow into the mirror rule.
    router.set_weight(&ctx, 50, &[]).await.unwrap();
    let route = http_route(&harness);
    assert_eq!(
        (
            weight(&route, 2, "web-canary"),
            weight(&route, 2, "web-stable")
        ),
        (Some(50), Some(50))
    );

    router
        .set_mirror_route(&ctx, &mirror_route("mirror-api", None, Some("/v2")))
        .await
        .unwrap();
    let route = http_route(&harness);
    assert_eq!(route["spec"]["rules"].as_array().unwrap().len(), 3);
    assert_eq!(
        route["spec"]["rules"][2]["matches"][0]["path"]["value"],
        "/v2"
    );
    assert_eq!(
        route["spec"]["rules"][2]["filters"][1]["requestMirror"].get("percent"),
        None
    );

    router
        .set_mirror_route(&ctx, &mirror_route("mirror-api", None, None))
        .await
        .unwrap();
    assert_eq!(
        rule_names(&http_route(&harness)),
        [Some("main".into()), None]
    );
}

#[tokio::test]
async fn remove_managed_routes_leaves_no_orphans() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(
        "shop",
        json!({"httpRoute": "web", "grpcRoute": "web-grpc", "tcpRoute": "web-tcp"}),
    );
    let before = http_route(&harness);
    router
        .set_header_route(&ctx, &header_route("a", Some("1")))
        .await
        .unwrap();
    router
        .set_header_route(&ctx, &header_route("b", Some("2")))
        .await
        .unwrap();
    router
        .set_mirror_route(&ctx, &mirror_route("m", Some(10), Some("/")))
        .await
        .unwrap();
    assert_eq!(
        http_route(&harness)["spec"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    router.remove_managed_routes(&ctx).await.unwrap();
    let after = http_route(&harness);
    assert_eq!(after["spec"], before["spec"]);
    assert_eq!(managed_annotation(&after), None);
    let grpc = route_of(&harness, "GRPCRoute", "web-grpc");
    assert_eq!(grpc["spec"]["rules"].as_array().unwrap().len(), 1);
    assert_eq!(managed_annotation(&grpc), None);

    // Idempotent, and a second call writes nothing.
    harness.recorder().clear();
    router.remove_managed_routes(&ctx).await.unwrap();
    assert!(
        harness
            .exchanges()
            .iter()
            .all(|e| e.request["verb"] == "get")
    );
}

#[tokio::test]
async fn grpc_and_tcp_route_weights() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(
        "shop",
        json!({"grpcRoutes": [{"name": "web-grpc"}], "tcpRoutes": [{"name": "web-tcp"}]}),
    );
    router
        .set_weight(&ctx, 35, &[destination("exp", 5)])
        .await
        .unwrap();
    for (kind, name, port) in [
        ("GRPCRoute", "web-grpc", 9090),
        ("TCPRoute", "web-tcp", 5432),
    ] {
        let route = route_of(&harness, kind, name);
        assert_eq!(weight(&route, 0, "web-canary"), Some(35), "{kind}");
        assert_eq!(weight(&route, 0, "web-stable"), Some(60), "{kind}");
        assert_eq!(
            route["spec"]["rules"][0]["backendRefs"][2],
            json!({"name": "exp", "port": port, "weight": 5})
        );
    }
    assert_eq!(
        router
            .verify_weight(&ctx, 35, &[destination("exp", 5)])
            .await
            .unwrap(),
        Verification::Verified
    );
    let patched: Vec<_> = harness
        .exchanges()
        .into_iter()
        .filter(|e| e.request["verb"] == "patch")
        .map(|e| {
            (
                e.request["target"]["gvk"]["version"].clone(),
                e.request["patchType"].clone(),
            )
        })
        .collect();
    assert_eq!(
        patched,
        [
            (json!("v1"), json!("merge")),
            (json!("v1alpha2"), json!("merge"))
        ]
    );
}

#[tokio::test]
async fn missing_routes_and_backends_are_named() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let missing = context("shop", json!({"httpRoute": "nope"}));
    match plugin_error(router.set_weight(&missing, 10, &[]).await) {
        PluginError::NotFound(message) => assert!(
            message.contains("HTTPRoute shop/nope not found"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    let unrelated = context("shop", json!({"httpRoute": "other"}));
    match plugin_error(router.set_weight(&unrelated, 10, &[]).await) {
        PluginError::NotFound(message) => assert_eq!(
            message,
            "HTTPRoute shop/other has no rule with a backendRef to the canary service \"web-canary\" or the stable service \"web-stable\""
        ),
        other => panic!("{other:?}"),
    }
    let mut no_stable = context("shop", http_config());
    no_stable.stable_service = "web-primary".into();
    match plugin_error(router.set_weight(&no_stable, 10, &[]).await) {
        PluginError::NotFound(message) => assert_eq!(
            message,
            "HTTPRoute shop/web rule 0 (\"main\") has no backendRef to the stable service \"web-primary\""
        ),
        other => panic!("{other:?}"),
    }
    match plugin_error(
        router
            .set_weight(&context("shop", json!({"unknown": 1})), 10, &[])
            .await,
    ) {
        PluginError::InvalidConfig(message) => {
            assert!(message.contains("lists no route"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A namespace outside the grants is refused by the host.
    let elsewhere = context(
        "shop",
        json!({"httpRoute": "web", "namespace": "kube-system"}),
    );
    assert!(matches!(
        router.set_weight(&elsewhere, 10, &[]).await,
        Err(CallError::AccessDenied { .. })
    ));
}

async fn conflicting_router(
    conflicts: u32,
) -> (
    Arc<ConflictingKube<InMemoryKube>>,
    sluice_runtime::TrafficRouter,
) {
    let store = InMemoryKube::new();
    store.load_yaml_file(&common::routes_fixture()).unwrap();
    let kube = Arc::new(ConflictingKube::new(Arc::new(store), conflicts));
    let router = common::load_router(kube.clone()).await;
    (kube, router)
}

#[tokio::test]
async fn conflicts_are_retried_by_re_reading() {
    let (kube, router) = conflicting_router(2).await;
    let ctx = context("shop", http_config());
    router.set_weight(&ctx, 25, &[]).await.unwrap();
    assert_eq!(
        kube.plugin_patches.load(Ordering::SeqCst),
        3,
        "two conflicts, then success"
    );
    let route = kube
        .inner
        .object(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            Some("shop"),
            "web",
        )
        .unwrap();
    assert_eq!(weight(&route, 0, "web-canary"), Some(25));
    // The injected writes count down 2, 1; the last one survives the plugin's update.
    assert_eq!(
        route["metadata"]["labels"]["sluice.test/concurrent-writes"],
        "1"
    );
    assert_eq!(
        router.verify_weight(&ctx, 25, &[]).await.unwrap(),
        Verification::Verified
    );
}

#[tokio::test]
async fn endless_conflicts_give_up_after_five_attempts() {
    let (kube, router) = conflicting_router(100).await;
    match plugin_error(
        router
            .set_weight(&context("shop", http_config()), 25, &[])
            .await,
    ) {
        PluginError::Conflict(message) => {
            assert!(
                message.starts_with("HTTPRoute shop/web kept changing during 5 attempts"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(kube.plugin_patches.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn set_weight_per_call_time() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(
        "shop",
        json!({"httpRoute": "web", "grpcRoute": "web-grpc", "tcpRoute": "web-tcp"}),
    );
    router.set_weight(&ctx, 1, &[]).await.unwrap();
    const CALLS: i32 = 100;
    let started = Instant::now();
    for call in 0..CALLS {
        router.set_weight(&ctx, call % 100, &[]).await.unwrap();
    }
    let per_call = started.elapsed() / CALLS.unsigned_abs();
    println!(
        "set-weight over 3 routes through the runtime (in-memory kube): {per_call:?} per call over {CALLS} calls"
    );
    assert_eq!(
        router.verify_weight(&ctx, 99, &[]).await.unwrap(),
        Verification::Verified
    );
}

#[tokio::test]
async fn header_routes_on_crds_without_rule_names_are_rolled_back() {
    let store = Arc::new(InMemoryKube::new());
    store.load_yaml_file(&common::routes_fixture()).unwrap();
    let router = common::load_router(Arc::new(common::NamePruningKube(store.clone()))).await;
    let ctx = context("shop", http_config());
    match plugin_error(
        router
            .set_header_route(&ctx, &header_route("h", Some("1")))
            .await,
    ) {
        PluginError::InvalidConfig(message) => {
            assert!(message.contains("predates Gateway API v1.2"), "{message}");
            assert!(message.ends_with("the change was rolled back"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let route = store
        .object(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            Some("shop"),
            "web",
        )
        .unwrap();
    assert_eq!(
        route["spec"]["rules"].as_array().unwrap().len(),
        2,
        "no orphan rule left"
    );
    assert_eq!(managed_annotation(&route), None);
}
