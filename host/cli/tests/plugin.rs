//! `sluice plugin list|inspect|test` with the built-in plugins and a fixture component.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("sluice runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

fn echo_router() -> PathBuf {
    sluice_plugin_build::build_plugin(&workspace_root(), "sluice-fixture-echo-router")
        .expect("the echo router fixture builds")
}

#[test]
fn list_shows_every_builtin_with_its_location_and_grants() {
    let output = sluice(&["plugin", "list"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for (name, location) in [
        ("argoproj-labs/gatewayAPI", "builtin:gatewayapi"),
        ("nginx", "builtin:nginx"),
        ("istio", "builtin:istio"),
        ("prometheus", "builtin:prometheus"),
        ("web", "builtin:web"),
        ("job", "builtin:job"),
    ] {
        assert!(
            text.contains(&format!("{name}\n"))
                && text.contains(&format!("location: {location}\n")),
            "{name} missing from:\n{text}"
        );
    }
    assert!(
        text.contains("kube get,create,delete,list batch/Job in $rolloutNamespace"),
        "{text}"
    );
}

#[test]
fn list_reads_a_plugin_config_map_and_reports_invalid_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("argo-rollouts-config.yaml");
    std::fs::write(
        &config,
        r#"apiVersion: v1
kind: ConfigMap
metadata: {name: argo-rollouts-config}
data:
  trafficRouterPlugins: |
    - name: acme/router
      location: https://plugins.example.com/router.wasm
      sha256: 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
      grants: {kube: [{kinds: [ConfigMap], verbs: [get]}]}
    - name: acme/unpinned
      location: https://plugins.example.com/unpinned.wasm
"#,
    )
    .expect("write config");
    let output = sluice(&[
        "plugin",
        "list",
        "--config",
        config.to_str().expect("utf-8 path"),
    ]);
    let text = stdout(&output);
    assert!(text.contains("acme/router\n  kind:     traffic-router\n  location: https://plugins.example.com/router.wasm\n"), "{text}");
    assert!(
        text.contains("sha256:   0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        "{text}"
    );
    assert!(
        text.contains("kube get core/ConfigMap in $rolloutNamespace"),
        "{text}"
    );
    assert!(
        text.contains("acme/unpinned\n  kind:     traffic-router\n  INVALID:"),
        "{text}"
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn inspect_tells_which_world_a_component_implements() {
    let wasm = echo_router();
    let output = sluice(&["plugin", "inspect", wasm.to_str().expect("utf-8 path")]);
    let text = stdout(&output);
    assert!(
        text.contains("traffic-router: loads, plugin-type \"echo\""),
        "{text}"
    );
    assert!(text.contains("metric-provider: does not load: "), "{text}");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn inspect_rejects_a_file_that_is_not_a_component() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("not-a-plugin.wasm");
    std::fs::write(&file, b"\0asm garbage").expect("write");
    let output = sluice(&["plugin", "inspect", file.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
}

fn scenario_dir(expect_weight: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, dir.path().join(to)).expect("copy");
    };
    copy(&echo_router(), "echo_router.wasm");
    let scenarios = workspace_root().join("host/testkit/tests/scenarios");
    copy(&scenarios.join("objects.yaml"), "objects.yaml");
    let scenario = std::fs::read_to_string(scenarios.join("echo-router.yaml")).expect("scenario");
    let scenario = scenario.replace(
        "data: {weight: \"30\"",
        &format!("data: {{weight: \"{expect_weight}\""),
    );
    std::fs::write(dir.path().join("echo-router.yaml"), scenario).expect("write scenario");
    dir
}

#[test]
fn test_runs_a_scenario_and_exits_by_its_outcome() {
    let passing = scenario_dir("30");
    let output = sluice(&[
        "plugin",
        "test",
        passing
            .path()
            .join("echo-router.yaml")
            .to_str()
            .expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let failing = scenario_dir("31");
    let output = sluice(&[
        "plugin",
        "test",
        failing
            .path()
            .join("echo-router.yaml")
            .to_str()
            .expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("31"), "{}", stdout(&output));
}

#[test]
fn test_runs_the_python_example_scenario() {
    let example = workspace_root().join("plugins/examples/python-provider");
    let wasm = sluice_plugin_build::build_with_script(&example.join("build.sh"))
        .expect("the Python example builds");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(wasm, dir.path().join("python_provider.wasm")).expect("copy");
    let scenario = dir.path().join("scenario.yaml");
    std::fs::copy(example.join("scenario.yaml"), &scenario).expect("copy");
    let output = sluice(&["plugin", "test", scenario.to_str().expect("utf-8")]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("\n10 passed, 0 failed"), "{text}");
}
