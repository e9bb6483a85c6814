//! The router's configuration: Argo's `trafficRouting.nginx` block plus the Rollout fields it
//! depends on.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::{PluginError, RolloutContext};

/// The annotation prefix of ingress-nginx, used when `annotationPrefix` is unset.
pub const DEFAULT_ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// Argo's `trafficRouting.nginx` (`NginxTrafficRouting`), as the controller passes it in
/// `plugin-config`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NginxConfig {
    /// The user's Ingress whose rules the canary Ingress copies.
    #[serde(default)]
    pub stable_ingress: Option<String>,
    /// Several stable Ingresses; each gets its own canary Ingress. Takes precedence over
    /// `stableIngress`.
    #[serde(default)]
    pub stable_ingresses: Option<Vec<String>>,
    /// The annotation prefix of the ingress controller (default `nginx.ingress.kubernetes.io`).
    #[serde(default)]
    pub annotation_prefix: Option<String>,
    /// Extra canary annotations, prefixed with the annotation prefix unless they already are.
    #[serde(default)]
    pub additional_ingress_annotations: BTreeMap<String, String>,
    /// Annotations put on the canary Ingress verbatim; they override every other annotation.
    #[serde(default)]
    pub canary_ingress_annotations: BTreeMap<String, String>,
}

impl NginxConfig {
    /// The stable Ingresses to mirror, `stableIngresses` first, or an `invalid-config` error
    /// when neither field names one.
    pub fn stable_ingress_names(&self) -> Result<Vec<String>, PluginError> {
        let names: Vec<String> = match (&self.stable_ingresses, &self.stable_ingress) {
            (Some(many), _) if !many.is_empty() => many.clone(),
            (_, Some(one)) if !one.is_empty() => vec![one.clone()],
            _ => Vec::new(),
        };
        if names.is_empty() || names.iter().any(String::is_empty) {
            return Err(PluginError::InvalidConfig(
                "trafficRouting.nginx needs stableIngress or a non-empty stableIngresses list"
                    .into(),
            ));
        }
        Ok(names)
    }

    /// The annotation prefix in effect.
    pub fn prefix(&self) -> &str {
        self.annotation_prefix
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_ANNOTATION_PREFIX)
    }
}

/// Everything one call needs, read from the call's [`RolloutContext`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterInput {
    /// The plugin configuration.
    pub config: NginxConfig,
    /// Namespace of the Rollout (and of every Ingress it uses).
    pub namespace: String,
    /// Name of the Rollout.
    pub rollout_name: String,
    /// UID of the Rollout, for the owner reference.
    pub rollout_uid: String,
    /// `spec.strategy.canary.stableService`.
    pub stable_service: String,
    /// `spec.strategy.canary.canaryService`.
    pub canary_service: String,
    /// `spec.strategy.canary.trafficRouting.maxTrafficWeight`, when set.
    pub max_traffic_weight: Option<i64>,
}

impl RouterInput {
    /// Parses the context; missing services or a malformed config are `invalid-config`.
    pub fn from_context(ctx: &RolloutContext) -> Result<Self, PluginError> {
        let config: NginxConfig = PluginError::parse_config(&ctx.plugin_config)?;
        if ctx.stable_service.is_empty() || ctx.canary_service.is_empty() {
            return Err(PluginError::InvalidConfig(
                "the NGINX router needs spec.strategy.canary.stableService and canaryService"
                    .into(),
            ));
        }
        Ok(Self {
            config,
            namespace: ctx.namespace.clone(),
            rollout_name: ctx.name.clone(),
            rollout_uid: ctx.uid.clone(),
            stable_service: ctx.stable_service.clone(),
            canary_service: ctx.canary_service.clone(),
            max_traffic_weight: max_traffic_weight(&ctx.rollout_json)?,
        })
    }
}

/// `spec.strategy.canary.trafficRouting.maxTrafficWeight` of the Rollout JSON, if set.
pub fn max_traffic_weight(rollout_json: &str) -> Result<Option<i64>, PluginError> {
    if rollout_json.trim().is_empty() {
        return Ok(None);
    }
    let rollout: Value = serde_json::from_str(rollout_json)
        .map_err(|e| PluginError::InvalidConfig(format!("rollout JSON: {e}")))?;
    Ok(rollout
        .pointer("/spec/strategy/canary/trafficRouting/maxTrafficWeight")
        .and_then(Value::as_i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ingresses_win_over_stable_ingress() {
        let config: NginxConfig =
            serde_json::from_str(r#"{"stableIngress": "one", "stableIngresses": ["a", "b"]}"#)
                .unwrap();
        assert_eq!(config.stable_ingress_names().unwrap(), ["a", "b"]);
        let single: NginxConfig = serde_json::from_str(r#"{"stableIngress": "one"}"#).unwrap();
        assert_eq!(single.stable_ingress_names().unwrap(), ["one"]);
    }

    #[test]
    fn a_config_without_stable_ingress_is_invalid() {
        let err = NginxConfig::default().stable_ingress_names().unwrap_err();
        assert!(matches!(err, PluginError::InvalidConfig(m) if m.contains("stableIngress")));
    }

    #[test]
    fn prefix_defaults_to_ingress_nginx() {
        assert_eq!(
            NginxConfig::default().prefix(),
            "nginx.ingress.kubernetes.io"
        );
        let custom = NginxConfig {
            annotation_prefix: Some("custom.io".into()),
            ..Default::default()
        };
        assert_eq!(custom.prefix(), "custom.io");
    }

    #[test]
    fn max_traffic_weight_is_read_from_the_rollout() {
        let rollout =
            r#"{"spec": {"strategy": {"canary": {"trafficRouting": {"maxTrafficWeight": 1000}}}}}"#;
        assert_eq!(max_traffic_weight(rollout).unwrap(), Some(1000));
        assert_eq!(max_traffic_weight("{}").unwrap(), None);
        assert_eq!(max_traffic_weight("").unwrap(), None);
    }
}
