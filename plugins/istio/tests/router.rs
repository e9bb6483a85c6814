//! The Istio router's `.wasm` on the testkit's mock host: VirtualServices and DestinationRules
//! must end up as Argo Rollouts' in-tree istio router leaves them for the same Rollout.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{context, fixture, harness};
use serde_json::{Value, json};
use sluice_runtime::{
    CallError, HeaderMatch, HeaderRoute, HostServices, MirrorRoute, Plugin, PluginError,
    RouteMatch, StringMatch, TrafficRouter, Verification, WeightDestination,
};
use sluice_testkit::{
    CONCURRENT_WRITE_LABEL, Capability, ConflictingKube, InMemoryKube, PluginHarness, shared_engine,
};

const V1BETA1: &str = "networking.istio.io/v1beta1";

fn object(harness: &PluginHarness, kind: &str, namespace: &str, name: &str) -> Value {
    harness
        .kube()
        .object(V1BETA1, kind, Some(namespace), name)
        .unwrap_or_else(|| panic!("{kind} {namespace}/{name} missing"))
}

/// `(host[/subset], weight)` of every destination of a route.
fn weights(route: &Value) -> Vec<(String, Option<i64>)> {
    route["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let host = d["destination"]["host"].as_str().unwrap().to_owned();
            let subset = d["destination"]["subset"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            (host + &subset, d["weight"].as_i64())
        })
        .collect()
}

fn pairs(expected: &[(&str, i64)]) -> Vec<(String, Option<i64>)> {
    expected
        .iter()
        .map(|(host, weight)| ((*host).to_owned(), Some(*weight)))
        .collect()
}

fn experiment(service: &str, hash: &str, weight: i32) -> WeightDestination {
    WeightDestination {
        service_name: service.into(),
        pod_template_hash: hash.into(),
        weight,
    }
}

fn plugin_error<T: std::fmt::Debug>(result: Result<T, CallError>) -> PluginError {
    match result {
        Err(CallError::Plugin { error, .. }) => error,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

fn patches(harness: &PluginHarness) -> Vec<Value> {
    harness
        .exchanges()
        .into_iter()
        .filter(|e| e.capability == Capability::Kube && e.request["verb"] == "patch")
        .map(|e| e.request)
        .collect()
}

fn by_host_config() -> Value {
    json!({"virtualService": {
        "name": "web",
        "routes": ["primary", "secondary"],
        "tlsRoutes": [{"port": 443, "sniHosts": ["web.example.com"]}],
        "tcpRoutes": [{"port": 3306}]
    }})
}

fn subset_config() -> Value {
    json!({
        "virtualService": {"name": "web-subsets"},
        "destinationRule": {"name": "web", "canarySubsetName": "canary", "stableSubsetName": "stable"}
    })
}

#[tokio::test]
async fn http_tls_and_tcp_weights_by_host() {
    let harness = harness();
    let original = object(&harness, "VirtualService", "shop", "web");
    let router = harness.load_router().await.unwrap();
    let ctx = context(&by_host_config(), &json!({}));
    for weight in [0, 5, 50, 100] {
        router.set_weight(&ctx, weight, &[]).await.unwrap();
        let vs = object(&harness, "VirtualService", "shop", "web");
        let (canary, stable) = (i64::from(weight), i64::from(100 - weight));
        let spec = &vs["spec"];
        assert_eq!(
            weights(&spec["http"][0]),
            pairs(&[
                ("web-stable.shop.svc.cluster.local", stable),
                ("web-canary", canary)
            ])
        );
        assert_eq!(
            weights(&spec["http"][1]),
            pairs(&[("web-stable", stable), ("web-canary", canary)])
        );
        assert_eq!(
            weights(&spec["tls"][0]),
            pairs(&[("web-stable", stable), ("web-canary", canary)])
        );
        assert_eq!(
            weights(&spec["tcp"][0]),
            pairs(&[("web-stable", stable), ("web-canary", canary)])
        );
        // Routes not listed and every other field are kept verbatim.
        assert_eq!(spec["http"][2], original["spec"]["http"][2]);
        assert_eq!(spec["tls"][1], original["spec"]["tls"][1]);
        assert_eq!(
            spec["http"][0]["retries"],
            original["spec"]["http"][0]["retries"]
        );
        assert_eq!(
            spec["http"][0]["route"][0]["destination"]["port"],
            json!({"number": 8080})
        );
        assert_eq!(
            (&spec["hosts"], &spec["gateways"]),
            (&original["spec"]["hosts"], &original["spec"]["gateways"])
        );
    }

    // With experiment destinations: stable = 100 - w - Σ experiments; experiments appended.
    let experiments = [
        experiment("web-exp-a", "a1", 10),
        experiment("web-exp-b", "b1", 5),
    ];
    router.set_weight(&ctx, 50, &experiments).await.unwrap();
    let vs = object(&harness, "VirtualService", "shop", "web");
    let expected = pairs(&[
        ("web-stable", 35),
        ("web-canary", 50),
        ("web-exp-a", 10),
        ("web-exp-b", 5),
    ]);
    assert_eq!(weights(&vs["spec"]["http"][1]), expected);
    assert_eq!(weights(&vs["spec"]["tcp"][0])[2..], expected[2..]);
    router.set_weight(&ctx, 5, &[]).await.unwrap();
    let vs = object(&harness, "VirtualService", "shop", "web");
    assert_eq!(
        weights(&vs["spec"]["http"][1]),
        pairs(&[("web-stable", 95), ("web-canary", 5)]),
        "experiments removed"
    );

    harness.recorder().clear();
    router.set_weight(&ctx, 5, &[]).await.unwrap();
    assert!(
        patches(&harness).is_empty(),
        "an unchanged weight writes nothing"
    );
}

#[tokio::test]
async fn weights_by_subset_with_and_without_experiments() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&subset_config(), &json!({}));
    for weight in [0, 5, 50, 100] {
        router.set_weight(&ctx, weight, &[]).await.unwrap();
        let vs = object(&harness, "VirtualService", "shop", "web-subsets");
        assert_eq!(
            weights(&vs["spec"]["http"][0]),
            pairs(&[
                ("web/stable", i64::from(100 - weight)),
                ("web/canary", i64::from(weight))
            ])
        );
        router
            .set_weight(&ctx, weight, &[experiment("web-exp", "e1", 10)])
            .await
            .unwrap();
        let vs = object(&harness, "VirtualService", "shop", "web-subsets");
        assert_eq!(
            weights(&vs["spec"]["http"][0]),
            pairs(&[
                ("web/stable", i64::from(90 - weight).max(0)),
                ("web/canary", i64::from(weight)),
                ("web-exp", 10)
            ])
        );
    }
}

#[tokio::test]
async fn namespaced_references_and_several_virtual_services() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let config = json!({"virtualServices": [
        {"name": "web", "routes": ["secondary"], "tlsRoutes": [{"port": 443, "sniHosts": ["web.example.com"]}], "tcpRoutes": [{"port": 3306}]},
        {"name": "mesh/web", "routes": ["primary"]}
    ]});
    router
        .set_weight(&context(&config, &json!({})), 30, &[])
        .await
        .unwrap();
    let local = object(&harness, "VirtualService", "shop", "web");
    let mesh = object(&harness, "VirtualService", "mesh", "web");
    assert_eq!(
        weights(&local["spec"]["http"][1]),
        pairs(&[("web-stable", 70), ("web-canary", 30)])
    );
    assert_eq!(
        weights(&local["spec"]["http"][0]),
        pairs(&[
            ("web-stable.shop.svc.cluster.local", 100),
            ("web-canary", 0)
        ])
    );
    assert_eq!(
        weights(&mesh["spec"]["http"][0]),
        pairs(&[
            ("web-stable.shop.svc.cluster.local", 70),
            ("web-canary.shop.svc.cluster.local", 30)
        ])
    );

    // A namespace outside the grant is refused by the host.
    let elsewhere = json!({"virtualService": {"name": "other/web"}});
    let error = router
        .set_weight(&context(&elsewhere, &json!({})), 30, &[])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "access_denied", "{error}");
}

#[tokio::test]
async fn update_hash_pins_destination_rule_subsets() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&subset_config(), &json!({}));
    router
        .update_hash(&ctx, "c1", "s1", &[experiment("web-exp", "e1", 10)])
        .await
        .unwrap();
    let rule = object(&harness, "DestinationRule", "shop", "web");
    assert_eq!(
        rule["metadata"]["annotations"],
        json!({"team": "web", "argo-rollouts.argoproj.io/managed-by-rollouts": "web"})
    );
    assert_eq!(
        rule["spec"],
        json!({
            "host": "web",
            "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
            "subsets": [
                {"name": "stable", "labels": {"app": "web", "rollouts-pod-template-hash": "s1"}, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}},
                {"name": "canary", "labels": {"app": "web", "rollouts-pod-template-hash": "c1"}},
                {"name": "web-exp", "labels": {"rollouts-pod-template-hash": "e1"}}
            ]
        })
    );
    router.update_hash(&ctx, "c2", "c1", &[]).await.unwrap();
    let rule = object(&harness, "DestinationRule", "shop", "web");
    let hashes: Vec<(&str, &str)> = rule["spec"]["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["labels"]["rollouts-pod-template-hash"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(hashes, [("stable", "c1"), ("canary", "c2")]);

    harness.recorder().clear();
    router.update_hash(&ctx, "c2", "c1", &[]).await.unwrap();
    assert!(
        patches(&harness).is_empty(),
        "unchanged hashes write nothing"
    );

    // Without a destinationRule, update-hash has nothing to do.
    router
        .update_hash(&context(&by_host_config(), &json!({})), "c3", "c2", &[])
        .await
        .unwrap();
    assert!(patches(&harness).is_empty());
}

fn header_route(name: &str, value: StringMatch) -> HeaderRoute {
    HeaderRoute {
        name: name.into(),
        matches: vec![HeaderMatch {
            header_name: "x-canary".into(),
            value,
        }],
    }
}

fn names(vs: &Value) -> Vec<String> {
    vs["spec"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn header_and_mirror_routes_are_managed_first_in_order() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let config = json!({"virtualService": {
        "name": "web",
        "routes": ["primary"],
        "tlsRoutes": [{"port": 443, "sniHosts": ["web.example.com"]}]
    }});
    let rollout = json!({"spec": {"strategy": {"canary": {"trafficRouting": {
        "managedRoutes": [{"name": "mirror"}, {"name": "by-header"}],
        "istio": config
    }}}}});
    let ctx = context(&config, &rollout);
    router.set_weight(&ctx, 20, &[]).await.unwrap();

    router
        .set_header_route(
            &ctx,
            &header_route("by-header", StringMatch::Prefix("yes".into())),
        )
        .await
        .unwrap();
    let vs = object(&harness, "VirtualService", "shop", "web");
    assert_eq!(names(&vs), ["by-header", "primary", "secondary", "docs"]);
    assert_eq!(
        vs["spec"]["http"][0],
        json!({"name": "by-header", "match": [{"headers": {"x-canary": {"prefix": "yes"}}}],
               "route": [{"destination": {"host": "web-canary", "port": {"number": 8080}}, "weight": 100}]})
    );
    // Replacing keeps one route of that name.
    router
        .set_header_route(
            &ctx,
            &header_route("by-header", StringMatch::Regex("y.*".into())),
        )
        .await
        .unwrap();

    let mirror = MirrorRoute {
        name: "mirror".into(),
        matches: vec![RouteMatch {
            method: Some(StringMatch::Exact("GET".into())),
            path: Some(StringMatch::Prefix("/api".into())),
            headers: vec![],
        }],
        percentage: Some(40),
    };
    router.set_mirror_route(&ctx, &mirror).await.unwrap();
    let vs = object(&harness, "VirtualService", "shop", "web");
    assert_eq!(
        names(&vs),
        ["mirror", "by-header", "primary", "secondary", "docs"]
    );
    assert_eq!(
        vs["spec"]["http"][1]["match"],
        json!([{"headers": {"x-canary": {"regex": "y.*"}}}])
    );
    assert_eq!(
        vs["spec"]["http"][0],
        json!({
            "name": "mirror",
            "match": [{"method": {"exact": "GET"}, "uri": {"prefix": "/api"}}],
            "route": vs["spec"]["http"][2]["route"],
            "mirror": {"host": "web-canary", "port": {"number": 8080}},
            "mirrorPercentage": {"value": 40}
        })
    );

    // Later weights reach the mirror route too.
    router.set_weight(&ctx, 60, &[]).await.unwrap();
    let vs = object(&harness, "VirtualService", "shop", "web");
    assert_eq!(
        weights(&vs["spec"]["http"][0]),
        pairs(&[
            ("web-stable.shop.svc.cluster.local", 40),
            ("web-canary", 60)
        ])
    );

    // An empty match removes one route; remove-managed-routes removes the rest.
    router
        .set_header_route(
            &ctx,
            &HeaderRoute {
                name: "by-header".into(),
                matches: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        names(&object(&harness, "VirtualService", "shop", "web")),
        ["mirror", "primary", "secondary", "docs"]
    );
    router.remove_managed_routes(&ctx).await.unwrap();
    assert_eq!(
        names(&object(&harness, "VirtualService", "shop", "web")),
        ["primary", "secondary", "docs"]
    );
    assert_eq!(
        router.verify_weight(&ctx, 60, &[]).await.unwrap(),
        Verification::NotImplemented
    );
}

#[tokio::test]
async fn header_routes_use_the_destination_rule_host_and_canary_subset() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let rollout = json!({"spec": {"strategy": {"canary": {"trafficRouting": {"managedRoutes": [{"name": "by-header"}]}}}}});
    let ctx = context(&subset_config(), &rollout);
    router
        .set_header_route(
            &ctx,
            &header_route("by-header", StringMatch::Exact("1".into())),
        )
        .await
        .unwrap();
    let vs = object(&harness, "VirtualService", "shop", "web-subsets");
    assert_eq!(
        vs["spec"]["http"][0]["route"],
        json!([{"destination": {"host": "web", "subset": "canary"}, "weight": 100}])
    );
    router.set_weight(&ctx, 10, &[]).await.unwrap();
    let vs = object(&harness, "VirtualService", "shop", "web-subsets");
    assert_eq!(
        weights(&vs["spec"]["http"][1]),
        pairs(&[("web/stable", 90), ("web/canary", 10)])
    );
    assert_eq!(
        weights(&vs["spec"]["http"][0]),
        pairs(&[("web/canary", 100)])
    );
}

#[tokio::test]
async fn missing_objects_and_bad_routes_are_clear_errors() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let missing = context(&json!({"virtualService": {"name": "absent"}}), &json!({}));
    assert_eq!(
        plugin_error(router.set_weight(&missing, 10, &[]).await),
        PluginError::NotFound("VirtualService `shop/absent` not found".into())
    );
    let no_rule = context(
        &json!({"virtualService": {"name": "web-subsets"}, "destinationRule": {"name": "gone", "canarySubsetName": "canary", "stableSubsetName": "stable"}}),
        &json!({}),
    );
    assert_eq!(
        plugin_error(router.update_hash(&no_rule, "c", "s", &[]).await),
        PluginError::NotFound("DestinationRule `shop/gone` not found".into())
    );
    let bad_route = context(
        &json!({"virtualService": {"name": "web", "routes": ["nope"]}}),
        &json!({}),
    );
    assert_eq!(
        plugin_error(router.set_weight(&bad_route, 10, &[]).await),
        PluginError::InvalidConfig(
            "HTTP Route 'nope' is not found in the defined Virtual Service.".into()
        )
    );
    let ambiguous = context(&json!({"virtualService": {"name": "web"}}), &json!({}));
    assert!(matches!(
        plugin_error(router.set_weight(&ambiguous, 10, &[]).await),
        PluginError::InvalidConfig(_)
    ));
    assert!(patches(&harness).is_empty());
}

async fn router_with_concurrent_writer(conflicts: u32) -> (TrafficRouter, Arc<InMemoryKube>) {
    let store = Arc::new(InMemoryKube::new());
    store.load_yaml_file(&fixture("istio.yaml")).unwrap();
    let engine = shared_engine().unwrap();
    let component = engine
        .compile_component(std::fs::read(common::plugin_wasm()).unwrap().into())
        .await
        .unwrap();
    let spec = sluice_runtime::PluginSpec {
        name: "istio".into(),
        kind: sluice_runtime::PluginKind::TrafficRouter,
        grants: serde_yaml::from_str::<sluice_runtime::GrantsSpec>(common::GRANTS)
            .unwrap()
            .validate()
            .unwrap(),
        limits: sluice_runtime::Limits::default(),
        args: Vec::new(),
        expected_type: Some("Istio".into()),
    };
    let services = HostServices {
        kube: Arc::new(ConflictingKube::new(store.clone(), conflicts)),
        http: Arc::new(sluice_testkit::ScriptedHttp::new()),
        observer: None,
    };
    let plugin = engine
        .load_plugin(
            spec,
            &component,
            services,
            sluice_runtime::PluginMetrics::unregistered(),
        )
        .await
        .unwrap();
    let Plugin::TrafficRouter(router) = plugin else {
        panic!("not a router")
    };
    (router, store)
}

#[tokio::test]
async fn conflicts_are_retried_from_a_fresh_read() {
    let (router, store) = router_with_concurrent_writer(2).await;
    router
        .set_weight(&context(&by_host_config(), &json!({})), 40, &[])
        .await
        .unwrap();
    let vs = store
        .object(V1BETA1, "VirtualService", Some("shop"), "web")
        .unwrap();
    assert_eq!(
        weights(&vs["spec"]["http"][0]),
        pairs(&[
            ("web-stable.shop.svc.cluster.local", 60),
            ("web-canary", 40)
        ])
    );
    assert_eq!(
        vs["metadata"]["labels"][CONCURRENT_WRITE_LABEL], "1",
        "the other writer's change is kept"
    );

    let (stubborn, _) = router_with_concurrent_writer(u32::MAX).await;
    let error = plugin_error(
        stubborn
            .set_weight(&context(&by_host_config(), &json!({})), 40, &[])
            .await,
    );
    assert!(
        matches!(&error, PluginError::Conflict(m) if m.contains("5 attempts")),
        "{error:?}"
    );
}

#[tokio::test]
async fn set_weight_call_time_through_the_runtime() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&by_host_config(), &json!({}));
    let mut timings = Vec::new();
    for round in 0..200 {
        let weight = if round % 2 == 0 { 10 } else { 20 };
        let started = Instant::now();
        router.set_weight(&ctx, weight, &[]).await.unwrap();
        timings.push(started.elapsed());
    }
    timings.sort();
    eprintln!(
        "istio set-weight (in-memory kube, get + patch): p50 {:?}, p99 {:?}",
        timings[100], timings[197]
    );
    let vs = object(&harness, "VirtualService", "shop", "web");
    assert_eq!(
        weights(&vs["spec"]["http"][0]),
        pairs(&[
            ("web-stable.shop.svc.cluster.local", 80),
            ("web-canary", 20)
        ])
    );
}

#[test]
fn yaml_scenario() {
    let dir = std::env::temp_dir().join(format!("sluice-istio-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(common::plugin_wasm(), dir.join("sluice_plugin_istio.wasm")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/istio.yaml"),
        dir.join("istio-scenario.yaml"),
    )
    .unwrap();
    std::fs::copy(fixture("istio.yaml"), dir.join("istio.yaml")).unwrap();
    let report = sluice_testkit::scenario::run_file(dir.join("istio-scenario.yaml")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.calls.len(), 7, "{report}");
}
