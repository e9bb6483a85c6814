//! The process-wide wasmtime engine: configuration, epoch ticker, linkers, compilation and
//! world checks.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{wit_kube, wit_log};
use crate::error::LoadError;
use crate::host::HostState;
use crate::plugin::PluginKind;

/// How instances get their memory, tables and stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceAllocator {
    /// Pre-reserved slots: fastest instantiation (the default).
    Pooling,
    /// Allocate per instance: smallest virtual-memory footprint.
    OnDemand,
}

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Requested allocator; pooling falls back to on-demand when memory cannot be reserved.
    pub allocator: InstanceAllocator,
    /// Concurrent plugin calls (pool size); further calls wait for a free slot.
    pub max_concurrent_calls: u32,
    /// Ceiling of any plugin's memory limit, in bytes (the pooled memory slot size).
    pub max_memory_bytes: u64,
    /// Epoch tick: the granularity of CPU budgets and of yielding to the async runtime.
    pub epoch_tick: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            allocator: InstanceAllocator::Pooling,
            max_concurrent_calls: 32,
            max_memory_bytes: 256 << 20,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// The engine could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the plugin engine: {0}")]
pub struct EngineError(String);

/// One wasmtime engine with its linkers and call slots; cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) inner: Arc<EngineInner>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("options", &self.inner.options)
            .field("allocator", &self.inner.allocator)
            .finish()
    }
}

pub(crate) struct EngineInner {
    pub(crate) engine: Engine,
    /// Jobs of the compile thread, which ends when this sender is dropped with the engine.
    compiler: std::sync::mpsc::Sender<CompileJob>,
    router_linker: Linker<HostState>,
    http_linker: Linker<HostState>,
    pub(crate) permits: tokio::sync::Semaphore,
    pub(crate) options: EngineOptions,
    allocator: InstanceAllocator,
}

/// Bytes of each pooled linear memory kept resident between instances (reset in place).
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// Idle pooled slots kept warm (resident, with their module's image).
const WARM_SLOTS: u32 = 8;

fn config(options: &EngineOptions, allocator: InstanceAllocator) -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 << 10)
        .memory_init_cow(true)
        // Compilation runs on the one compile thread: Cranelift's worker threads would each
        // leave a malloc arena of freed compiler memory behind for the life of the process.
        .parallel_compilation(false)
        // Plugins use the synchronous-style WASI 0.2 interfaces; the component-model-async
        // machinery would only add per-Store setup to every call.
        .concurrency_support(false);
    if allocator == InstanceAllocator::Pooling {
        let slots = options.max_concurrent_calls;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 8)
            .total_stacks(slots)
            .max_memories_per_module(2)
            .max_tables_per_module(2)
            .max_memory_size(usize::try_from(options.max_memory_bytes).unwrap_or(usize::MAX))
            // Reset only the pages an instance dirtied (PAGEMAP_SCAN, Linux ≥ 6.7), keeping
            // them resident: the next instance in the slot takes no page faults for them.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            // Bounds what idle slots keep resident: at most this many × KEEP_RESIDENT_BYTES.
            .max_unused_warm_slots(WARM_SLOTS)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

fn linkers(engine: &Engine) -> wasmtime::Result<(Linker<HostState>, Linker<HostState>)> {
    let mut router = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut router)?;
    wit_log::add_to_linker::<HostState, HasSelf<HostState>>(&mut router, |state| state)?;
    wit_kube::add_to_linker::<HostState, HasSelf<HostState>>(&mut router, |state| state)?;
    let mut provider = router.clone();
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut provider)?;
    Ok((router, provider))
}

/// Interfaces (without version) the host provides to every plugin.
const COMMON_IMPORTS: &[&str] = &["sluice:host/log", "sluice:host/kube", "sluice:plugin/types"];
/// WASI packages linked for every plugin (capabilities inside them are denied by the context).
const WASI_PACKAGES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];
/// Interfaces only plugins that may use HTTP (metric providers, step plugins) get.
const HTTP_IMPORTS: &[&str] = &["wasi:http/types", "wasi:http/outgoing-handler"];

fn provided(kind: PluginKind, import: &str) -> bool {
    let base = import.split('@').next().unwrap_or(import);
    COMMON_IMPORTS.contains(&base)
        || WASI_PACKAGES.iter().any(|p| base.starts_with(p))
        || (kind.uses_http() && HTTP_IMPORTS.contains(&base))
}

impl PluginEngine {
    /// Creates the engine and starts its epoch ticker thread (which ends with the engine).
    pub fn new(options: EngineOptions) -> Result<Self, EngineError> {
        let (engine, allocator) = match options.allocator {
            InstanceAllocator::Pooling => {
                match Engine::new(&config(&options, InstanceAllocator::Pooling)) {
                    Ok(engine) => (engine, InstanceAllocator::Pooling),
                    Err(error) => {
                        tracing::warn!(%error, "pooling allocator unavailable; falling back to on-demand allocation");
                        let engine = Engine::new(&config(&options, InstanceAllocator::OnDemand))
                            .map_err(|e| EngineError(e.to_string()))?;
                        (engine, InstanceAllocator::OnDemand)
                    }
                }
            }
            InstanceAllocator::OnDemand => (
                Engine::new(&config(&options, InstanceAllocator::OnDemand))
                    .map_err(|e| EngineError(e.to_string()))?,
                InstanceAllocator::OnDemand,
            ),
        };
        let (router_linker, http_linker) =
            linkers(&engine).map_err(|e| EngineError(e.to_string()))?;
        spawn_ticker(&engine, options.epoch_tick)?;
        let compiler = spawn_compiler()?;
        let permits = tokio::sync::Semaphore::new(options.max_concurrent_calls as usize);
        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                compiler,
                router_linker,
                http_linker,
                permits,
                options,
                allocator,
            }),
        })
    }

    /// The allocator actually in use.
    pub fn allocator(&self) -> InstanceAllocator {
        self.inner.allocator
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
    }

    /// Compiles component bytes on the engine's compile thread, off the async runtime. Compiles
    /// run one at a time, so the compiler's scratch memory is reused rather than spread over
    /// threads.
    pub(crate) async fn compile(
        &self,
        bytes: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<Component, LoadError> {
        let engine = self.inner.engine.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        let job: CompileJob = Box::new(move || {
            done.send(Component::new(&engine, bytes.as_ref())).ok();
        });
        let lost = |reason: &str| LoadError::Compile {
            reason: reason.to_owned(),
        };
        self.inner
            .compiler
            .send(job)
            .map_err(|_| lost("the compile thread has stopped"))?;
        result
            .await
            .map_err(|_| lost("the compile thread stopped while compiling"))?
            .map_err(|e| LoadError::Compile {
                reason: format!("{e:#}"),
            })
    }

    /// Checks exports and imports against the world of `kind`, then pre-links the component.
    pub(crate) fn link(
        &self,
        kind: PluginKind,
        component: &Component,
    ) -> Result<wasmtime::component::InstancePre<HostState>, LoadError> {
        let engine = &self.inner.engine;
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let expected_export = kind.interface();
        if !exports
            .iter()
            .any(|e| e.split('@').next() == Some(expected_export))
        {
            return Err(LoadError::WrongWorld {
                expected: kind.world(),
                exports: exports.join(", "),
            });
        }
        let imports: Vec<String> = ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let missing: Vec<&str> = imports
            .iter()
            .map(String::as_str)
            .filter(|i| !provided(kind, i))
            .collect();
        if !missing.is_empty() {
            return Err(LoadError::MissingImport {
                import: missing.join(", "),
                world: kind.world(),
            });
        }
        tracing::debug!(world = kind.world(), imports = ?imports, "plugin imports");
        let linker = match kind {
            PluginKind::TrafficRouter => &self.inner.router_linker,
            PluginKind::MetricProvider | PluginKind::Step => &self.inner.http_linker,
        };
        linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link {
                reason: format!("{e:#}"),
            })
    }
}

/// One compilation, run on the compile thread.
type CompileJob = Box<dyn FnOnce() + Send>;

/// Starts the compile thread; it runs jobs in order and ends when the sender is dropped.
fn spawn_compiler() -> Result<std::sync::mpsc::Sender<CompileJob>, EngineError> {
    let (jobs, received) = std::sync::mpsc::channel::<CompileJob>();
    std::thread::Builder::new()
        .name("sluice-compile".into())
        .spawn(move || {
            for job in received {
                job();
            }
        })
        .map(|_| jobs)
        .map_err(|e| EngineError(format!("cannot start the compile thread: {e}")))
}

/// Starts the ticker thread. It holds only a weak reference, so it ends with the engine.
/// Without it guests would never be interrupted, so failing to start it is an engine error.
fn spawn_ticker(engine: &Engine, tick: Duration) -> Result<(), EngineError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("sluice-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(drop)
        .map_err(|e| EngineError(format!("cannot start the epoch ticker: {e}")))
}
