//! The YAML scenario of the Gateway API router through `sluice_testkit::scenario::run_file`.

mod common;

#[test]
fn gatewayapi_yaml_scenario() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::plugin_wasm(), dir.path().join("gatewayapi.wasm")).unwrap();
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    for file in ["gatewayapi.yaml", "routes.yaml"] {
        std::fs::copy(scenarios.join(file), dir.path().join(file)).unwrap();
    }
    let report = sluice_testkit::scenario::run_file(dir.path().join("gatewayapi.yaml")).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.calls.len(), 11);
}
