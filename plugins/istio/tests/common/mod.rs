//! Builds the plugin once per test binary and sets up harnesses and contexts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use sluice_testkit::{PluginHarness, RolloutContext, rollout_context};

/// The narrowest grant the router needs.
pub const GRANTS: &str = "kube:
  - {group: networking.istio.io, kinds: [VirtualService, DestinationRule], verbs: [get, patch]}
  - {group: networking.istio.io, kinds: [VirtualService], verbs: [get, patch], namespaces: [mesh]}
";

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The plugin's `.wasm`, built on first use.
pub fn plugin_wasm() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        sluice_plugin_build::build_plugin(workspace_root(), "sluice-plugin-istio")
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// A file under `tests/fixtures`.
#[allow(dead_code, reason = "not every test binary reads fixtures")]
pub fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

/// A harness with the router's grants and the Istio fixtures loaded.
#[allow(dead_code, reason = "not every test binary uses the testkit harness")]
pub fn harness() -> PluginHarness {
    let harness = PluginHarness::traffic_router(plugin_wasm())
        .unwrap()
        .name("istio")
        .expect_type("Istio")
        .grants_yaml(GRANTS)
        .unwrap();
    harness
        .kube()
        .load_yaml_file(&fixture("istio.yaml"))
        .unwrap();
    harness
}

/// The context of Rollout `shop/web` (uid `shop-web-uid`, services `web-stable`/`web-canary`)
/// with `trafficRouting.istio` = `config` and the whole Rollout = `rollout`.
pub fn context(config: &Value, rollout: &Value) -> RolloutContext {
    let mut ctx = rollout_context("shop", "web", &config.to_string());
    ctx.rollout_json = rollout.to_string();
    ctx
}
