//! The plugin ConfigMap: a pure parser from its `data` to validated plugin entries.
//!
//! The format is documented in `host/runtime/README.md`. A malformed key fails the whole
//! config (the registry then keeps its current plugins); a malformed *entry* only marks that
//! plugin as failed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;

use crate::grants::GrantsSpec;
use crate::limits::{Limits, LimitsSpec};
use crate::plugin::{PluginKind, PluginSpec};

/// ConfigMap key listing traffic-router plugins (the same key Argo Rollouts uses).
pub const TRAFFIC_ROUTER_PLUGINS_KEY: &str = "trafficRouterPlugins";
/// ConfigMap key listing metric-provider plugins (the same key Argo Rollouts uses).
pub const METRIC_PROVIDER_PLUGINS_KEY: &str = "metricProviderPlugins";
/// ConfigMap key listing step plugins (the same key Argo Rollouts uses).
pub const STEP_PLUGINS_KEY: &str = "stepPlugins";

/// Where a plugin's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginLocation {
    /// Embedded in the controller, registered under this name.
    Builtin(String),
    /// A local file.
    File(PathBuf),
    /// Downloaded over HTTPS (sha256 mandatory).
    Https(String),
    /// Downloaded over plain HTTP (sha256 mandatory; only if the registry allows it).
    Http(String),
}

impl PluginLocation {
    /// Parses `builtin:NAME`, `file:///path`, `https://…` or `http://…`.
    pub fn parse(location: &str) -> Option<Self> {
        if let Some(name) = location.strip_prefix("builtin:") {
            return (!name.is_empty()).then(|| Self::Builtin(name.to_owned()));
        }
        if let Some(path) = location.strip_prefix("file://") {
            return (!path.is_empty()).then(|| Self::File(PathBuf::from(path)));
        }
        if location.starts_with("https://") {
            return Some(Self::Https(location.to_owned()));
        }
        if location.starts_with("http://") {
            return Some(Self::Http(location.to_owned()));
        }
        None
    }
}

impl std::fmt::Display for PluginLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Builtin(name) => write!(f, "builtin:{name}"),
            Self::File(path) => write!(f, "file://{}", path.display()),
            Self::Https(url) | Self::Http(url) => f.write_str(url),
        }
    }
}

/// One valid plugin entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEntry {
    /// Name, kind, grants, limits, args and expected type.
    pub spec: PluginSpec,
    /// Where to get it.
    pub location: PluginLocation,
    /// Expected sha256 (lower-case hex).
    pub sha256: Option<String>,
    /// Step plugins only: not loaded, and every step using it counts as complete.
    pub disabled: bool,
}

impl PluginEntry {
    /// Whether the registry loads this plugin on its first use rather than when the
    /// configuration is applied: built-ins do (their bytes are embedded, and each compiled
    /// component costs memory); plugins from files and URLs are fetched and checked at once.
    pub fn loads_on_first_use(&self) -> bool {
        matches!(self.location, PluginLocation::Builtin(_))
    }
}

/// An entry that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    /// The entry's name (or `<key>[index]` when it has none).
    pub name: String,
    /// The key it was listed under.
    pub kind: PluginKind,
    /// What is wrong.
    pub reason: String,
}

/// The parsed plugin configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginConfig {
    /// Valid entries.
    pub entries: Vec<PluginEntry>,
    /// Entries reported as failed without loading.
    pub invalid: Vec<InvalidEntry>,
    /// Invalid entries that did not replace a valid default (see
    /// [`PluginConfig::overlaid_with`]); reported, but the default keeps serving.
    pub warnings: Vec<InvalidEntry>,
}

impl PluginConfig {
    /// Lays `overrides` (the operator's ConfigMap) over `self` (the defaults): an entry replaces
    /// the default of the same name; new names are added after the defaults. An *invalid*
    /// override of a default keeps the default and is reported in [`PluginConfig::invalid`]
    /// with `(keeping the default)`, so a migrated ConfigMap that still lists an out-of-process
    /// plugin under a built-in's name cannot take traffic routing down.
    pub fn overlaid_with(mut self, overrides: PluginConfig) -> PluginConfig {
        let has_default = |config: &PluginConfig, name: &str| {
            config.entries.iter().any(|entry| entry.spec.name == name)
        };
        for mut invalid in overrides.invalid {
            if has_default(&self, &invalid.name) {
                invalid.reason = format!("{} (keeping the default)", invalid.reason);
                self.warnings.push(invalid);
            } else {
                self.invalid.push(invalid);
            }
        }
        for entry in overrides.entries {
            match self
                .entries
                .iter_mut()
                .find(|default| default.spec.name == entry.spec.name)
            {
                Some(default) => *default = entry,
                None => self.entries.push(entry),
            }
        }
        self
    }
}

/// The ConfigMap cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ConfigMap key {key}: {reason}")]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PluginItem {
    name: String,
    location: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default, rename = "type")]
    plugin_type: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    grants: GrantsSpec,
    #[serde(default)]
    limits: LimitsSpec,
    #[serde(default)]
    disabled: bool,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !name.starts_with('/')
        && !name.ends_with('/')
}

fn entry(item: PluginItem, kind: PluginKind, defaults: &Limits) -> Result<PluginEntry, String> {
    if !valid_name(&item.name) {
        return Err(format!(
            "invalid name {:?}: use letters, digits, '-', '_', '.' and '/'",
            item.name
        ));
    }
    let location = PluginLocation::parse(&item.location).ok_or_else(|| {
        format!(
            "unsupported location {:?}: use builtin:NAME, file:///path or https://url",
            item.location
        )
    })?;
    let sha256 = match item.sha256 {
        Some(digest) => {
            let digest = digest.trim().to_ascii_lowercase();
            if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!(
                    "sha256 must be 64 hex characters, got {} characters",
                    digest.len()
                ));
            }
            Some(digest)
        }
        None => None,
    };
    if matches!(location, PluginLocation::Https(_) | PluginLocation::Http(_)) && sha256.is_none() {
        return Err(format!("location {} needs a sha256", item.location));
    }
    let grants = item.grants.validate().map_err(|e| e.to_string())?;
    if item.disabled && kind != PluginKind::Step {
        return Err("only step plugins can be disabled".into());
    }
    let grants_http = !grants.http.is_empty()
        || !grants.http_from_config.is_empty()
        || grants.tls_skip_verify_from_config.is_some();
    if grants_http && !kind.uses_http() {
        return Err(
            "traffic-router plugins cannot be granted HTTP access (they act through kube only)"
                .into(),
        );
    }
    let limits = item.limits.resolve(defaults).map_err(|e| e.to_string())?;
    Ok(PluginEntry {
        spec: PluginSpec {
            name: item.name,
            kind,
            grants,
            limits,
            args: item.args,
            expected_type: item.plugin_type,
        },
        location,
        sha256,
        disabled: item.disabled,
    })
}

/// Parses the `data` of the plugin ConfigMap. `defaults` are the limits of entries that set none.
pub fn parse_plugin_config(
    data: &BTreeMap<String, String>,
    defaults: &Limits,
) -> Result<PluginConfig, ConfigError> {
    let mut config = PluginConfig::default();
    let mut seen = BTreeSet::new();
    for (key, kind) in [
        (TRAFFIC_ROUTER_PLUGINS_KEY, PluginKind::TrafficRouter),
        (METRIC_PROVIDER_PLUGINS_KEY, PluginKind::MetricProvider),
        (STEP_PLUGINS_KEY, PluginKind::Step),
    ] {
        let Some(text) = data.get(key) else { continue };
        let items: Option<Vec<serde_yaml::Value>> =
            serde_yaml::from_str(text).map_err(|e| ConfigError {
                key,
                reason: format!("expected a YAML list of plugins: {e}"),
            })?;
        for (index, item) in items.unwrap_or_default().into_iter().enumerate() {
            let name = item
                .get("name")
                .and_then(serde_yaml::Value::as_str)
                .map_or_else(|| format!("{key}[{index}]"), str::to_owned);
            let parsed = serde_yaml::from_value::<PluginItem>(item)
                .map_err(|e| e.to_string())
                .and_then(|item| entry(item, kind, defaults));
            match parsed {
                Ok(_) if !seen.insert(name.clone()) => config.invalid.push(InvalidEntry {
                    name,
                    kind,
                    reason: "duplicate plugin name; names are unique across all keys".into(),
                }),
                Ok(entry) => config.entries.push(entry),
                Err(reason) => config.invalid.push(InvalidEntry { name, kind, reason }),
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_both_keys_with_grants_and_limits() {
        let config = parse_plugin_config(
            &data(&[
                (
                    TRAFFIC_ROUTER_PLUGINS_KEY,
                    r#"
- name: argoproj-labs/gatewayAPI
  location: builtin:gatewayapi
  type: GatewayAPI
  grants:
    kube:
      - {group: gateway.networking.k8s.io, kinds: [HTTPRoute], verbs: [get, patch]}
  limits: {cpu: 200ms, memory: 32Mi}
"#,
                ),
                (
                    METRIC_PROVIDER_PLUGINS_KEY,
                    r#"
- name: acme/datadog
  location: https://plugins.example.com/datadog.wasm
  sha256: 0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0
  args: [--site, eu]
  grants: {http: ["https://api.datadoghq.eu"]}
"#,
                ),
            ]),
            &Limits::default(),
        )
        .unwrap();
        assert!(config.invalid.is_empty(), "{:?}", config.invalid);
        let router = &config.entries[0];
        assert_eq!(router.spec.kind, PluginKind::TrafficRouter);
        assert_eq!(
            router.location,
            PluginLocation::Builtin("gatewayapi".into())
        );
        assert_eq!(router.spec.expected_type.as_deref(), Some("GatewayAPI"));
        assert_eq!(router.spec.limits.memory_bytes, 32 << 20);
        let provider = &config.entries[1];
        assert_eq!(provider.sha256.as_deref().map(str::len), Some(64));
        assert!(
            provider
                .sha256
                .as_deref()
                .unwrap()
                .chars()
                .all(|c| !c.is_ascii_uppercase())
        );
        assert_eq!(provider.spec.args, ["--site", "eu"]);
        assert_eq!(provider.spec.grants.http[0].port, 443);
    }

    #[test]
    fn bad_entries_are_reported_individually() {
        let config = parse_plugin_config(
            &data(&[(
                METRIC_PROVIDER_PLUGINS_KEY,
                r#"
- {name: good, location: "file:///plugins/good.wasm"}
- {name: nosha, location: "https://example.com/p.wasm"}
- {name: shortsha, location: "file:///p.wasm", sha256: abc}
- {name: ftp, location: "ftp://example.com/p.wasm"}
- {name: typo, location: "builtin:x", grant: {}}
- {name: good, location: "builtin:other"}
- {location: "builtin:x"}
"#,
            )]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(config.entries.len(), 1);
        let reasons: BTreeMap<_, _> = config
            .invalid
            .iter()
            .map(|i| (i.name.as_str(), i.reason.as_str()))
            .collect();
        assert!(reasons["nosha"].contains("needs a sha256"));
        assert!(reasons["shortsha"].contains("64 hex"));
        assert!(reasons["ftp"].contains("unsupported location"));
        assert!(reasons["typo"].contains("unknown field `grant`"));
        assert!(reasons["good"].contains("duplicate"));
        assert!(reasons["metricProviderPlugins[6]"].contains("missing field `name`"));
    }

    #[test]
    fn routers_cannot_get_http_and_bad_yaml_fails_the_key() {
        let config = parse_plugin_config(
            &data(&[(
                TRAFFIC_ROUTER_PLUGINS_KEY,
                "- {name: r, location: 'builtin:r', grants: {http: ['http://x']}}",
            )]),
            &Limits::default(),
        )
        .unwrap();
        assert!(config.invalid[0].reason.contains("cannot be granted HTTP"));
        let err = parse_plugin_config(
            &data(&[(TRAFFIC_ROUTER_PLUGINS_KEY, "name: not-a-list")]),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err.key, TRAFFIC_ROUTER_PLUGINS_KEY);
    }

    #[test]
    fn step_plugins_may_be_disabled_and_use_http_but_others_may_not_be_disabled() {
        let config = parse_plugin_config(
            &data(&[
                (
                    STEP_PLUGINS_KEY,
                    "- {name: gate, location: 'builtin:approval', grants: {http: ['https://tickets.example.com']}}\n- {name: freeze, location: 'file:///p.wasm', disabled: true}",
                ),
                (
                    METRIC_PROVIDER_PLUGINS_KEY,
                    "- {name: m, location: 'builtin:m', disabled: true}",
                ),
            ]),
            &Limits::default(),
        )
        .unwrap();
        let entries: Vec<(&str, PluginKind, bool)> = config
            .entries
            .iter()
            .map(|entry| (entry.spec.name.as_str(), entry.spec.kind, entry.disabled))
            .collect();
        assert_eq!(
            entries,
            [
                ("gate", PluginKind::Step, false),
                ("freeze", PluginKind::Step, true)
            ]
        );
        assert_eq!(config.invalid.len(), 1);
        assert_eq!(config.invalid[0].name, "m");
        assert!(config.invalid[0].reason.contains("only step plugins"));
    }

    #[test]
    fn overrides_replace_defaults_by_name_and_bad_overrides_keep_the_default() {
        let defaults = parse_plugin_config(
            &data(&[(
                TRAFFIC_ROUTER_PLUGINS_KEY,
                "- {name: nginx, location: 'builtin:nginx'}\n- {name: istio, location: 'builtin:istio'}",
            )]),
            &Limits::default(),
        )
        .unwrap();
        let overrides = parse_plugin_config(
            &data(&[
                (
                    TRAFFIC_ROUTER_PLUGINS_KEY,
                    "- {name: nginx, location: 'file:///plugins/nginx.wasm'}\n- {name: istio, location: 'https://example.com/istio'}\n- {name: mine, location: 'builtin:mine'}",
                ),
                (METRIC_PROVIDER_PLUGINS_KEY, "- {name: broken, location: 'ftp://x'}"),
            ]),
            &Limits::default(),
        )
        .unwrap();
        let merged = defaults.overlaid_with(overrides);
        let locations: Vec<(&str, String)> = merged
            .entries
            .iter()
            .map(|entry| (entry.spec.name.as_str(), entry.location.to_string()))
            .collect();
        assert_eq!(
            locations,
            [
                ("nginx", "file:///plugins/nginx.wasm".to_string()),
                ("istio", "builtin:istio".to_string()),
                ("mine", "builtin:mine".to_string()),
            ]
        );
        assert_eq!(merged.warnings.len(), 1);
        assert_eq!(merged.warnings[0].name, "istio");
        assert!(
            merged.warnings[0]
                .reason
                .ends_with("needs a sha256 (keeping the default)")
        );
        assert_eq!(merged.invalid.len(), 1);
        assert_eq!(merged.invalid[0].name, "broken");
    }
}
