//! Host side of a plugin call: the store data, capability checks and the backends behind them.

pub mod http;
pub mod kube;
pub mod kube_client;
mod log;
mod output;

use std::sync::Arc;

use serde::Serialize;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::grants::Grants;
use crate::limits::{Limits, MemoryLimiter};
use crate::metrics::PluginMetrics;

pub use self::log::{LogLevel, LogRecord};
use self::output::CapturedOutput;

/// The capability backends and observer shared by the plugins of one registry.
#[derive(Clone)]
pub struct HostServices {
    /// Kubernetes access (a real client in the controller, in-memory in the testkit).
    pub kube: Arc<dyn kube::KubeBackend>,
    /// Outbound HTTP (real in the controller, scripted in the testkit).
    pub http: Arc<dyn http::HttpBackend>,
    /// Sees every host call and log record (the testkit records them).
    pub observer: Option<Arc<dyn HostObserver>>,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices")
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// The capability a host call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `sluice:host/kube`.
    Kube,
    /// `wasi:http/outgoing-handler`.
    Http,
}

impl Capability {
    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kube => "kube",
            Self::Http => "http",
        }
    }
}

/// One host call as seen by the host: what the plugin asked and what it got back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exchange {
    /// The plugin.
    pub plugin: String,
    /// The plugin method during which the call happened.
    pub method: &'static str,
    /// The capability.
    pub capability: Capability,
    /// The request, e.g. `{"verb": "get", "apiVersion": "v1", "kind": "ConfigMap", …}`.
    pub request: serde_json::Value,
    /// The response: `{"ok": …}` or `{"error": {"kind": …, "message": …}}`.
    pub response: serde_json::Value,
}

/// Receives every host call and log record of the plugins it is installed for.
pub trait HostObserver: Send + Sync {
    /// Called after each host call (including denied ones).
    fn exchange(&self, exchange: Exchange);
    /// Called for each kept log record (including captured stdout/stderr lines).
    fn log(&self, record: LogRecord);
}

/// What one call is about; shared by the capability implementations of its store.
pub(crate) struct CallScope {
    pub(crate) plugin: Arc<PluginShared>,
    pub(crate) method: &'static str,
    /// Namespace of the Rollout or AnalysisRun; the default namespace of kube grants.
    pub(crate) namespace: Option<String>,
    /// HTTP access of this call beyond the plugin's grants.
    pub(crate) access: http::CallAccess,
    pub(crate) span: tracing::Span,
}

/// Everything about a loaded plugin that calls need.
pub(crate) struct PluginShared {
    pub(crate) name: String,
    pub(crate) grants: Grants,
    pub(crate) limits: Limits,
    pub(crate) args: Vec<String>,
    pub(crate) services: HostServices,
    pub(crate) metrics: PluginMetrics,
    pub(crate) digest: String,
    /// Server-side-apply field manager for this plugin.
    pub(crate) field_manager: String,
}

impl CallScope {
    /// Records a denied capability request: error log, metric, observer.
    pub(crate) fn deny(
        &self,
        denials: &mut Vec<String>,
        capability: Capability,
        request: serde_json::Value,
        message: String,
    ) {
        self.span.in_scope(|| {
            tracing::error!(
                target: "plugin_capability",
                capability = capability.as_str(),
                "{message}; the violation has been reported"
            );
        });
        self.plugin.metrics.denial(&self.plugin.name, capability);
        self.observe(
            capability,
            request,
            serde_json::json!({"error": {"kind": "access-denied", "message": message}}),
        );
        denials.push(message);
    }

    pub(crate) fn observe(
        &self,
        capability: Capability,
        request: serde_json::Value,
        response: serde_json::Value,
    ) {
        if let Some(observer) = &self.plugin.services.observer {
            let response = self.access.conceal_json(response);
            observer.exchange(Exchange {
                plugin: self.plugin.name.clone(),
                method: self.method,
                capability,
                request,
                response,
            });
        }
    }
}

/// The data of one call's `Store`.
pub(crate) struct HostState {
    pub(crate) scope: Arc<CallScope>,
    wasi: WasiCtx,
    table: ResourceTable,
    http_ctx: WasiHttpCtx,
    pub(crate) hooks: http::HttpHooks,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) cpu_ticks_left: u64,
    pub(crate) cpu_exhausted: bool,
    pub(crate) logs: log::LogBudget,
    /// Messages of denied kube requests during this call.
    pub(crate) denials: Vec<String>,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

/// Bytes of stdout and stderr kept per call.
const CAPTURED_OUTPUT_BYTES: usize = 64 << 10;

impl HostState {
    pub(crate) fn new(scope: Arc<CallScope>, cpu_ticks: u64) -> Self {
        let limits = &scope.plugin.limits;
        let stdout = CapturedOutput::new(CAPTURED_OUTPUT_BYTES);
        let stderr = CapturedOutput::new(CAPTURED_OUTPUT_BYTES);
        // No preopens, no environment, no network: only args, a clock, randomness and captured stdio.
        let wasi = WasiCtx::builder()
            .args(&scope.plugin.args)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            hooks: http::HttpHooks::new(scope.clone()),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            cpu_ticks_left: cpu_ticks,
            cpu_exhausted: false,
            logs: log::LogBudget::new(limits.log_records_per_call),
            denials: Vec::new(),
            wasi,
            table: ResourceTable::new(),
            http_ctx: WasiHttpCtx::new(),
            stdout,
            stderr,
            scope,
        }
    }

    /// Forwards captured stdout/stderr to the log, line by line, within the log budget.
    pub(crate) fn flush_output(&mut self) {
        for (stream, pipe) in [
            ("stdout", self.stdout.clone()),
            ("stderr", self.stderr.clone()),
        ] {
            let (text, truncated) = pipe.take();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.emit_log(
                    LogLevel::Info,
                    line.to_owned(),
                    vec![("stream".into(), stream.into())],
                );
            }
            if truncated {
                self.emit_log(
                    LogLevel::Warn,
                    format!("{stream} truncated at {CAPTURED_OUTPUT_BYTES} bytes"),
                    Vec::new(),
                );
            }
        }
        self.logs.report_dropped(&self.scope);
    }

    /// All denials of this call (kube and HTTP).
    pub(crate) fn all_denials(&self) -> Vec<String> {
        self.denials
            .iter()
            .chain(self.hooks.denials())
            .cloned()
            .collect()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
