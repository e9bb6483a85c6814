//! The NGINX router's `.wasm` on the testkit's mock host: the canary Ingresses it creates and
//! patches must be the ones Argo Rollouts' in-tree nginx router produces for the same Rollout.

mod common;

use common::{context, fixture, harness};
use serde_json::{Value, json};
use sluice_runtime::{
    CallError, HeaderRoute, MirrorRoute, PluginError, Verification, WeightDestination,
};
use sluice_testkit::{Capability, PluginHarness};

fn ingress(harness: &PluginHarness, name: &str) -> Value {
    harness
        .kube()
        .object("networking.k8s.io/v1", "Ingress", Some("shop"), name)
        .unwrap_or_else(|| panic!("Ingress {name} missing"))
}

/// The parts of an Ingress the router is responsible for.
fn managed_view(ingress: &Value) -> Value {
    json!({
        "name": ingress["metadata"]["name"],
        "annotations": ingress["metadata"]["annotations"],
        "ownerReferences": ingress["metadata"]["ownerReferences"],
        "spec": ingress["spec"],
    })
}

/// `web-web-canary.yaml` (Argo's canary for weight 5) with the weight replaced.
fn expected_web_canary(weight: i32) -> Value {
    let text = std::fs::read_to_string(fixture("web-web-canary.yaml")).unwrap();
    let mut expected: Value = serde_yaml::from_str(&text).unwrap();
    expected["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] =
        Value::String(weight.to_string());
    managed_view(&expected)
}

fn experiment(service: &str, weight: i32) -> WeightDestination {
    WeightDestination {
        service_name: service.into(),
        pod_template_hash: "abc123".into(),
        weight,
    }
}

fn writes(harness: &PluginHarness) -> Vec<Value> {
    harness
        .exchanges()
        .into_iter()
        .filter(|e| e.capability == Capability::Kube && e.request["verb"] != "get")
        .map(|e| e.request)
        .collect()
}

#[tokio::test]
async fn weights_produce_argos_canary_ingress_with_and_without_additional_destinations() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&json!({"stableIngress": "web"}), &json!({}));
    for weight in [0, 5, 50, 100] {
        router.set_weight(&ctx, weight, &[]).await.unwrap();
        assert_eq!(
            managed_view(&ingress(&harness, "web-web-canary")),
            expected_web_canary(weight)
        );
        // Experiment destinations do not change what NGINX can express.
        let with_experiment = [experiment("web-exp", 10)];
        router
            .set_weight(&ctx, weight, &with_experiment)
            .await
            .unwrap();
        assert_eq!(
            managed_view(&ingress(&harness, "web-web-canary")),
            expected_web_canary(weight)
        );
    }
    let creates: Vec<Value> = writes(&harness)
        .into_iter()
        .filter(|w| w["verb"] == "create")
        .collect();
    assert_eq!(
        creates.len(),
        1,
        "the canary Ingress is created once, then patched"
    );
}

#[tokio::test]
async fn updates_are_merge_patches_that_keep_foreign_annotations() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&json!({"stableIngress": "web"}), &json!({}));
    router.set_weight(&ctx, 5, &[]).await.unwrap();

    let mut touched = ingress(&harness, "web-web-canary");
    touched["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = json!("shop:web");
    touched["metadata"]["labels"] = json!({"team": "web"});
    harness.kube().insert(touched).unwrap();
    harness.recorder().clear();

    router.set_weight(&ctx, 50, &[]).await.unwrap();
    let after = ingress(&harness, "web-web-canary");
    assert_eq!(
        after["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "shop:web"
    );
    assert_eq!(after["metadata"]["labels"], json!({"team": "web"}));
    assert_eq!(
        after["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"],
        "50"
    );
    assert_eq!(
        writes(&harness),
        vec![json!({
            "verb": "patch",
            "target": {"gvk": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"}, "namespace": "shop", "name": "web-web-canary"},
            "patchType": "merge",
            "patch": {"type": "merge", "body": {"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "50"}}}}
        })]
    );

    harness.recorder().clear();
    router.set_weight(&ctx, 50, &[]).await.unwrap();
    assert_eq!(
        writes(&harness),
        Vec::<Value>::new(),
        "an unchanged weight writes nothing"
    );
}

#[tokio::test]
async fn every_stable_ingress_gets_its_own_canary_and_stays_untouched() {
    let harness = harness();
    let before: Vec<Value> = ["web", "web-internal", "unrelated"]
        .iter()
        .map(|name| ingress(&harness, name))
        .collect();
    let router = harness.load_router().await.unwrap();
    let ctx = context(
        &json!({"stableIngress": "ignored", "stableIngresses": ["web", "web-internal"]}),
        &json!({}),
    );
    router.set_weight(&ctx, 30, &[]).await.unwrap();
    router.set_weight(&ctx, 60, &[]).await.unwrap();

    assert_eq!(
        managed_view(&ingress(&harness, "web-web-canary")),
        expected_web_canary(60)
    );
    let internal = ingress(&harness, "web-web-internal-canary");
    assert_eq!(
        managed_view(&internal),
        json!({
            "name": "web-web-internal-canary",
            "annotations": {"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "60"},
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "shop-web-uid", "controller": true, "blockOwnerDeletion": true}],
            "spec": {"ingressClassName": "nginx-internal", "rules": [{"host": "web.internal", "http": {"paths": [
                {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "web-canary", "port": {"name": "http"}}}}
            ]}}]}
        })
    );
    let after: Vec<Value> = ["web", "web-internal", "unrelated"]
        .iter()
        .map(|name| ingress(&harness, name))
        .collect();
    assert_eq!(
        before, after,
        "stable Ingresses keep their content and resourceVersion"
    );
    for write in writes(&harness) {
        let name = write["target"]["name"]
            .as_str()
            .or(write["object"]["metadata"]["name"].as_str());
        assert!(
            name.is_some_and(|n| n.ends_with("-canary")),
            "wrote a non-canary object: {write}"
        );
    }
}

#[tokio::test]
async fn annotation_prefix_extra_annotations_and_max_traffic_weight() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let config = json!({
        "stableIngress": "web",
        "annotationPrefix": "custom.nginx.org",
        "additionalIngressAnnotations": {"canary-by-header": "X-Canary", "custom.nginx.org/canary-by-cookie": "beta"},
        "canaryIngressAnnotations": {"team": "web", "custom.nginx.org/canary-by-header": "X-Beta"}
    });
    let rollout = json!({"spec": {"strategy": {"canary": {"trafficRouting": {"maxTrafficWeight": 1000, "nginx": config}}}}});
    router
        .set_weight(&context(&config, &rollout), 250, &[])
        .await
        .unwrap();
    assert_eq!(
        ingress(&harness, "web-web-canary")["metadata"]["annotations"],
        json!({
            "kubernetes.io/ingress.class": "nginx",
            "custom.nginx.org/canary": "true",
            "custom.nginx.org/canary-weight": "250",
            "custom.nginx.org/canary-weight-total": "1000",
            "custom.nginx.org/canary-by-header": "X-Beta",
            "custom.nginx.org/canary-by-cookie": "beta",
            "team": "web"
        })
    );
}

fn plugin_error(result: Result<(), CallError>) -> PluginError {
    match result {
        Err(CallError::Plugin { error, .. }) => error,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_stable_ingress_is_a_clear_not_found_error() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&json!({"stableIngress": "nope"}), &json!({}));
    let error = plugin_error(router.set_weight(&ctx, 10, &[]).await);
    assert_eq!(
        error,
        PluginError::NotFound("stable Ingress `nope` not found in namespace shop".into())
    );
    assert!(writes(&harness).is_empty());
}

#[tokio::test]
async fn a_stable_ingress_without_the_stable_service_is_an_invalid_config() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&json!({"stableIngress": "unrelated"}), &json!({}));
    let error = plugin_error(router.set_weight(&ctx, 10, &[]).await);
    assert_eq!(
        error,
        PluginError::InvalidConfig(
            "ingress `unrelated` has no rules using service web-stable backend".into()
        )
    );
    let no_ingress = context(&json!({}), &json!({}));
    assert!(matches!(
        plugin_error(router.set_weight(&no_ingress, 10, &[]).await),
        PluginError::InvalidConfig(_)
    ));
}

#[tokio::test]
async fn a_canary_ingress_owned_by_someone_else_is_left_alone() {
    let harness = harness();
    harness
        .kube()
        .load_yaml(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web-web-canary\n  namespace: shop\n  ownerReferences: [{apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: other, uid: other-uid, controller: true}]\n",
        )
        .unwrap();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&json!({"stableIngress": "web"}), &json!({}));
    let error = plugin_error(router.set_weight(&ctx, 10, &[]).await);
    assert_eq!(
        error,
        PluginError::InvalidConfig(
            "canary ingress `web-web-canary` controlled by different object".into()
        )
    );
    assert!(writes(&harness).is_empty());
}

#[tokio::test]
async fn hash_header_mirror_and_managed_routes_are_no_ops_and_weights_unverifiable() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&json!({"stableIngress": "web"}), &json!({}));
    router
        .update_hash(&ctx, "canary1", "stable1", &[])
        .await
        .unwrap();
    let header = HeaderRoute {
        name: "by-header".into(),
        matches: vec![],
    };
    router.set_header_route(&ctx, &header).await.unwrap();
    let mirror = MirrorRoute {
        name: "mirror".into(),
        matches: vec![],
        percentage: Some(10),
    };
    router.set_mirror_route(&ctx, &mirror).await.unwrap();
    router.remove_managed_routes(&ctx).await.unwrap();
    assert_eq!(
        router.verify_weight(&ctx, 10, &[]).await.unwrap(),
        Verification::NotImplemented
    );
    assert!(
        harness.exchanges().is_empty(),
        "no host calls: {:?}",
        harness.exchanges()
    );
}

#[tokio::test]
async fn set_weight_call_time_through_the_runtime() {
    let harness = harness();
    let router = harness.load_router().await.unwrap();
    let ctx = context(&json!({"stableIngress": "web"}), &json!({}));
    let mut timings = Vec::new();
    for round in 0..200 {
        let weight = if round % 2 == 0 { 10 } else { 20 };
        let started = std::time::Instant::now();
        router.set_weight(&ctx, weight, &[]).await.unwrap();
        timings.push(started.elapsed());
    }
    timings.sort();
    eprintln!(
        "nginx set-weight (in-memory kube, 2 gets + patch): p50 {:?}, p99 {:?}",
        timings[100], timings[197]
    );
    assert_eq!(
        managed_view(&ingress(&harness, "web-web-canary")),
        expected_web_canary(20)
    );
}

#[test]
fn yaml_scenario() {
    let dir = std::env::temp_dir().join(format!("sluice-nginx-scenario-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(common::plugin_wasm(), dir.join("sluice_plugin_nginx.wasm")).unwrap();
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios");
    std::fs::copy(format!("{scenarios}/nginx.yaml"), dir.join("nginx.yaml")).unwrap();
    std::fs::copy(fixture("ingresses.yaml"), dir.join("ingresses.yaml")).unwrap();
    let report = sluice_testkit::scenario::run_file(dir.join("nginx.yaml")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.calls.len(), 6, "{report}");
}
