//! The plugin registry: loads the configured plugins, reloads on config change without a
//! restart, and hands out plugin handles. A plugin that fails never affects the others.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use wasmtime::component::Component;

use crate::config::{PluginConfig, PluginEntry};
use crate::engine::PluginEngine;
use crate::error::{CallError, LoadError};
use crate::host::HostServices;
use crate::loader::{FetchOptions, Fetcher};
use crate::metrics::PluginMetrics;
use crate::plugin::{MetricProvider, Plugin, PluginKind, StepPlugin, TrafficRouter};

/// The state of one configured plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginStatus {
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
        builtins: BTreeMap<String, Arc<[u8]>>,
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
    pub async fn apply(&self, config: &PluginConfig) -> BTreeMap<String, PluginStatus> {
        let _guard = self.applying.lock().await;
        let mut loaded: Vec<(String, Slot)> = Vec::new();
        for entry in &config.entries {
            let name = entry.spec.name.clone();
            let unchanged = self.read_slots(|slots| {
                slots.get(&name).is_some_and(|slot| {
                    slot.entry.as_ref() == Some(entry)
                        && matches!(slot.status, PluginStatus::Ready { .. })
                })
            }) && pinned(entry);
            if unchanged {
                continue;
            }
            if entry.disabled {
                loaded.push((
                    name,
                    Slot {
                        entry: Some(entry.clone()),
                        kind: entry.spec.kind,
                        status: PluginStatus::Disabled,
                        plugin: None,
                    },
                ));
                continue;
            }
            let slot = match self.load(entry).await {
                Ok(plugin) => {
                    tracing::info!(plugin = %name, digest = plugin.digest(), plugin_type = plugin.plugin_type(), "plugin loaded");
                    Slot {
                        entry: Some(entry.clone()),
                        kind: entry.spec.kind,
                        status: PluginStatus::Ready {
                            digest: plugin.digest().to_owned(),
                            plugin_type: plugin.plugin_type().to_owned(),
                        },
                        plugin: Some(plugin),
                    }
                }
                Err(error) => {
                    tracing::error!(plugin = %name, location = %entry.location, %error, "plugin failed to load");
                    self.metrics.load_failure(&name);
                    self.failed_slot(
                        &name,
                        entry.spec.kind,
                        Some(entry.clone()),
                        error.to_string(),
                    )
                }
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

    /// The traffic router named `name`.
    pub fn traffic_router(&self, name: &str) -> Result<TrafficRouter, CallError> {
        match self.plugin(name, PluginKind::TrafficRouter)? {
            Plugin::TrafficRouter(router) => Ok(router),
            _ => Err(wrong_kind(name, PluginKind::TrafficRouter)),
        }
    }

    /// The metric provider named `name`.
    pub fn metric_provider(&self, name: &str) -> Result<MetricProvider, CallError> {
        match self.plugin(name, PluginKind::MetricProvider)? {
            Plugin::MetricProvider(provider) => Ok(provider),
            _ => Err(wrong_kind(name, PluginKind::MetricProvider)),
        }
    }

    /// The step plugin named `name` ([`CallError::Disabled`] when it is disabled).
    pub fn step_plugin(&self, name: &str) -> Result<StepPlugin, CallError> {
        match self.plugin(name, PluginKind::Step)? {
            Plugin::Step(step) => Ok(step),
            _ => Err(wrong_kind(name, PluginKind::Step)),
        }
    }

    /// The metrics of this registry's plugins.
    pub fn metrics(&self) -> &PluginMetrics {
        &self.metrics
    }

    fn plugin(&self, name: &str, kind: PluginKind) -> Result<Plugin, CallError> {
        self.read_slots(|slots| match slots.get(name) {
            Some(Slot {
                plugin: Some(plugin),
                ..
            }) => Ok(plugin.clone()),
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
        Slot {
            entry,
            kind,
            status: PluginStatus::Failed {
                reason,
                serving_previous: previous.as_ref().map(|p| p.digest().to_owned()),
            },
            plugin: previous,
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
    entry.sha256.is_some() || matches!(entry.location, crate::config::PluginLocation::Builtin(_))
}

fn wrong_kind(name: &str, wanted: PluginKind) -> CallError {
    CallError::Load {
        plugin: name.to_owned(),
        reason: format!("configured, but not as a {} plugin", wanted.label()),
    }
}
