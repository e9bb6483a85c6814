//! Loaded plugins and their calls: a fresh store and instance per call, with CPU, memory and
//! wall-clock limits, and classified outcomes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::InstancePre;
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::provider::MetricProviderPluginPre;
use crate::bindings::router::TrafficRouterPluginPre;
use crate::bindings::step::StepPluginPre;
use crate::bindings::step::exports::sluice::plugin::step::{StepContext, StepResult};
use crate::bindings::types::{
    AnalysisContext, AnalysisPhase, HeaderRoute, Measurement, MirrorRoute, PluginError,
    RolloutContext, Verification, WeightDestination,
};
use crate::engine::PluginEngine;
use crate::error::{CallError, LoadError};
use crate::grants::Grants;
use crate::host::http::{CallAccess, SecretSubstitution};
use crate::host::{CallScope, HostServices, HostState, PluginShared};
use crate::limits::Limits;
use crate::metrics::PluginMetrics;

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// `traffic-router-plugin`.
    TrafficRouter,
    /// `metric-provider-plugin`.
    MetricProvider,
    /// `step-plugin`.
    Step,
}

impl PluginKind {
    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            Self::TrafficRouter => "sluice:plugin/traffic-router-plugin",
            Self::MetricProvider => "sluice:plugin/metric-provider-plugin",
            Self::Step => "sluice:plugin/step-plugin",
        }
    }

    /// The exported interface (without version).
    pub(crate) fn interface(self) -> &'static str {
        match self {
            Self::TrafficRouter => "sluice:plugin/traffic-router",
            Self::MetricProvider => "sluice:plugin/metric-provider",
            Self::Step => "sluice:plugin/step",
        }
    }

    /// Whether plugins of this kind may import `wasi:http/outgoing-handler` (and be granted
    /// HTTP access).
    pub fn uses_http(self) -> bool {
        !matches!(self, Self::TrafficRouter)
    }

    /// How the configuration names the kind.
    pub fn label(self) -> &'static str {
        match self {
            Self::TrafficRouter => "traffic-router",
            Self::MetricProvider => "metric-provider",
            Self::Step => "step",
        }
    }
}

/// Everything about a plugin except where its bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The name Rollouts and AnalysisTemplates refer to.
    pub name: String,
    /// The world it implements.
    pub kind: PluginKind,
    /// What it may access.
    pub grants: Grants,
    /// Per-call limits.
    pub limits: Limits,
    /// Arguments visible to the guest as its argv (after the plugin name).
    pub args: Vec<String>,
    /// If set, `plugin-type` must return exactly this.
    pub expected_type: Option<String>,
}

/// A loaded plugin of any kind.
#[derive(Clone)]
pub enum Plugin {
    /// A traffic router.
    TrafficRouter(TrafficRouter),
    /// A metric provider.
    MetricProvider(MetricProvider),
    /// A step plugin.
    Step(StepPlugin),
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.core().shared.name
    }

    /// sha256 of the component bytes, hex.
    pub fn digest(&self) -> &str {
        &self.core().shared.digest
    }

    /// What `plugin-type` returned at load.
    pub fn plugin_type(&self) -> &str {
        &self.core().plugin_type
    }

    fn core(&self) -> &CallCore {
        match self {
            Self::TrafficRouter(p) => &p.core,
            Self::MetricProvider(p) => &p.core,
            Self::Step(p) => &p.core,
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name())
            .field("digest", &self.digest())
            .field("plugin_type", &self.plugin_type())
            .finish()
    }
}

/// What one call is about: the object's namespace and name (for grants and log fields) and
/// the HTTP access it gets beyond the plugin's grants.
#[derive(Default)]
struct CallTarget<'a> {
    namespace: Option<&'a str>,
    object: Option<&'a str>,
    access: CallAccess,
}

impl<'a> CallTarget<'a> {
    fn rollout(ctx: &'a RolloutContext) -> Self {
        Self {
            namespace: Some(&ctx.namespace),
            object: Some(&ctx.name),
            access: CallAccess::default(),
        }
    }

    /// A call about `object` in `namespace` that may reach the origins the plugin's grants take
    /// from `plugin_config` (`httpFromConfig`, `tlsSkipVerifyFromConfig`), with `secrets`
    /// substituted into its outgoing HTTP.
    fn configured(
        grants: &Grants,
        namespace: &'a str,
        object: &'a str,
        plugin_config: &str,
        secrets: Arc<[SecretSubstitution]>,
    ) -> Self {
        let (origins, skip_tls_verify) = grants.from_config(plugin_config);
        Self {
            namespace: Some(namespace),
            object: Some(object),
            access: CallAccess {
                origins,
                skip_tls_verify,
                secrets,
            },
        }
    }
}

#[derive(Clone)]
struct CallCore {
    engine: PluginEngine,
    shared: Arc<PluginShared>,
    plugin_type: String,
}

/// A store for one call, holding a concurrency permit until it is dropped.
struct ActiveCall<'a> {
    store: Store<HostState>,
    started: Instant,
    method: &'static str,
    core: &'a CallCore,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

type Outcome<T> = Result<wasmtime::Result<Result<T, PluginError>>, tokio::time::error::Elapsed>;

impl CallCore {
    async fn enter(
        &self,
        method: &'static str,
        target: CallTarget<'_>,
    ) -> Result<ActiveCall<'_>, CallError> {
        let CallTarget {
            namespace,
            object,
            access,
        } = target;
        let permit = self
            .engine
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| CallError::Load {
                plugin: self.shared.name.clone(),
                reason: "the plugin engine is shutting down".into(),
            })?;
        let span = tracing::info_span!(
            "plugin_call",
            plugin = %self.shared.name,
            method,
            rollout = object.unwrap_or_default(),
            namespace = namespace.unwrap_or_default(),
        );
        let scope = Arc::new(CallScope {
            plugin: self.shared.clone(),
            method,
            namespace: namespace.map(str::to_owned),
            access,
            span,
        });
        let tick = self.engine.inner.options.epoch_tick.as_nanos().max(1);
        let cpu_ticks =
            u64::try_from(self.shared.limits.cpu.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX);
        let mut store = Store::new(&self.engine.inner.engine, HostState::new(scope, cpu_ticks));
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.cpu_ticks_left == 0 {
                state.cpu_exhausted = true;
                return Ok(UpdateDeadline::Interrupt);
            }
            state.cpu_ticks_left -= 1;
            // Yield every tick so the executor (and the wall-clock timeout) keeps running.
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(ActiveCall {
            store,
            started: Instant::now(),
            method,
            core: self,
            _permit: permit,
        })
    }

    fn wall(&self) -> Duration {
        self.shared.limits.wall
    }
}

impl ActiveCall<'_> {
    /// Classifies the outcome, validates the value, flushes logs and records metrics.
    fn conclude<T>(
        mut self,
        outcome: Outcome<T>,
        validate: impl FnOnce(T) -> Result<T, String>,
    ) -> Result<T, CallError> {
        let shared = &self.core.shared;
        let plugin = shared.name.clone();
        let method = self.method;
        let state = self.store.data_mut();
        state.flush_output();
        let result = match outcome {
            Err(_elapsed) => Err(CallError::Timeout {
                plugin,
                method,
                after: shared.limits.wall,
            }),
            Ok(Err(error)) if state.limiter.limit_hit => {
                tracing::debug!(error = format!("{error:#}"), "out of memory");
                Err(CallError::OutOfMemory {
                    plugin,
                    method,
                    limit_bytes: shared.limits.memory_bytes,
                })
            }
            Ok(Err(error))
                if state.cpu_exhausted
                    || error.downcast_ref::<wasmtime::Trap>()
                        == Some(&wasmtime::Trap::Interrupt) =>
            {
                tracing::debug!(error = format!("{error:#}"), "cpu budget exhausted");
                Err(CallError::CpuExhausted {
                    plugin,
                    method,
                    budget: shared.limits.cpu,
                })
            }
            Ok(Err(error)) => Err(CallError::Trap {
                plugin,
                method,
                message: format!("{error:?}"),
            }),
            Ok(Ok(Err(error))) => {
                let denials = state.all_denials();
                if let (PluginError::AccessDenied(message), true) = (&error, denials.is_empty()) {
                    Err(CallError::AccessDenied {
                        plugin,
                        method,
                        message: message.clone(),
                    })
                } else if !denials.is_empty() {
                    Err(CallError::AccessDenied {
                        plugin,
                        method,
                        message: format!("{} (plugin reported: {error:?})", denials.join("; ")),
                    })
                } else {
                    Err(CallError::Plugin {
                        plugin,
                        method,
                        error,
                    })
                }
            }
            Ok(Ok(Ok(value))) => validate(value).map_err(|message| CallError::InvalidOutput {
                plugin,
                method,
                message,
            }),
        };
        let elapsed = self.started.elapsed();
        let error_kind = result.as_ref().err().map(CallError::kind);
        shared.metrics.call(
            &shared.name,
            method,
            elapsed.as_secs_f64(),
            error_kind,
            state.limiter.high_water_bytes,
        );
        state.scope.span.in_scope(|| match &result {
            Ok(_) => tracing::debug!(elapsed_us = elapsed.as_micros(), "plugin call succeeded"),
            Err(error) => {
                tracing::warn!(elapsed_us = elapsed.as_micros(), %error, "plugin call failed")
            }
        });
        result
    }
}

/// Runs one export call with a fresh instance under the wall-clock timeout.
macro_rules! call_export {
    ($self:ident, $method:literal, $target:expr, $validate:expr,
     |$plugin:ident, $store:ident| $body:expr) => {{
        let mut call = $self.core.enter($method, $target).await?;
        let wall = $self.core.wall();
        let $store = &mut call.store;
        let outcome = tokio::time::timeout(wall, async {
            let $plugin = $self.pre.instantiate_async(&mut *$store).await?;
            $body
        })
        .await;
        call.conclude(outcome, $validate)
    }};
}

fn accept<T>(value: T) -> Result<T, String> {
    Ok(value)
}

/// Largest `value`, `message` or metadata entry a measurement may carry.
const MAX_MEASUREMENT_TEXT: usize = 64 << 10;
/// Most metadata entries a measurement may carry.
const MAX_METADATA_ENTRIES: usize = 64;

fn validate_measurement(m: Measurement) -> Result<Measurement, String> {
    let running = matches!(m.phase, AnalysisPhase::Running | AnalysisPhase::Pending);
    if running && m.finished_at.is_some() {
        return Err(format!(
            "a {:?} measurement must not have finished-at",
            m.phase
        ));
    }
    if let (Some(start), Some(end)) = (m.started_at, m.finished_at)
        && end < start
    {
        return Err(format!(
            "finished-at ({end}) is before started-at ({start})"
        ));
    }
    let too_long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.len() > MAX_MEASUREMENT_TEXT);
    if too_long(&m.value) || too_long(&m.message) {
        return Err(format!(
            "value or message longer than {MAX_MEASUREMENT_TEXT} bytes"
        ));
    }
    validate_metadata(m.metadata.clone())?;
    Ok(m)
}

fn validate_metadata(metadata: Vec<(String, String)>) -> Result<Vec<(String, String)>, String> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(format!(
            "{} metadata entries (at most {MAX_METADATA_ENTRIES})",
            metadata.len()
        ));
    }
    if metadata
        .iter()
        .any(|(k, v)| k.is_empty() || k.len() + v.len() > MAX_MEASUREMENT_TEXT)
    {
        return Err("metadata keys must be non-empty and entries at most 64 KiB".into());
    }
    Ok(metadata)
}

fn validate_plugin_type(plugin_type: String) -> Result<String, String> {
    let valid = !plugin_type.is_empty()
        && plugin_type.len() <= 253
        && plugin_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if valid {
        Ok(plugin_type)
    } else {
        Err(format!(
            "plugin-type must be 1–253 characters of [A-Za-z0-9-_./], got {:?}",
            plugin_type.chars().take(80).collect::<String>()
        ))
    }
}

/// A loaded traffic-router plugin; cheap to clone. Every call gets a fresh instance.
#[derive(Clone)]
pub struct TrafficRouter {
    core: CallCore,
    pre: TrafficRouterPluginPre<HostState>,
}

impl TrafficRouter {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.core.shared.name
    }

    /// `plugin-type`.
    pub async fn plugin_type(&self) -> Result<String, CallError> {
        call_export!(
            self,
            "plugin-type",
            CallTarget::default(),
            validate_plugin_type,
            |p, store| {
                p.sluice_plugin_traffic_router()
                    .call_plugin_type(&mut *store)
                    .await
                    .map(Ok)
            }
        )
    }

    /// `init`.
    pub async fn init(&self) -> Result<(), CallError> {
        call_export!(self, "init", CallTarget::default(), accept, |p, store| {
            p.sluice_plugin_traffic_router()
                .call_init(&mut *store)
                .await
        })
    }

    /// `update-hash`.
    pub async fn update_hash(
        &self,
        ctx: &RolloutContext,
        canary_hash: &str,
        stable_hash: &str,
        additional_destinations: &[WeightDestination],
    ) -> Result<(), CallError> {
        call_export!(
            self,
            "update-hash",
            CallTarget::rollout(ctx),
            accept,
            |p, store| {
                p.sluice_plugin_traffic_router()
                    .call_update_hash(
                        &mut *store,
                        ctx,
                        canary_hash,
                        stable_hash,
                        additional_destinations,
                    )
                    .await
            }
        )
    }

    /// `set-weight`.
    pub async fn set_weight(
        &self,
        ctx: &RolloutContext,
        desired_weight: i32,
        additional_destinations: &[WeightDestination],
    ) -> Result<(), CallError> {
        call_export!(
            self,
            "set-weight",
            CallTarget::rollout(ctx),
            accept,
            |p, store| {
                p.sluice_plugin_traffic_router()
                    .call_set_weight(&mut *store, ctx, desired_weight, additional_destinations)
                    .await
            }
        )
    }

    /// `set-header-route`.
    pub async fn set_header_route(
        &self,
        ctx: &RolloutContext,
        route: &HeaderRoute,
    ) -> Result<(), CallError> {
        call_export!(
            self,
            "set-header-route",
            CallTarget::rollout(ctx),
            accept,
            |p, store| {
                p.sluice_plugin_traffic_router()
                    .call_set_header_route(&mut *store, ctx, route)
                    .await
            }
        )
    }

    /// `set-mirror-route`.
    pub async fn set_mirror_route(
        &self,
        ctx: &RolloutContext,
        route: &MirrorRoute,
    ) -> Result<(), CallError> {
        call_export!(
            self,
            "set-mirror-route",
            CallTarget::rollout(ctx),
            accept,
            |p, store| {
                p.sluice_plugin_traffic_router()
                    .call_set_mirror_route(&mut *store, ctx, route)
                    .await
            }
        )
    }

    /// `verify-weight`.
    pub async fn verify_weight(
        &self,
        ctx: &RolloutContext,
        desired_weight: i32,
        additional_destinations: &[WeightDestination],
    ) -> Result<Verification, CallError> {
        call_export!(
            self,
            "verify-weight",
            CallTarget::rollout(ctx),
            accept,
            |p, store| {
                p.sluice_plugin_traffic_router()
                    .call_verify_weight(&mut *store, ctx, desired_weight, additional_destinations)
                    .await
            }
        )
    }

    /// `remove-managed-routes`.
    pub async fn remove_managed_routes(&self, ctx: &RolloutContext) -> Result<(), CallError> {
        call_export!(
            self,
            "remove-managed-routes",
            CallTarget::rollout(ctx),
            accept,
            |p, store| {
                p.sluice_plugin_traffic_router()
                    .call_remove_managed_routes(&mut *store, ctx)
                    .await
            }
        )
    }
}

/// A loaded metric-provider plugin; cheap to clone. Every call gets a fresh instance.
#[derive(Clone)]
pub struct MetricProvider {
    core: CallCore,
    pre: MetricProviderPluginPre<HostState>,
    secrets: Arc<[SecretSubstitution]>,
}

impl MetricProvider {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.core.shared.name
    }

    /// This provider with secrets the host substitutes into its outgoing HTTP requests: the
    /// plugin sees only each secret's placeholder (in its `plugin-config`), and the host
    /// replaces the placeholder with the value in the URL, headers and body of requests to
    /// origins the call may reach. Secret values never enter the sandbox.
    pub fn with_secrets(&self, secrets: Vec<SecretSubstitution>) -> Self {
        Self {
            secrets: secrets.into(),
            ..self.clone()
        }
    }

    /// The target of a call about an AnalysisRun: HTTP access to the origins the grants take
    /// from `plugin-config` (`httpFromConfig`, `tlsSkipVerifyFromConfig`), and the secrets to
    /// substitute.
    fn analysis_target<'a>(&self, ctx: &'a AnalysisContext) -> CallTarget<'a> {
        CallTarget::configured(
            &self.core.shared.grants,
            &ctx.namespace,
            &ctx.analysis_run,
            &ctx.plugin_config,
            self.secrets.clone(),
        )
    }

    /// `plugin-type`.
    pub async fn plugin_type(&self) -> Result<String, CallError> {
        call_export!(
            self,
            "plugin-type",
            CallTarget::default(),
            validate_plugin_type,
            |p, store| {
                p.sluice_plugin_metric_provider()
                    .call_plugin_type(&mut *store)
                    .await
                    .map(Ok)
            }
        )
    }

    /// `init`.
    pub async fn init(&self) -> Result<(), CallError> {
        call_export!(self, "init", CallTarget::default(), accept, |p, store| {
            p.sluice_plugin_metric_provider()
                .call_init(&mut *store)
                .await
        })
    }

    /// `run`: starts (and possibly finishes) a measurement.
    pub async fn run(&self, ctx: &AnalysisContext) -> Result<Measurement, CallError> {
        call_export!(
            self,
            "run",
            self.analysis_target(ctx),
            validate_measurement,
            |p, store| {
                p.sluice_plugin_metric_provider()
                    .call_run(&mut *store, ctx)
                    .await
            }
        )
    }

    /// `resume`: continues a running measurement.
    pub async fn resume(
        &self,
        ctx: &AnalysisContext,
        current: &Measurement,
    ) -> Result<Measurement, CallError> {
        call_export!(
            self,
            "resume",
            self.analysis_target(ctx),
            validate_measurement,
            |p, store| {
                p.sluice_plugin_metric_provider()
                    .call_resume(&mut *store, ctx, current)
                    .await
            }
        )
    }

    /// `terminate`: stops a running measurement.
    pub async fn terminate(
        &self,
        ctx: &AnalysisContext,
        current: &Measurement,
    ) -> Result<Measurement, CallError> {
        call_export!(
            self,
            "terminate",
            self.analysis_target(ctx),
            validate_measurement,
            |p, store| {
                p.sluice_plugin_metric_provider()
                    .call_terminate(&mut *store, ctx, current)
                    .await
            }
        )
    }

    /// `garbage-collect`: keeps the newest `limit` measurements' external state.
    pub async fn garbage_collect(
        &self,
        ctx: &AnalysisContext,
        limit: u32,
    ) -> Result<(), CallError> {
        call_export!(
            self,
            "garbage-collect",
            self.analysis_target(ctx),
            accept,
            |p, store| {
                p.sluice_plugin_metric_provider()
                    .call_garbage_collect(&mut *store, ctx, limit)
                    .await
            }
        )
    }

    /// `get-metadata`.
    pub async fn get_metadata(
        &self,
        ctx: &AnalysisContext,
    ) -> Result<Vec<(String, String)>, CallError> {
        call_export!(
            self,
            "get-metadata",
            self.analysis_target(ctx),
            validate_metadata,
            |p, store| {
                p.sluice_plugin_metric_provider()
                    .call_get_metadata(&mut *store, ctx)
                    .await
                    .map(Ok)
            }
        )
    }
}

/// A loaded step plugin; cheap to clone. Every call gets a fresh instance.
#[derive(Clone)]
pub struct StepPlugin {
    core: CallCore,
    pre: StepPluginPre<HostState>,
}

impl StepPlugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.core.shared.name
    }

    /// The target of a call about a Rollout step: HTTP access to the origins the grants take
    /// from the step's `plugin-config`.
    fn step_target<'a>(&self, ctx: &'a StepContext) -> CallTarget<'a> {
        CallTarget::configured(
            &self.core.shared.grants,
            &ctx.namespace,
            &ctx.name,
            &ctx.plugin_config,
            Arc::from([]),
        )
    }

    /// `plugin-type`.
    pub async fn plugin_type(&self) -> Result<String, CallError> {
        call_export!(
            self,
            "plugin-type",
            CallTarget::default(),
            validate_plugin_type,
            |p, store| {
                p.sluice_plugin_step()
                    .call_plugin_type(&mut *store)
                    .await
                    .map(Ok)
            }
        )
    }

    /// `init`.
    pub async fn init(&self) -> Result<(), CallError> {
        call_export!(self, "init", CallTarget::default(), accept, |p, store| {
            p.sluice_plugin_step().call_init(&mut *store).await
        })
    }

    /// `run`: carries out (or polls) the step.
    pub async fn run(&self, ctx: &StepContext) -> Result<StepResult, CallError> {
        call_export!(
            self,
            "run",
            self.step_target(ctx),
            validate_step_result,
            |p, store| p.sluice_plugin_step().call_run(&mut *store, ctx).await
        )
    }

    /// `terminate`: stops a running step because the Rollout was fully promoted.
    pub async fn terminate(&self, ctx: &StepContext) -> Result<StepResult, CallError> {
        call_export!(
            self,
            "terminate",
            self.step_target(ctx),
            validate_step_result,
            |p, store| p
                .sluice_plugin_step()
                .call_terminate(&mut *store, ctx)
                .await
        )
    }

    /// `abort`: undoes a step because the Rollout was aborted.
    pub async fn abort(&self, ctx: &StepContext) -> Result<StepResult, CallError> {
        call_export!(
            self,
            "abort",
            self.step_target(ctx),
            validate_step_result,
            |p, store| p.sluice_plugin_step().call_abort(&mut *store, ctx).await
        )
    }
}

/// Largest `status` a step result may carry: it is stored in the Rollout's status.
const MAX_STEP_STATUS: usize = 64 << 10;

fn validate_step_result(result: StepResult) -> Result<StepResult, String> {
    if result.message.len() > MAX_MEASUREMENT_TEXT {
        return Err(format!("message longer than {MAX_MEASUREMENT_TEXT} bytes"));
    }
    if result.status.len() > MAX_STEP_STATUS {
        return Err(format!("status longer than {MAX_STEP_STATUS} bytes"));
    }
    if !result.status.is_empty()
        && let Err(error) = serde_json::from_str::<serde_json::Value>(&result.status)
    {
        return Err(format!("status is not JSON: {error}"));
    }
    Ok(result)
}

/// A compiled component, reusable for any number of plugin loads on the same engine.
#[derive(Clone)]
pub struct CompiledComponent {
    component: wasmtime::component::Component,
    digest: String,
}

impl CompiledComponent {
    /// sha256 of the component bytes, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

impl std::fmt::Debug for CompiledComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledComponent")
            .field("digest", &self.digest)
            .finish()
    }
}

impl PluginEngine {
    /// Compiles component bytes on the engine's compile thread.
    pub async fn compile_component(&self, wasm: Arc<[u8]>) -> Result<CompiledComponent, LoadError> {
        let digest = crate::loader::sha256_hex(&wasm);
        Ok(CompiledComponent {
            component: self.compile(wasm).await?,
            digest,
        })
    }

    /// Links and verifies a compiled plugin (calls `plugin-type` and `init`).
    pub async fn load_plugin(
        &self,
        spec: PluginSpec,
        compiled: &CompiledComponent,
        services: HostServices,
        metrics: PluginMetrics,
    ) -> Result<Plugin, LoadError> {
        self.instantiate_plugin(
            spec,
            &compiled.component,
            compiled.digest.clone(),
            services,
            metrics,
        )
        .await
    }

    pub(crate) async fn instantiate_plugin(
        &self,
        spec: PluginSpec,
        component: &wasmtime::component::Component,
        digest: String,
        services: HostServices,
        metrics: PluginMetrics,
    ) -> Result<Plugin, LoadError> {
        let ceiling = self.inner.options.max_memory_bytes;
        if spec.limits.memory_bytes > ceiling {
            return Err(LoadError::LimitTooLarge {
                requested: spec.limits.memory_bytes,
                ceiling,
            });
        }
        let pre: InstancePre<HostState> = self.link(spec.kind, component)?;
        let mut args = vec![spec.name.clone()];
        args.extend(spec.args.iter().cloned());
        let shared = Arc::new(PluginShared {
            field_manager: format!("sluice-plugin/{}", spec.name),
            name: spec.name.clone(),
            grants: spec.grants.clone(),
            limits: spec.limits.clone(),
            args,
            services,
            metrics,
            digest,
        });
        let core = CallCore {
            engine: self.clone(),
            shared,
            plugin_type: String::new(),
        };
        let link_error = |e: wasmtime::Error| LoadError::Link {
            reason: format!("{e:#}"),
        };
        // Checks `plugin-type` against the spec and calls `init`.
        macro_rules! verified {
            ($plugin:expr) => {{
                let mut plugin = $plugin;
                let plugin_type = plugin
                    .plugin_type()
                    .await
                    .map_err(LoadError::Verification)?;
                check_type(&spec, &plugin_type)?;
                plugin.init().await.map_err(LoadError::Verification)?;
                plugin.core.plugin_type = plugin_type;
                plugin
            }};
        }
        Ok(match spec.kind {
            PluginKind::TrafficRouter => Plugin::TrafficRouter(verified!(TrafficRouter {
                core,
                pre: TrafficRouterPluginPre::new(pre).map_err(link_error)?,
            })),
            PluginKind::MetricProvider => Plugin::MetricProvider(verified!(MetricProvider {
                core,
                pre: MetricProviderPluginPre::new(pre).map_err(link_error)?,
                secrets: Arc::from([]),
            })),
            PluginKind::Step => Plugin::Step(verified!(StepPlugin {
                core,
                pre: StepPluginPre::new(pre).map_err(link_error)?,
            })),
        })
    }
}

fn check_type(spec: &PluginSpec, actual: &str) -> Result<(), LoadError> {
    match &spec.expected_type {
        Some(expected) if expected != actual => Err(LoadError::WrongPluginType {
            expected: expected.clone(),
            actual: actual.to_owned(),
        }),
        _ => Ok(()),
    }
}
