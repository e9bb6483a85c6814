//! A mock host for Sluice plugins: in-memory Kubernetes objects, scripted HTTP and call recording.
//!
//! The harness runs a real `.wasm` component on the production runtime (`sluice-runtime`) with
//! the same grants and limits as in a cluster, but with the capability backends swapped:
//! [`InMemoryKube`] instead of the API server and [`ScriptedHttp`] instead of the network.
//! Every host call is recorded as an [`Exchange`], every log record as a [`LogRecord`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_testkit::{PluginHarness, rollout_context};
//!
//! let harness = PluginHarness::traffic_router("target/wasm32-wasip2/release/my_router.wasm")?
//!     .grants_yaml("kube: [{kinds: [ConfigMap], verbs: [get, patch]}]")?;
//! harness.kube().load_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: shop}")?;
//! let router = harness.load_router().await?;
//! router.set_weight(&rollout_context("shop", "web", "{}"), 30, &[]).await?;
//! assert!(harness.exchanges().iter().any(|e| e.request["verb"] == "patch"));
//! # Ok(()) }
//! ```
//!
//! For plugin authors in any language, [`scenario::run_file`] runs a YAML scenario (see
//! `host/testkit/README.md`).

mod conflicts;
mod http;
mod kube;
pub mod scenario;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

pub use sluice_runtime;
pub use sluice_runtime::{
    AnalysisContext, AnalysisPhase, CallError, Capability, Exchange, Grants, GrantsSpec, LoadError,
    LogLevel, LogRecord, Measurement, MetricProvider, PluginKind, PluginMetrics, RolloutContext,
    StepContext, StepPhase, StepPlugin, StepResult, TrafficRouter,
};
use sluice_runtime::{
    CompiledComponent, EngineOptions, HostObserver, HostServices, Limits, Plugin, PluginEngine,
    PluginSpec,
};

pub use crate::conflicts::{CONCURRENT_WRITE_LABEL, ConflictingKube};
pub use crate::http::{HttpScript, ScriptedHttp};
pub use crate::kube::{FixtureError, InMemoryKube};

/// Why the harness could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The `.wasm` file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Grants could not be parsed or validated.
    #[error("invalid grants: {0}")]
    Grants(String),
    /// The engine could not be created.
    #[error(transparent)]
    Engine(#[from] sluice_runtime::EngineError),
    /// The plugin failed to compile, link or verify.
    #[error("plugin failed to load: {0}")]
    Load(#[from] LoadError),
    /// A kube fixture could not be loaded.
    #[error(transparent)]
    Fixture(#[from] FixtureError),
}

/// Records every exchange and log record of the plugins it observes.
#[derive(Default)]
pub struct Recorder {
    exchanges: Mutex<Vec<Exchange>>,
    logs: Mutex<Vec<LogRecord>>,
}

impl Recorder {
    /// Exchanges so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Log records so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Forgets everything recorded.
    pub fn clear(&self) {
        self.exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl HostObserver for Recorder {
    fn exchange(&self, exchange: Exchange) {
        self.exchanges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(exchange);
    }

    fn log(&self, record: LogRecord) {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }
}

/// The engine shared by all harnesses of a process (one epoch ticker, one pool).
pub fn shared_engine() -> Result<PluginEngine, HarnessError> {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine.clone());
    }
    let engine = PluginEngine::new(EngineOptions::default())?;
    Ok(ENGINE.get_or_init(|| engine).clone())
}

/// Compiles each distinct component once per process (keyed by digest): concurrent loads of the
/// same bytes wait for the one compilation instead of repeating it, which matters for large
/// components such as interpreters compiled to Wasm.
async fn compiled(engine: &PluginEngine, wasm: Arc<[u8]>) -> Result<CompiledComponent, LoadError> {
    type Slot = Arc<tokio::sync::OnceCell<CompiledComponent>>;
    static CACHE: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
    let slot = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(sluice_runtime::sha256_hex(&wasm))
        .or_default()
        .clone();
    slot.get_or_try_init(|| engine.compile_component(wasm))
        .await
        .cloned()
}

/// One plugin under test with its mock host.
pub struct PluginHarness {
    wasm: Arc<[u8]>,
    spec: PluginSpec,
    kube: Arc<InMemoryKube>,
    http: Arc<ScriptedHttp>,
    recorder: Arc<Recorder>,
    metrics: PluginMetrics,
}

impl PluginHarness {
    /// A harness for the component at `path`, loaded as `kind`, named after the file, with no
    /// grants and default limits.
    pub fn new(kind: PluginKind, path: impl AsRef<Path>) -> Result<Self, HarnessError> {
        let path = path.as_ref();
        let wasm = std::fs::read(path).map_err(|source| HarnessError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let name = path.file_stem().map_or_else(
            || "plugin".to_owned(),
            |s| s.to_string_lossy().replace('_', "-"),
        );
        Ok(Self {
            wasm: wasm.into(),
            spec: PluginSpec {
                name,
                kind,
                grants: Grants::default(),
                limits: Limits::default(),
                args: Vec::new(),
                expected_type: None,
            },
            kube: Arc::new(InMemoryKube::new()),
            http: Arc::new(ScriptedHttp::new()),
            recorder: Arc::new(Recorder::default()),
            metrics: PluginMetrics::unregistered(),
        })
    }

    /// A traffic-router harness.
    pub fn traffic_router(path: impl AsRef<Path>) -> Result<Self, HarnessError> {
        Self::new(PluginKind::TrafficRouter, path)
    }

    /// A metric-provider harness.
    pub fn metric_provider(path: impl AsRef<Path>) -> Result<Self, HarnessError> {
        Self::new(PluginKind::MetricProvider, path)
    }

    /// A step-plugin harness.
    pub fn step_plugin(path: impl AsRef<Path>) -> Result<Self, HarnessError> {
        Self::new(PluginKind::Step, path)
    }

    /// Sets the plugin name (used in messages, metrics and the apply field manager).
    pub fn name(mut self, name: &str) -> Self {
        self.spec.name = name.to_owned();
        self
    }

    /// Sets grants.
    pub fn grants(mut self, grants: Grants) -> Self {
        self.spec.grants = grants;
        self
    }

    /// Sets grants from YAML (the `grants` block of the plugin ConfigMap).
    pub fn grants_yaml(self, yaml: &str) -> Result<Self, HarnessError> {
        let spec: GrantsSpec =
            serde_yaml::from_str(yaml).map_err(|e| HarnessError::Grants(e.to_string()))?;
        let grants = spec
            .validate()
            .map_err(|e| HarnessError::Grants(e.to_string()))?;
        Ok(self.grants(grants))
    }

    /// Sets limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.spec.limits = limits;
        self
    }

    /// Sets the plugin's argv (after its name).
    pub fn args(mut self, args: Vec<String>) -> Self {
        self.spec.args = args;
        self
    }

    /// Requires `plugin-type` to return `plugin_type` at load.
    pub fn expect_type(mut self, plugin_type: &str) -> Self {
        self.spec.expected_type = Some(plugin_type.to_owned());
        self
    }

    /// The in-memory Kubernetes store.
    pub fn kube(&self) -> &InMemoryKube {
        &self.kube
    }

    /// The scripted HTTP backend.
    pub fn http(&self) -> &ScriptedHttp {
        &self.http
    }

    /// Every host call recorded so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.recorder.exchanges()
    }

    /// Every log record so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.recorder.logs()
    }

    /// The recorder (to clear it between calls).
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// The plugin's metrics.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    /// The plugin's name.
    pub fn plugin_name(&self) -> &str {
        &self.spec.name
    }

    /// Compiles (once per process), links and verifies the plugin.
    pub async fn load(&self) -> Result<Plugin, HarnessError> {
        let engine = shared_engine()?;
        let component = compiled(&engine, self.wasm.clone()).await?;
        let services = HostServices {
            kube: self.kube.clone(),
            http: self.http.clone(),
            observer: Some(self.recorder.clone()),
        };
        Ok(engine
            .load_plugin(
                self.spec.clone(),
                &component,
                services,
                self.metrics.clone(),
            )
            .await?)
    }

    /// Loads the plugin as a traffic router.
    pub async fn load_router(&self) -> Result<TrafficRouter, HarnessError> {
        match self.load().await? {
            Plugin::TrafficRouter(router) => Ok(router),
            _ => unreachable_kind(),
        }
    }

    /// Loads the plugin as a metric provider.
    pub async fn load_provider(&self) -> Result<MetricProvider, HarnessError> {
        match self.load().await? {
            Plugin::MetricProvider(provider) => Ok(provider),
            _ => unreachable_kind(),
        }
    }

    /// Loads the plugin as a step plugin.
    pub async fn load_step(&self) -> Result<StepPlugin, HarnessError> {
        match self.load().await? {
            Plugin::Step(step) => Ok(step),
            _ => unreachable_kind(),
        }
    }
}

/// `load` links the world of the harness's kind, so the other kind cannot come back; this is
/// reported as a load error rather than a panic all the same.
fn unreachable_kind<T>() -> Result<T, HarnessError> {
    Err(HarnessError::Load(LoadError::Link {
        reason: "loaded plugin has the wrong kind".into(),
    }))
}

/// A minimal Rollout context: namespace, name and plugin config JSON.
pub fn rollout_context(namespace: &str, name: &str, plugin_config: &str) -> RolloutContext {
    RolloutContext {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: format!("{namespace}-{name}-uid"),
        plugin_name: String::new(),
        plugin_config: plugin_config.to_owned(),
        canary_service: format!("{name}-canary"),
        stable_service: format!("{name}-stable"),
        canary_pod_template_hash: String::new(),
        stable_pod_template_hash: String::new(),
        rollout_json: "{}".to_owned(),
    }
}

/// A minimal step context: namespace, Rollout name, step index, plugin config JSON and the
/// plugin's status from its previous `run` (empty: none).
pub fn step_context(
    namespace: &str,
    name: &str,
    step_index: u32,
    plugin_config: &str,
    status: &str,
) -> StepContext {
    StepContext {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: format!("{namespace}-{name}-uid"),
        plugin_name: String::new(),
        step_index,
        plugin_config: plugin_config.to_owned(),
        status: status.to_owned(),
        rollout_json: "{}".to_owned(),
    }
}

/// A minimal analysis context: namespace, AnalysisRun name, metric name and plugin config JSON.
pub fn analysis_context(
    namespace: &str,
    analysis_run: &str,
    metric: &str,
    plugin_config: &str,
) -> AnalysisContext {
    AnalysisContext {
        namespace: namespace.to_owned(),
        analysis_run: analysis_run.to_owned(),
        uid: format!("{namespace}-{analysis_run}-uid"),
        metric_name: metric.to_owned(),
        plugin_name: String::new(),
        plugin_config: plugin_config.to_owned(),
        metric_json: "{}".to_owned(),
    }
}
