//! The YAML scenario of the Gateway API router through `sluice_testkit::scenario`.

mod common;

#[test]
fn gatewayapi_yaml_scenario() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/gatewayapi.yaml"
    );
    let report =
        sluice_testkit::scenario::run_file_with_plugin(scenario, common::plugin_wasm()).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.calls.len(), 11);
}
