//! The YAML scenario of the approval step plugin (`tests/scenarios/approval.yaml`), run as
//! `sluice plugin test` runs it.

use std::path::Path;

#[test]
fn the_yaml_scenario_passes() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let wasm = sluice_plugin_build::build_plugin(root, "sluice-plugin-approval")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(wasm, dir.path().join("sluice_plugin_approval.wasm")).unwrap();
    let scenario = dir.path().join("approval.yaml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/approval.yaml"),
        &scenario,
    )
    .unwrap();
    let report = sluice_testkit::scenario::run_file(&scenario).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.calls.len(), 6);
}
