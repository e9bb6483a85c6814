//! The plugin configuration: the defaults (the built-ins with their grants) with the plugin
//! ConfigMap laid over them by name, applied to the registry at start and again on every change
//! of the ConfigMap, without a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use sluice_runtime::{Limits, PluginConfig, PluginRegistry, PluginStatus, parse_plugin_config};

use crate::error::{Error, Result};

/// Where the plugin configuration lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfigMap {
    /// Its namespace.
    pub namespace: String,
    /// Its name (Argo's default is `argo-rollouts-config`).
    pub name: String,
}

/// ConfigMap data: plugin lists under `trafficRouterPlugins`, `metricProviderPlugins` and
/// `stepPlugins`.
pub(crate) type ConfigData = BTreeMap<String, String>;

/// The data of a ConfigMap that was applied (`None`: no ConfigMap).
pub(crate) type AppliedData = Option<ConfigData>;

/// Reads the ConfigMap once (a missing ConfigMap leaves the defaults alone) and applies it over
/// `defaults`; returns the ConfigMap data applied.
pub(crate) async fn apply_initial(
    client: &Client,
    source: &PluginConfigMap,
    defaults: &ConfigData,
    registry: &PluginRegistry,
) -> Result<AppliedData> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &source.namespace);
    let config_map = api
        .get_opt(&source.name)
        .await
        .map_err(|error| Error::kube(format!("read ConfigMap {}", source.name), error))?;
    let data = config_map.and_then(|config_map| config_map.data);
    apply(defaults, data.as_ref(), registry).await;
    Ok(data)
}

/// Watches the ConfigMap and re-applies it over `defaults` on every change, until the stream
/// ends.
pub(crate) async fn watch(
    client: Client,
    source: PluginConfigMap,
    defaults: ConfigData,
    registry: Arc<PluginRegistry>,
    applied: AppliedData,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &source.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", source.name));
    let mut last_data = Some(applied);
    let mut events = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(config_map) => {
                if last_data.as_ref() == Some(&config_map.data) {
                    continue;
                }
                last_data = Some(config_map.data.clone());
                tracing::info!(configmap = %source.name, "plugin configuration changed");
                apply(&defaults, config_map.data.as_ref(), &registry).await;
            }
            Err(error) => tracing::warn!(%error, "watching the plugin ConfigMap"),
        }
    }
}

/// Applies `overrides` (the ConfigMap's data, if any) laid over `defaults`. A ConfigMap that
/// cannot be parsed at all keeps the plugins loaded now.
pub(crate) async fn apply(
    defaults: &ConfigData,
    overrides: Option<&ConfigData>,
    registry: &PluginRegistry,
) {
    let limits = Limits::default();
    let defaults = match parse_plugin_config(defaults, &limits) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "default plugin configuration rejected");
            PluginConfig::default()
        }
    };
    let config = match overrides.map(|data| parse_plugin_config(data, &limits)) {
        None => defaults,
        Some(Ok(overrides)) => defaults.overlaid_with(overrides),
        Some(Err(error)) => {
            tracing::error!(%error, "plugin configuration rejected; keeping the loaded plugins");
            return;
        }
    };
    for warning in &config.warnings {
        tracing::warn!(plugin = %warning.name, reason = %warning.reason, "plugin entry ignored");
    }
    for (name, status) in registry.apply(&config).await {
        match status {
            PluginStatus::Ready {
                digest,
                plugin_type,
            } => {
                tracing::info!(plugin = %name, %plugin_type, %digest, "plugin ready");
            }
            PluginStatus::Failed {
                reason,
                serving_previous,
            } => {
                tracing::error!(plugin = %name, %reason, ?serving_previous, "plugin failed to load");
            }
            PluginStatus::Configured => {
                tracing::info!(plugin = %name, "plugin configured; it loads on its first use");
            }
            PluginStatus::Disabled => tracing::info!(plugin = %name, "plugin disabled"),
        }
    }
}
