//! The echo plugins through the Rust API and through a YAML scenario.

mod common;

use common::fixture;
use serde_json::json;
use sluice_runtime::{AnalysisPhase, Capability, LogLevel, Verification};
use sluice_testkit::{PluginHarness, analysis_context, rollout_context};

#[tokio::test]
async fn echo_router_through_the_rust_api() {
    let harness = PluginHarness::traffic_router(fixture("echo-router"))
        .unwrap()
        .name("echo")
        .expect_type("echo")
        .grants_yaml("kube: [{kinds: [ConfigMap], verbs: [get, patch, delete]}]")
        .unwrap();
    let router = harness.load_router().await.unwrap();
    let ctx = rollout_context("shop", "web", r#"{"configMap": "routes"}"#);

    assert_eq!(
        router.verify_weight(&ctx, 30, &[]).await.unwrap(),
        Verification::NotVerified
    );
    router.set_weight(&ctx, 30, &[]).await.unwrap();
    assert_eq!(
        router.verify_weight(&ctx, 30, &[]).await.unwrap(),
        Verification::Verified
    );
    let map = harness
        .kube()
        .object("v1", "ConfigMap", Some("shop"), "routes")
        .unwrap();
    assert_eq!(map["data"]["weight"], "30");
    assert_eq!(map["data"]["canaryService"], "web-canary");

    let patch = harness
        .exchanges()
        .into_iter()
        .find(|e| e.request["verb"] == "patch")
        .expect("a patch exchange");
    assert_eq!(patch.capability, Capability::Kube);
    assert_eq!(patch.method, "set-weight");
    assert_eq!(patch.request["patchType"], "apply");
    assert_eq!(patch.response["ok"]["data"]["weight"], "30");

    let logs = harness.logs();
    assert!(
        logs.iter()
            .any(|l| l.level == LogLevel::Info && l.message == "set-weight 30 for shop/web"),
        "{logs:?}"
    );
    assert!(logs.iter().any(
        |l| l.message == "stdout works too" && l.fields == [("stream".into(), "stdout".into())]
    ));

    router.remove_managed_routes(&ctx).await.unwrap();
    assert!(
        harness
            .kube()
            .object("v1", "ConfigMap", Some("shop"), "routes")
            .is_none()
    );
    assert_eq!(harness.metrics().calls("echo", "set-weight"), 1);
}

#[tokio::test]
async fn echo_provider_fetches_from_scripted_http() {
    let harness = PluginHarness::metric_provider(fixture("echo-provider"))
        .unwrap()
        .grants_yaml("http: ['http://prometheus.monitoring:9090']")
        .unwrap();
    harness.http().respond(
        "GET",
        "http://prometheus.monitoring:9090/api/v1/query?query=up",
        200,
        "[0.99]",
    );
    let provider = harness.load_provider().await.unwrap();
    let ctx = analysis_context(
        "shop",
        "web-1",
        "success",
        r#"{"url": "http://prometheus.monitoring:9090/api/v1/query?query=up"}"#,
    );
    let measurement = provider.run(&ctx).await.unwrap();
    assert_eq!(measurement.phase, AnalysisPhase::Successful);
    assert_eq!(measurement.value.as_deref(), Some("[0.99]"));
    let http = harness
        .exchanges()
        .into_iter()
        .find(|e| e.capability == Capability::Http)
        .unwrap();
    assert_eq!(
        http.request["url"],
        "http://prometheus.monitoring:9090/api/v1/query?query=up"
    );
    assert_eq!(http.response["ok"]["status"], json!(200));

    let running = provider
        .run(&analysis_context(
            "shop",
            "web-1",
            "m",
            r#"{"async": true, "value": "1"}"#,
        ))
        .await
        .unwrap();
    assert_eq!(running.phase, AnalysisPhase::Running);
    let done = provider
        .resume(
            &analysis_context("shop", "web-1", "m", r#"{"value": "1"}"#),
            &running,
        )
        .await
        .unwrap();
    assert_eq!(
        (done.phase, done.value.as_deref()),
        (AnalysisPhase::Successful, Some("1"))
    );
    assert_eq!(
        provider.get_metadata(&ctx).await.unwrap(),
        vec![("metric".to_owned(), "success".to_owned())]
    );
}

#[test]
fn echo_router_through_a_yaml_scenario() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("echo-router"), dir.path().join("echo_router.wasm")).unwrap();
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/echo-router.yaml"
    );
    std::fs::copy(scenario, dir.path().join("echo-router.yaml")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/objects.yaml"),
        dir.path().join("objects.yaml"),
    )
    .unwrap();
    let report = sluice_testkit::scenario::run_file(dir.path().join("echo-router.yaml")).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.calls.len(), 6);

    // A wrong expectation is reported, not panicked on.
    let text = std::fs::read_to_string(dir.path().join("echo-router.yaml")).unwrap();
    std::fs::write(
        dir.path().join("wrong.yaml"),
        text.replace("weight: \"30\"", "weight: \"31\""),
    )
    .unwrap();
    let report = sluice_testkit::scenario::run_file(dir.path().join("wrong.yaml")).unwrap();
    assert!(!report.passed());
    assert!(report.to_string().contains("does not contain"), "{report}");
}
