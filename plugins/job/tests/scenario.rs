//! The YAML scenario of the Job provider (`tests/scenarios/job.yaml`).

use std::path::Path;

#[test]
fn the_yaml_scenario_passes() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let wasm = sluice_plugin_build::build_plugin(root, "sluice-plugin-job")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(wasm, dir.path().join("sluice_plugin_job.wasm")).unwrap();
    let scenario = dir.path().join("job.yaml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/job.yaml"),
        &scenario,
    )
    .unwrap();
    let report = sluice_testkit::scenario::run_file(&scenario).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.calls.len(), 6);
}
