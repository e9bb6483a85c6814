//! Sluice's built-in plugins, compiled from `plugins/` to Wasm components at build time and
//! embedded in the binary, so a default install routes traffic and analyses metrics with no
//! downloads. They run through the same sandbox as third-party plugins, with the narrowest
//! grants that work ([`DEFAULT_TRAFFIC_ROUTER_PLUGINS`], [`DEFAULT_METRIC_PROVIDER_PLUGINS`],
//! [`DEFAULT_STEP_PLUGINS`]).

use std::collections::BTreeMap;

use bytes::Bytes;

/// Which plugin interface a built-in implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinKind {
    /// `sluice:plugin/traffic-router`.
    TrafficRouter,
    /// `sluice:plugin/metric-provider`.
    MetricProvider,
    /// `sluice:plugin/step`.
    Step,
}

/// One embedded plugin.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// The name in `builtin:NAME` locations.
    pub name: &'static str,
    /// The interface it implements.
    pub kind: BuiltinKind,
    /// The type name it reports (`plugin-type`).
    pub plugin_type: &'static str,
    /// The component's bytes.
    pub wasm: &'static [u8],
}

macro_rules! embedded {
    ($package:literal) => {
        include_bytes!(env!(concat!("SLUICE_PLUGIN_WASM_", $package)))
    };
}

/// Every built-in plugin.
pub const BUILTINS: [Builtin; 7] = [
    Builtin {
        name: "gatewayapi",
        kind: BuiltinKind::TrafficRouter,
        plugin_type: "GatewayAPI",
        wasm: embedded!("SLUICE_PLUGIN_GATEWAYAPI"),
    },
    Builtin {
        name: "nginx",
        kind: BuiltinKind::TrafficRouter,
        plugin_type: "Nginx",
        wasm: embedded!("SLUICE_PLUGIN_NGINX"),
    },
    Builtin {
        name: "istio",
        kind: BuiltinKind::TrafficRouter,
        plugin_type: "Istio",
        wasm: embedded!("SLUICE_PLUGIN_ISTIO"),
    },
    Builtin {
        name: "prometheus",
        kind: BuiltinKind::MetricProvider,
        plugin_type: "Prometheus",
        wasm: embedded!("SLUICE_PLUGIN_PROMETHEUS"),
    },
    Builtin {
        name: "web",
        kind: BuiltinKind::MetricProvider,
        plugin_type: "Web",
        wasm: embedded!("SLUICE_PLUGIN_WEB"),
    },
    Builtin {
        name: "job",
        kind: BuiltinKind::MetricProvider,
        plugin_type: "Job",
        wasm: embedded!("SLUICE_PLUGIN_JOB"),
    },
    Builtin {
        name: "approval",
        kind: BuiltinKind::Step,
        plugin_type: "Approval",
        wasm: embedded!("SLUICE_PLUGIN_APPROVAL"),
    },
];

/// The components by `builtin:` name, as the plugin registry takes them (the embedded bytes,
/// not copies).
pub fn components() -> BTreeMap<String, Bytes> {
    BUILTINS
        .iter()
        .map(|builtin| (builtin.name.to_string(), Bytes::from_static(builtin.wasm)))
        .collect()
}

/// The plugin configuration of a default install, as ConfigMap data: the built-in routers under
/// `trafficRouterPlugins`, the built-in providers under `metricProviderPlugins` and the built-in
/// step plugins under `stepPlugins`.
pub fn default_plugin_config() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "trafficRouterPlugins".to_string(),
            DEFAULT_TRAFFIC_ROUTER_PLUGINS.to_string(),
        ),
        (
            "metricProviderPlugins".to_string(),
            DEFAULT_METRIC_PROVIDER_PLUGINS.to_string(),
        ),
        ("stepPlugins".to_string(), DEFAULT_STEP_PLUGINS.to_string()),
    ])
}

/// The default `traffic-router-plugins` entry of the plugin ConfigMap: the built-in routers,
/// each allowed only the objects it manages, in the Rollout's namespace. The Gateway API router
/// also answers to `argoproj-labs/gatewayAPI`, the name Argo Rollouts users configure.
pub const DEFAULT_TRAFFIC_ROUTER_PLUGINS: &str = r#"- name: argoproj-labs/gatewayAPI
  location: builtin:gatewayapi
  type: GatewayAPI
  grants:
    kube:
      - {group: gateway.networking.k8s.io, kinds: [HTTPRoute, GRPCRoute, TCPRoute], verbs: [get, patch]}
- name: nginx
  location: builtin:nginx
  type: Nginx
  grants:
    kube:
      - {group: networking.k8s.io, kinds: [Ingress], verbs: [get, create, patch]}
- name: istio
  location: builtin:istio
  type: Istio
  grants:
    kube:
      - {group: networking.istio.io, kinds: [VirtualService, DestinationRule], verbs: [get, patch]}
"#;

/// The default `metric-provider-plugins` entry of the plugin ConfigMap. Each call of an HTTP
/// provider may reach only the origin its metric names (`address` for Prometheus, `url` for
/// Web), as the AnalysisTemplate's author wrote it; nothing else. A metric with `insecure: true`
/// skips TLS certificate verification, as in Argo.
pub const DEFAULT_METRIC_PROVIDER_PLUGINS: &str = r#"- name: prometheus
  location: builtin:prometheus
  type: Prometheus
  grants:
    httpFromConfig: [address]
    tlsSkipVerifyFromConfig: insecure
  limits: {httpTimeout: 30s}
- name: web
  location: builtin:web
  type: Web
  grants:
    httpFromConfig: [url]
    tlsSkipVerifyFromConfig: insecure
  limits: {httpTimeout: 10s}
- name: job
  location: builtin:job
  type: Job
  grants:
    kube:
      - {group: batch, kinds: [Job], verbs: [get, create, delete, list]}
"#;

/// The default `stepPlugins` entry of the plugin ConfigMap: the approval gate, allowed to read,
/// create and update ConfigMaps in the Rollout's namespace (the gate's ConfigMap).
pub const DEFAULT_STEP_PLUGINS: &str = r#"- name: sluice/approval
  location: builtin:approval
  type: Approval
  grants:
    kube:
      - {group: "", kinds: [ConfigMap], verbs: [get, create, patch]}
"#;
