//! The plugin registry: loads the configured plugins, reloads on config change without a
//! restart, and hands out plugin handles. A plugin that fails never affects the others.
//!
//! Built-in plugins are compiled on their first use rather than when configured: a controller
//! whose Rollouts use one router and one provider never compiles the other built-ins (each
//! compiled component costs megabytes of memory). Plugins from files and URLs are fetched,
//! compiled and verified when configured, so a wrong location or digest shows at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::OnceCell;
use wasmtime::component::Component;

use crate::config::{PluginConfig, PluginEntry, PluginLocation};
use crate::engine::PluginEngine;
use crate::error::{CallError, LoadError};
use crate::host::HostServices;
use crate::loader::{FetchOptions, Fetcher};
use crate::metrics::PluginMetrics;
use crate::plugin::{MetricProvider, Plugin, PluginKind, StepPlugin, TrafficRouter};

/// The state of one configured plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginStatus {
    /// Configured, not loaded yet: a built-in is compiled and verified on its first use.
    Configured,
    /// Loaded and verified; calls go to this version.
    Ready {
        /// sha256 of the component.
        digest: String,
        /// What `plugin-type` returned.
        plugin_type: String,
    },
    /// The last load failed.
    Failed {
        /// Why (a [`LoadError`] or configuration message).
        reason: String,
        /// Digest of the previous version that keeps serving, if any.
        serving_previous: Option<String>,
    },
    /// Disabled in the configuration (step plugins): not loaded; its steps count as complete.
    Disabled,
}

struct Slot {
    entry: Option<PluginEntry>,
    kind: PluginKind,
    status: PluginStatus,
    plugin: Option<Plugin>,
    /// Set while [`PluginStatus::Configured`]: the first use loads the plugin through it, and
    /// concurrent first uses wait for that one load.
    first_load: Option<Arc<OnceCell<()>>>,
}

impl Slot {
    fn new(entry: Option<PluginEntry>, kind: PluginKind, status: PluginStatus) -> Self {
        Self {
            entry,
            kind,
            status,
            plugin: None,
            first_load: None,
        }
    }
}

/// What a use of a plugin finds in its slot.
enum Found {
    Loaded(Plugin),
    NotLoadedYet(PluginEntry, Arc<OnceCell<()>>),
}

/// Loaded plugins by name; cheap to share behind an `Arc`.
pub struct PluginRegistry {
    engine: PluginEngine,
    services: HostServices,
    metrics: PluginMetrics,
    fetcher: Fetcher,
    slots: RwLock<HashMap<String, Slot>>,
    components: tokio::sync::Mutex<HashMap<String, Component>>,
    /// Serializes `apply` calls.
    applying: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRegistry")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl PluginRegistry {
    /// Creates an empty registry. `builtins` maps `builtin:NAME` names to embedded components.
    pub fn new(
        engine: PluginEngine,
        services: HostServices,
        metrics: PluginMetrics,
        builtins: BTreeMap<String, Bytes>,
        fetch: FetchOptions,
    ) -> Self {
        Self {
            engine,
            services,
            metrics,
            fetcher: Fetcher::new(builtins, fetch),
            slots: RwLock::new(HashMap::new()),
            components: tokio::sync::Mutex::new(HashMap::new()),
            applying: tokio::sync::Mutex::new(()),
        }
    }

    /// Applies a configuration: loads new and changed plugins, drops removed ones, and swaps
    /// them in by name. In-flight calls finish on the instance they started with. A plugin
    /// that fails to load keeps serving its previous version (if any) and is reported.
    ///
    /// A built-in that is not loaded now is only checked to exist and left
    /// [`PluginStatus::Configured`]: its first use loads it. A loaded built-in whose entry
    /// changes is reloaded here, like any other plugin.
    pub async fn apply(&self, config: &PluginConfig) -> BTreeMap<String, PluginStatus> {
        let _guard = self.applying.lock().await;
        let mut loaded: Vec<(String, Slot)> = Vec::new();
        for entry in &config.entries {
            let name = entry.spec.name.clone();
            let (unchanged, serving) = self.read_slots(|slots| {
                slots.get(&name).map_or((false, false), |slot| {
                    let unchanged = slot.entry.as_ref() == Some(entry)
                        && matches!(
                            slot.status,
                            PluginStatus::Ready { .. } | PluginStatus::Configured
                        );
                    (unchanged, slot.plugin.is_some())
                })
            });
            if unchanged && pinned(entry) {
                continue;
            }
            let slot = if entry.disabled {
                Slot::new(Some(entry.clone()), entry.spec.kind, PluginStatus::Disabled)
            } else if entry.loads_on_first_use() && !serving {
                self.configured_slot(entry)
            } else {
                self.loaded_slot(entry).await
            };
            loaded.push((name, slot));
        }
        let invalid: Vec<(String, Slot)> = config
            .invalid
            .iter()
            .map(|invalid| {
                tracing::error!(plugin = %invalid.name, reason = %invalid.reason, "invalid plugin configuration");
                self.metrics.load_failure(&invalid.name);
                (invalid.name.clone(), self.failed_slot(&invalid.name, invalid.kind, None, invalid.reason.clone()))
            })
            .collect();
        {
            let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
            let configured: std::collections::HashSet<&str> = config
                .entries
                .iter()
                .map(|e| e.spec.name.as_str())
                .chain(config.invalid.iter().map(|i| i.name.as_str()))
                .collect();
            slots.retain(|name, _| configured.contains(name.as_str()));
            slots.extend(loaded.into_iter().chain(invalid));
        }
        self.prune_components().await;
        self.status()
    }

    /// The status of every configured plugin.
    pub fn status(&self) -> BTreeMap<String, PluginStatus> {
        self.read_slots(|slots| {
            slots
                .iter()
                .map(|(name, slot)| (name.clone(), slot.status.clone()))
                .collect()
        })
    }

    /// The traffic router named `name` (loaded now if this is its first use).
    pub async fn traffic_router(&self, name: &str) -> Result<TrafficRouter, CallError> {
        match self.plugin(name, PluginKind::TrafficRouter).await? {
            Plugin::TrafficRouter(router) => Ok(router),
            _ => Err(wrong_kind(name, PluginKind::TrafficRouter)),
        }
    }

    /// The metric provider named `name` (loaded now if this is its first use).
    pub async fn metric_provider(&self, name: &str) -> Result<MetricProvider, CallError> {
        match self.plugin(name, PluginKind::MetricProvider).await? {
            Plugin::MetricProvider(provider) => Ok(provider),
            _ => Err(wrong_kind(name, PluginKind::MetricProvider)),
        }
    }

    /// The step plugin named `name` ([`CallError::Disabled`] when it is disabled; loaded now if
    /// this is its first use).
    pub async fn step_plugin(&self, name: &str) -> Result<StepPlugin, CallError> {
        match self.plugin(name, PluginKind::Step).await? {
            Plugin::Step(step) => Ok(step),
            _ => Err(wrong_kind(name, PluginKind::Step)),
        }
    }

    /// The metrics of this registry's plugins.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    /// The plugin named `name`, loading it if it is configured but not loaded yet. Concurrent
    /// first uses share one load; a load that fails leaves the plugin
    /// [`PluginStatus::Failed`], and this use and later ones get the reason.
    async fn plugin(&self, name: &str, kind: PluginKind) -> Result<Plugin, CallError> {
        loop {
            match self.find(name, kind)? {
                Found::Loaded(plugin) => return Ok(plugin),
                Found::NotLoadedYet(entry, first_load) => {
                    first_load
                        .get_or_init(|| self.load_on_first_use(&entry, &first_load))
                        .await;
                }
            }
        }
    }

    /// Loads a configured plugin and stores the result in its slot, unless a new configuration
    /// replaced the slot meanwhile (the next look-up then finds the new one).
    async fn load_on_first_use(&self, entry: &PluginEntry, first_load: &Arc<OnceCell<()>>) {
        let name = &entry.spec.name;
        tracing::info!(plugin = %name, "loading the plugin on its first use");
        let slot = self.loaded_slot(entry).await;
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = slots.get_mut(name)
            && current
                .first_load
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, first_load))
        {
            *current = slot;
        }
    }

    fn find(&self, name: &str, kind: PluginKind) -> Result<Found, CallError> {
        self.read_slots(|slots| match slots.get(name) {
            Some(Slot {
                plugin: Some(plugin),
                ..
            }) => Ok(Found::Loaded(plugin.clone())),
            Some(Slot {
                entry: Some(entry),
                first_load: Some(first_load),
                kind: configured,
                ..
            }) => {
                if *configured == kind {
                    Ok(Found::NotLoadedYet(entry.clone(), first_load.clone()))
                } else {
                    Err(wrong_kind(name, kind))
                }
            }
            Some(Slot {
                status: PluginStatus::Disabled,
                kind: PluginKind::Step,
                ..
            }) if kind == PluginKind::Step => Err(CallError::Disabled {
                plugin: name.to_owned(),
            }),
            Some(Slot {
                status: PluginStatus::Failed { reason, .. },
                ..
            }) => Err(CallError::Load {
                plugin: name.to_owned(),
                reason: reason.clone(),
            }),
            _ => Err(CallError::Load {
                plugin: name.to_owned(),
                reason: format!("no {} plugin with this name is configured", kind.label()),
            }),
        })
    }

    fn read_slots<R>(&self, f: impl FnOnce(&HashMap<String, Slot>) -> R) -> R {
        f(&self.slots.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The slot of a plugin left to load on its first use; a built-in that does not exist
    /// fails now.
    fn configured_slot(&self, entry: &PluginEntry) -> Slot {
        if let PluginLocation::Builtin(name) = &entry.location
            && let Err(error) = self.fetcher.builtin(name)
        {
            return self.load_failed(entry, &error);
        }
        Slot {
            first_load: Some(Arc::default()),
            ..Slot::new(
                Some(entry.clone()),
                entry.spec.kind,
                PluginStatus::Configured,
            )
        }
    }

    /// Loads `entry` now: a ready slot, or a failed one (logged and counted).
    async fn loaded_slot(&self, entry: &PluginEntry) -> Slot {
        let name = &entry.spec.name;
        match self.load(entry).await {
            Ok(plugin) => {
                tracing::info!(plugin = %name, digest = plugin.digest(), plugin_type = plugin.plugin_type(), "plugin loaded");
                let status = PluginStatus::Ready {
                    digest: plugin.digest().to_owned(),
                    plugin_type: plugin.plugin_type().to_owned(),
                };
                Slot {
                    plugin: Some(plugin),
                    ..Slot::new(Some(entry.clone()), entry.spec.kind, status)
                }
            }
            Err(error) => self.load_failed(entry, &error),
        }
    }

    /// The slot of an entry that failed to load (logged and counted).
    fn load_failed(&self, entry: &PluginEntry, error: &LoadError) -> Slot {
        let name = &entry.spec.name;
        tracing::error!(plugin = %name, location = %entry.location, %error, "plugin failed to load");
        self.metrics.load_failure(name);
        self.failed_slot(
            name,
            entry.spec.kind,
            Some(entry.clone()),
            error.to_string(),
        )
    }

    /// A failed slot that keeps the previous plugin of the same kind serving, if there is one.
    fn failed_slot(
        &self,
        name: &str,
        kind: PluginKind,
        entry: Option<PluginEntry>,
        reason: String,
    ) -> Slot {
        let previous = self.read_slots(|slots| {
            slots
                .get(name)
                .filter(|slot| slot.kind == kind)
                .and_then(|slot| slot.plugin.clone())
        });
        let status = PluginStatus::Failed {
            reason,
            serving_previous: previous.as_ref().map(|p| p.digest().to_owned()),
        };
        Slot {
            plugin: previous,
            ..Slot::new(entry, kind, status)
        }
    }

    async fn load(&self, entry: &PluginEntry) -> Result<Plugin, LoadError> {
        let (bytes, digest) = self
            .fetcher
            .fetch(&entry.location, entry.sha256.as_deref())
            .await?;
        let component = {
            let mut components = self.components.lock().await;
            match components.get(&digest) {
                Some(component) => component.clone(),
                None => {
                    let component = self.engine.compile(bytes).await?;
                    self.metrics.compilation(&entry.spec.name);
                    components.insert(digest.clone(), component.clone());
                    component
                }
            }
        };
        self.engine
            .instantiate_plugin(
                entry.spec.clone(),
                &component,
                digest,
                self.services.clone(),
                self.metrics.clone(),
            )
            .await
    }

    /// Drops compiled components no plugin uses any more.
    async fn prune_components(&self) {
        let in_use: std::collections::HashSet<String> = self.read_slots(|slots| {
            slots
                .values()
                .filter_map(|s| s.plugin.as_ref().map(|p| p.digest().to_owned()))
                .collect()
        });
        self.components
            .lock()
            .await
            .retain(|digest, _| in_use.contains(digest));
    }
}

/// Whether an entry always yields the same bytes (so an unchanged entry needs no reload).
/// Files without a sha256 are re-read on every apply; unchanged bytes reuse the compiled component.
fn pinned(entry: &PluginEntry) -> bool {
    entry.sha256.is_some() || matches!(entry.location, PluginLocation::Builtin(_))
}

fn wrong_kind(name: &str, wanted: PluginKind) -> CallError {
    CallError::Load {
        plugin: name.to_owned(),
        reason: format!("configured, but not as a {} plugin", wanted.label()),
    }
}
