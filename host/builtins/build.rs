//! Builds the built-in plugins for wasm32-wasip2 so `src/lib.rs` can embed them.

use std::path::{Path, PathBuf};

const PACKAGES: [&str; 7] = [
    "sluice-plugin-gatewayapi",
    "sluice-plugin-nginx",
    "sluice-plugin-istio",
    "sluice-plugin-prometheus",
    "sluice-plugin-web",
    "sluice-plugin-job",
    "sluice-plugin-approval",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.join("../..");
    let watched: Vec<PathBuf> = ["plugins", "wit"]
        .iter()
        .map(|dir| workspace.join(dir))
        .collect();
    let watched: Vec<&Path> = watched.iter().map(PathBuf::as_path).collect();
    if let Err(error) = sluice_plugin_build::build_for_build_script(&workspace, &PACKAGES, &watched)
    {
        panic!("{error}");
    }
}
