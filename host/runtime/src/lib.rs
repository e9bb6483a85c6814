//! The sandboxed WebAssembly plugin runtime of Sluice (the only crate that imports wasmtime).
//!
//! Traffic routers and metric providers are WebAssembly components implementing the
//! `sluice:plugin@0.1.0` worlds (see `wit/`). This crate compiles them once per digest, checks
//! them against their world, and runs every call in a fresh instance with a CPU budget, a memory
//! limit and a wall-clock timeout. Host capabilities (`sluice:host/kube`, `sluice:host/log`,
//! `wasi:http` for metric providers) check the plugin's grants before acting; a denial is a WIT
//! error value, counted in metrics, never a trap.
//!
//! ```no_run
//! # async fn demo(client: kube::Client, data: std::collections::BTreeMap<String, String>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sluice_runtime::*;
//!
//! let engine = PluginEngine::new(EngineOptions::default())?;
//! let services = HostServices {
//!     kube: Arc::new(ClientKubeBackend::new(client)),
//!     http: Arc::new(ReqwestHttpBackend::new()?),
//!     observer: None,
//! };
//! let mut prometheus = prometheus_client::registry::Registry::default();
//! let metrics = PluginMetrics::register(&mut prometheus);
//! let registry = PluginRegistry::new(engine, services, metrics, Default::default(), FetchOptions::default());
//! let config = parse_plugin_config(&data, &Limits::default())?;
//! let status = registry.apply(&config).await;          // again whenever the ConfigMap changes
//! let router = registry.traffic_router("argoproj-labs/gatewayAPI").await?; // a built-in compiles now
//! # let ctx: RolloutContext = todo_context();
//! router.set_weight(&ctx, 30, &[]).await?;
//! # Ok(()) }
//! # fn todo_context() -> sluice_runtime::RolloutContext { unreachable!() }
//! ```

mod bindings;
mod config;
mod engine;
mod error;
mod grants;
mod host;
mod limits;
mod loader;
mod metrics;
mod plugin;
mod registry;

pub use crate::bindings::step::exports::sluice::plugin::step::{
    StepContext, StepPhase, StepResult,
};
pub use crate::bindings::types::{
    AnalysisContext, AnalysisPhase, HeaderMatch, HeaderRoute, Measurement, MirrorRoute,
    PluginError, RolloutContext, RouteMatch, StringMatch, Verification, WeightDestination,
};
pub use crate::config::{
    ConfigError, InvalidEntry, METRIC_PROVIDER_PLUGINS_KEY, PluginConfig, PluginEntry,
    PluginLocation, STEP_PLUGINS_KEY, TRAFFIC_ROUTER_PLUGINS_KEY, parse_plugin_config,
};
pub use crate::engine::{EngineError, EngineOptions, InstanceAllocator, PluginEngine};
pub use crate::error::{CallError, LoadError};
pub use crate::grants::{
    GrantError, Grants, GrantsSpec, HttpOrigin, KubeRule, KubeRuleSpec, KubeVerb, NamespaceScope,
    ROLLOUT_NAMESPACE,
};
pub use crate::host::http::{
    HttpBackend, HttpCallLimits, HttpFailure, HttpRequest, HttpResponse, ReqwestHttpBackend,
    SecretSubstitution,
};
pub use crate::host::kube::{
    BoxFuture, Gvk, KubeBackend, KubeError, ListOptions, ObjectKey, ObjectPage, PatchBody,
};
pub use crate::host::kube_client::ClientKubeBackend;
pub use crate::host::{Capability, Exchange, HostObserver, HostServices, LogLevel, LogRecord};
pub use crate::limits::{LimitError, Limits, LimitsSpec, parse_duration, parse_quantity};
pub use crate::loader::{FetchOptions, sha256_hex};
pub use crate::metrics::PluginMetrics;
pub use crate::plugin::{
    CompiledComponent, MetricProvider, Plugin, PluginKind, PluginSpec, StepPlugin, TrafficRouter,
};
pub use crate::registry::{PluginRegistry, PluginStatus};
