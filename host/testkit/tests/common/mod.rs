//! Builds the fixture plugins once per test binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FIXTURES: &[&str] = &[
    "echo-router",
    "echo-provider",
    "endless-loop",
    "memory-hog",
    "trap",
    "forbidden",
    "garbage",
    "slow-host",
    "greedy-router",
];

pub fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Path of the built `.wasm` of `plugins/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let packages: Vec<String> = FIXTURES
            .iter()
            .map(|f| format!("sluice-fixture-{f}"))
            .collect();
        let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
        sluice_plugin_build::build_plugins(workspace_root(), &packages)
            .unwrap_or_else(|e| panic!("{e}"))
    });
    built
        .get(&format!("sluice-fixture-{name}"))
        .unwrap_or_else(|| panic!("unknown fixture {name}"))
        .clone()
}
