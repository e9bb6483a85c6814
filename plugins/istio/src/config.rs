//! The router's configuration: Argo's `trafficRouting.istio` block plus the Rollout fields it
//! depends on.

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::{PluginError, RolloutContext};

/// The Istio networking API version used when the config does not name one.
pub const DEFAULT_API_VERSION: &str = "v1beta1";

/// The Istio networking API group.
pub const ISTIO_GROUP: &str = "networking.istio.io";

/// Argo's `trafficRouting.istio` (`IstioTrafficRouting`), as the controller passes it in
/// `plugin-config`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IstioConfig {
    /// One VirtualService.
    #[serde(default)]
    pub virtual_service: Option<VirtualServiceRef>,
    /// Several VirtualServices; takes precedence over `virtualService`.
    #[serde(default)]
    pub virtual_services: Option<Vec<VirtualServiceRef>>,
    /// The DestinationRule whose subsets split canary and stable pods.
    #[serde(default)]
    pub destination_rule: Option<DestinationRuleRef>,
    /// Sluice extension: the `networking.istio.io` version to use (`v1beta1` by default; the
    /// group prefix is optional).
    #[serde(default)]
    pub api_version: Option<String>,
}

/// Argo's `IstioVirtualService`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceRef {
    /// `name` or `namespace/name`.
    pub name: String,
    /// Names of the HTTP routes whose weights are set; empty means the single unnamed route.
    #[serde(default)]
    pub routes: Vec<String>,
    /// TLS routes whose weights are set, by port and SNI hosts.
    #[serde(default)]
    pub tls_routes: Vec<TlsRouteRef>,
    /// TCP routes whose weights are set, by port.
    #[serde(default)]
    pub tcp_routes: Vec<TcpRouteRef>,
}

impl VirtualServiceRef {
    /// The namespace (the Rollout's unless the name is `namespace/name`) and name.
    pub fn namespace_and_name<'a>(&'a self, rollout_namespace: &'a str) -> (&'a str, &'a str) {
        match self.name.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() => (namespace, name),
            Some((_, name)) => (rollout_namespace, name),
            None => (rollout_namespace, &self.name),
        }
    }
}

/// Argo's `TLSRoute`: selects the TLS routes matching exactly this port and these SNI hosts.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TlsRouteRef {
    /// The port of the route's match (0 when the match names none).
    #[serde(default)]
    pub port: i64,
    /// The SNI hosts of the route's matches.
    #[serde(default)]
    pub sni_hosts: Vec<String>,
}

/// Argo's `TCPRoute`: selects the TCP routes matching exactly this port.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TcpRouteRef {
    /// The port of the route's match (0 when the match names none).
    #[serde(default)]
    pub port: i64,
}

/// Argo's `IstioDestinationRule`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleRef {
    /// The DestinationRule, in the Rollout's namespace.
    pub name: String,
    /// The subset pinned to the canary pod-template hash.
    pub canary_subset_name: String,
    /// The subset pinned to the stable pod-template hash.
    pub stable_subset_name: String,
}

impl IstioConfig {
    /// The VirtualServices to update, `virtualServices` first, or `invalid-config`.
    pub fn virtual_service_refs(&self) -> Result<Vec<VirtualServiceRef>, PluginError> {
        let refs = match (&self.virtual_services, &self.virtual_service) {
            (Some(many), _) if !many.is_empty() => many.clone(),
            (_, Some(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        if refs.is_empty() || refs.iter().any(|r| r.name.is_empty()) {
            return Err(PluginError::InvalidConfig(
                "trafficRouting.istio needs virtualService or a non-empty virtualServices list, each with a name".into(),
            ));
        }
        Ok(refs)
    }

    /// The API version within `networking.istio.io`.
    pub fn version(&self) -> &str {
        let configured = self.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        let version = configured
            .strip_prefix("networking.istio.io/")
            .unwrap_or(configured);
        if version.is_empty() {
            DEFAULT_API_VERSION
        } else {
            version
        }
    }
}

/// Everything one call needs, read from the call's [`RolloutContext`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterInput {
    /// The plugin configuration.
    pub config: IstioConfig,
    /// Namespace of the Rollout.
    pub namespace: String,
    /// Name of the Rollout.
    pub rollout_name: String,
    /// `spec.strategy.canary.canaryService` (may be empty when subsets are used).
    pub canary_service: String,
    /// `spec.strategy.canary.stableService` (may be empty when subsets are used).
    pub stable_service: String,
    /// `spec.strategy.canary.trafficRouting.managedRoutes[].name`, in order.
    pub managed_routes: Vec<String>,
}

impl RouterInput {
    /// Parses the context; a malformed config or Rollout is `invalid-config`.
    pub fn from_context(ctx: &RolloutContext) -> Result<Self, PluginError> {
        let config: IstioConfig = PluginError::parse_config(&ctx.plugin_config)?;
        Ok(Self {
            config,
            namespace: ctx.namespace.clone(),
            rollout_name: ctx.name.clone(),
            canary_service: ctx.canary_service.clone(),
            stable_service: ctx.stable_service.clone(),
            managed_routes: managed_routes(&ctx.rollout_json)?,
        })
    }
}

/// The names under `spec.strategy.canary.trafficRouting.managedRoutes` of the Rollout JSON.
pub fn managed_routes(rollout_json: &str) -> Result<Vec<String>, PluginError> {
    if rollout_json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let rollout: Value = serde_json::from_str(rollout_json)
        .map_err(|e| PluginError::InvalidConfig(format!("rollout JSON: {e}")))?;
    Ok(rollout
        .pointer("/spec/strategy/canary/trafficRouting/managedRoutes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|route| route.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_service_names_may_carry_a_namespace() {
        let plain = VirtualServiceRef {
            name: "web".into(),
            ..Default::default()
        };
        assert_eq!(plain.namespace_and_name("shop"), ("shop", "web"));
        let qualified = VirtualServiceRef {
            name: "mesh/web".into(),
            ..Default::default()
        };
        assert_eq!(qualified.namespace_and_name("shop"), ("mesh", "web"));
    }

    #[test]
    fn virtual_services_win_over_virtual_service() {
        let config: IstioConfig = serde_json::from_value(serde_json::json!({
            "virtualService": {"name": "one"},
            "virtualServices": [{"name": "a", "routes": ["primary"]}, {"name": "b"}]
        }))
        .unwrap();
        let names: Vec<String> = config
            .virtual_service_refs()
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(IstioConfig::default().virtual_service_refs().is_err());
    }

    #[test]
    fn api_version_defaults_to_v1beta1() {
        assert_eq!(IstioConfig::default().version(), "v1beta1");
        let v1 = IstioConfig {
            api_version: Some("networking.istio.io/v1".into()),
            ..Default::default()
        };
        assert_eq!(v1.version(), "v1");
    }

    #[test]
    fn managed_routes_keep_their_order() {
        let rollout = r#"{"spec": {"strategy": {"canary": {"trafficRouting": {"managedRoutes": [{"name": "b"}, {"name": "a"}]}}}}}"#;
        assert_eq!(managed_routes(rollout).unwrap(), ["b", "a"]);
        assert!(managed_routes("{}").unwrap().is_empty());
    }
}
