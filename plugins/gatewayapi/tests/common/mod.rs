//! Shared test support: the plugin built once per test binary, grants, fixtures, contexts and
//! a kube backend that injects write conflicts.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support module"
)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use sluice_runtime::{
    BoxFuture, CompiledComponent, GrantsSpec, Gvk, HostServices, KubeBackend, KubeError, Limits,
    ListOptions, ObjectKey, ObjectPage, PatchBody, Plugin, PluginKind, PluginMetrics, PluginSpec,
    RolloutContext, TrafficRouter,
};
use sluice_testkit::{PluginHarness, ScriptedHttp};

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The compiled `.wasm` of this crate, built once per test binary.
pub fn plugin_wasm() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        sluice_plugin_build::build_plugin(workspace_root(), "sluice-plugin-gatewayapi")
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// The fixture routes of the YAML scenario (HTTPRoute web, GRPCRoute web-grpc, TCPRoute web-tcp, HTTPRoute other).
pub fn routes_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/routes.yaml")
}

/// The narrowest grants: get and patch on the three route kinds in the Rollout's namespace.
pub const GRANTS_YAML: &str = "kube: [{group: gateway.networking.k8s.io, kinds: [HTTPRoute, GRPCRoute, TCPRoute], verbs: [get, patch]}]";

/// A harness over the in-memory kube store, loaded with [`GRANTS_YAML`] and the fixture routes.
pub fn harness() -> PluginHarness {
    let harness = PluginHarness::traffic_router(plugin_wasm())
        .unwrap()
        .name("argoproj-labs/gatewayAPI")
        .expect_type("GatewayAPI")
        .grants_yaml(GRANTS_YAML)
        .unwrap();
    harness.kube().load_yaml_file(&routes_fixture()).unwrap();
    harness
}

/// The context of Rollout `web` in `namespace` with this plugin config.
pub fn context(namespace: &str, config: Value) -> RolloutContext {
    let mut ctx = sluice_testkit::rollout_context(namespace, "web", &config.to_string());
    ctx.plugin_name = "argoproj-labs/gatewayAPI".to_owned();
    ctx
}

/// Loads the plugin over any kube backend (for conflict injection and the real API server).
pub async fn load_router(kube: Arc<dyn KubeBackend>) -> TrafficRouter {
    static COMPILED: tokio::sync::OnceCell<CompiledComponent> = tokio::sync::OnceCell::const_new();
    let engine = sluice_testkit::shared_engine().unwrap();
    let component = COMPILED
        .get_or_init(|| async {
            let wasm = std::fs::read(plugin_wasm()).unwrap();
            engine.compile_component(wasm.into()).await.unwrap()
        })
        .await;
    let grants_spec: GrantsSpec = serde_json::from_value(json!({"kube": [{
        "group": "gateway.networking.k8s.io",
        "kinds": ["HTTPRoute", "GRPCRoute", "TCPRoute"],
        "verbs": ["get", "patch"],
    }]}))
    .unwrap();
    let spec = PluginSpec {
        name: "argoproj-labs/gatewayAPI".to_owned(),
        kind: PluginKind::TrafficRouter,
        grants: grants_spec.validate().unwrap(),
        limits: Limits::default(),
        args: Vec::new(),
        expected_type: Some("GatewayAPI".to_owned()),
    };
    let services = HostServices {
        kube,
        http: Arc::new(ScriptedHttp::new()),
        observer: None,
    };
    match engine
        .load_plugin(spec, component, services, PluginMetrics::unregistered())
        .await
        .unwrap()
    {
        Plugin::TrafficRouter(router) => router,
        other => panic!("loaded as another kind: {other:?}"),
    }
}

/// The weight of `service` in rule `rule` of a route object (Gateway API's default 1 when unset).
pub fn weight(route: &Value, rule: usize, service: &str) -> Option<i64> {
    route["spec"]["rules"][rule]["backendRefs"]
        .as_array()?
        .iter()
        .find(|b| b["name"] == service)
        .map(|b| b["weight"].as_i64().unwrap_or(1))
}

/// The names of the rules of a route object.
pub fn rule_names(route: &Value) -> Vec<Option<String>> {
    route["spec"]["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An in-memory store whose route CRDs predate Gateway API v1.2: patches lose `rules[].name`,
/// as the API server prunes fields a structural schema does not list.
pub struct NamePruningKube(pub Arc<sluice_testkit::InMemoryKube>);

impl KubeBackend for NamePruningKube {
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Value, KubeError>> {
        self.0.get(key)
    }

    fn list<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        options: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectPage, KubeError>> {
        self.0.list(gvk, namespace, options)
    }

    fn create<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        object: Value,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        self.0.create(gvk, namespace, object)
    }

    fn patch<'a>(
        &'a self,
        key: &'a ObjectKey,
        patch: PatchBody,
        field_manager: &'a str,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let mut stored = self.0.patch(key, patch, field_manager).await?;
            for rule in stored
                .pointer_mut("/spec/rules")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(rule) = rule.as_object_mut() {
                    rule.remove("name");
                }
            }
            self.0
                .insert(stored)
                .map_err(|e| KubeError::Invalid(e.to_string()))?;
            self.0.get(key).await
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), KubeError>> {
        self.0.delete(key)
    }
}
