//! The YAML scenario of the Prometheus provider (`tests/scenarios/prometheus.yaml`).

use std::path::Path;

#[test]
fn the_yaml_scenario_passes() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let wasm = sluice_plugin_build::build_plugin(root, "sluice-plugin-prometheus")
        .unwrap_or_else(|e| panic!("{e}"));
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scenarios/prometheus.yaml"
    );
    let report = sluice_testkit::scenario::run_file_with_plugin(scenario, wasm).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.calls.len(), 5);
}
