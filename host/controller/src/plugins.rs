//! The plugin ConfigMap: applied to the registry at start and again on every change, without a
//! restart.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use sluice_runtime::{Limits, PluginRegistry, PluginStatus, parse_plugin_config};

use crate::error::{Error, Result};

/// Where the plugin configuration lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfigMap {
    /// Its namespace.
    pub namespace: String,
    /// Its name (Argo's default is `argo-rollouts-config`).
    pub name: String,
}

/// The data of a ConfigMap that was applied (`None`: no ConfigMap).
pub(crate) type AppliedData = Option<std::collections::BTreeMap<String, String>>;

/// Reads the ConfigMap once (a missing ConfigMap is an empty configuration) and applies it;
/// returns the data applied.
pub(crate) async fn apply_initial(
    client: &Client,
    source: &PluginConfigMap,
    registry: &PluginRegistry,
) -> Result<AppliedData> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &source.namespace);
    let config_map = api
        .get_opt(&source.name)
        .await
        .map_err(|error| Error::kube(format!("read ConfigMap {}", source.name), error))?;
    apply(config_map.as_ref(), registry).await;
    Ok(config_map.and_then(|config_map| config_map.data))
}

/// Watches the ConfigMap and re-applies it on every change, until the stream ends.
pub(crate) async fn watch(
    client: Client,
    source: PluginConfigMap,
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
                apply(Some(&config_map), &registry).await;
            }
            Err(error) => tracing::warn!(%error, "watching the plugin ConfigMap"),
        }
    }
}

async fn apply(config_map: Option<&ConfigMap>, registry: &PluginRegistry) {
    let data = config_map
        .and_then(|config_map| config_map.data.clone())
        .unwrap_or_default();
    let config = match parse_plugin_config(&data, &Limits::default()) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "plugin configuration rejected; keeping the loaded plugins");
            return;
        }
    };
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
        }
    }
}
