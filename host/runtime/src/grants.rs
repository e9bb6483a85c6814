//! Capability grants: which Kubernetes objects and HTTP origins a plugin may touch.
//!
//! Everything is denied unless a rule allows it. Grants are validated when the plugin
//! configuration is parsed, with errors that name the offending value and the valid options.

use std::fmt;

use serde::Deserialize;

/// The namespace placeholder meaning "the namespace of the Rollout (or AnalysisRun) the call is about".
pub const ROLLOUT_NAMESPACE: &str = "$rolloutNamespace";

/// A Kubernetes verb a plugin can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KubeVerb {
    /// Read one object.
    Get,
    /// List objects.
    List,
    /// Create an object.
    Create,
    /// Patch an object (merge, JSON or apply).
    Patch,
    /// Delete an object.
    Delete,
}

impl KubeVerb {
    /// Every verb, in the order used in error messages.
    pub const ALL: [KubeVerb; 5] = [
        Self::Get,
        Self::List,
        Self::Create,
        Self::Patch,
        Self::Delete,
    ];

    /// The verb as written in grants.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Create => "create",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }
}

impl fmt::Display for KubeVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invalid grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// A verb that does not exist.
    #[error(
        "unknown kube verb {verb:?} in grants.kube[{rule}]; valid verbs: get, list, create, patch, delete, *"
    )]
    UnknownVerb {
        /// Index of the rule.
        rule: usize,
        /// The verb as written.
        verb: String,
    },
    /// A rule that would match nothing.
    #[error("grants.kube[{rule}] has no {field}; list at least one (or \"*\")")]
    EmptyRule {
        /// Index of the rule.
        rule: usize,
        /// `kinds` or `verbs`.
        field: &'static str,
    },
    /// An HTTP origin that is not exactly `scheme://host[:port]`.
    #[error("invalid grants.http entry {origin:?}: {reason}")]
    InvalidOrigin {
        /// The entry as written.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An empty `httpFromConfig` entry.
    #[error("grants.httpFromConfig entries must name a field of the plugin configuration")]
    EmptyConfigField,
}

/// The `grants` block of a plugin entry, as written in the plugin ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsSpec {
    /// Kubernetes access rules.
    #[serde(default)]
    pub kube: Vec<KubeRuleSpec>,
    /// Allowed HTTP origins, `scheme://host[:port]` (metric providers only).
    #[serde(default)]
    pub http: Vec<String>,
    /// Fields of a metric's plugin configuration holding a URL whose origin that metric's
    /// calls may reach (metric providers only), e.g. `address` for Prometheus: the endpoint is
    /// the one the AnalysisTemplate names, and no other.
    #[serde(default, rename = "httpFromConfig")]
    pub http_from_config: Vec<String>,
    /// A boolean field of a metric's plugin configuration that, when true, lets that metric's
    /// calls skip TLS certificate verification (Argo's `insecure` of Prometheus and Web).
    #[serde(default, rename = "tlsSkipVerifyFromConfig")]
    pub tls_skip_verify_from_config: Option<String>,
}

/// One Kubernetes rule as written in the ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeRuleSpec {
    /// API group; empty (the default) for core kinds.
    #[serde(default)]
    pub group: String,
    /// Kinds, or `*` for every kind in the group.
    pub kinds: Vec<String>,
    /// Verbs, or `*` for all.
    pub verbs: Vec<String>,
    /// Namespaces; `$rolloutNamespace` (the default) or `*` for every namespace and
    /// cluster-scoped objects.
    #[serde(default)]
    pub namespaces: Vec<String>,
}

/// Validated grants of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Kubernetes rules; a request is allowed if any rule allows it.
    pub kube: Vec<KubeRule>,
    /// Exactly allowed HTTP origins.
    pub http: Vec<HttpOrigin>,
    /// Plugin-configuration fields whose URL's origin a call may reach.
    pub http_from_config: Vec<String>,
    /// Plugin-configuration field that, when true, skips TLS verification for a call.
    pub tls_skip_verify_from_config: Option<String>,
}

/// A validated Kubernetes rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeRule {
    /// API group (empty for core).
    pub group: String,
    /// Kinds; `None` means every kind in the group.
    pub kinds: Option<Vec<String>>,
    /// Allowed verbs.
    pub verbs: Vec<KubeVerb>,
    /// Allowed namespaces.
    pub namespaces: NamespaceScope,
}

impl fmt::Display for KubeRule {
    /// `get,patch gateway.networking.k8s.io/{HTTPRoute,GRPCRoute} in $rolloutNamespace`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verbs: Vec<&str> = self.verbs.iter().map(|verb| verb.as_str()).collect();
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        let kinds = match &self.kinds {
            None => "*".to_string(),
            Some(kinds) if kinds.len() == 1 => kinds[0].clone(),
            Some(kinds) => format!("{{{}}}", kinds.join(",")),
        };
        let namespaces = match &self.namespaces {
            NamespaceScope::Any => "every namespace".to_string(),
            NamespaceScope::Listed {
                rollout_namespace,
                names,
            } => {
                let mut listed: Vec<&str> = Vec::new();
                if *rollout_namespace {
                    listed.push(ROLLOUT_NAMESPACE);
                }
                listed.extend(names.iter().map(String::as_str));
                listed.join(",")
            }
        };
        write!(f, "{} {group}/{kinds} in {namespaces}", verbs.join(","))
    }
}

/// Where a rule applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    /// Every namespace and cluster-scoped objects.
    Any,
    /// The listed namespaces; `rollout_namespace` adds the call's own namespace.
    Listed {
        /// Whether the Rollout's namespace is included.
        rollout_namespace: bool,
        /// Literal namespaces.
        names: Vec<String>,
    },
}

/// An exact HTTP origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpOrigin {
    /// `http` or `https`.
    pub scheme: String,
    /// Lower-case host name or IP literal.
    pub host: String,
    /// Port (the scheme's default when not written).
    pub port: u16,
}

impl fmt::Display for HttpOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl HttpOrigin {
    /// Parses `scheme://host[:port]` with nothing else (no path, query, user info or wildcard).
    pub fn parse(origin: &str) -> Result<Self, GrantError> {
        let err = |reason| GrantError::InvalidOrigin {
            origin: origin.to_owned(),
            reason,
        };
        let uri: http::Uri = origin.parse().map_err(|_| err("not a URL"))?;
        let scheme = uri
            .scheme_str()
            .ok_or(err("missing scheme (http:// or https://)"))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(err("scheme must be http or https")),
        };
        let authority = uri.authority().ok_or(err("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(err("user info is not allowed"));
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() || host.contains('*') {
            return Err(err("host must be an exact name (no wildcards)"));
        }
        if let Some(path) = uri.path_and_query()
            && path.as_str() != "/"
            && !path.as_str().is_empty()
        {
            return Err(err("must be an origin only, without a path or query"));
        }
        Ok(Self {
            scheme: scheme.to_owned(),
            host,
            port: authority.port_u16().unwrap_or(default_port),
        })
    }

    /// The origin of a request URI, if it has scheme and host.
    pub fn of_uri(uri: &http::Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority = uri.authority()?;
        Some(Self {
            scheme: scheme.to_owned(),
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default_port),
        })
    }
}

impl GrantsSpec {
    /// Validates the spec.
    pub fn validate(&self) -> Result<Grants, GrantError> {
        let mut kube = Vec::with_capacity(self.kube.len());
        for (index, rule) in self.kube.iter().enumerate() {
            kube.push(rule.validate(index)?);
        }
        let http = self
            .http
            .iter()
            .map(|o| HttpOrigin::parse(o))
            .collect::<Result<_, _>>()?;
        if self.http_from_config.iter().any(String::is_empty)
            || self.tls_skip_verify_from_config.as_deref() == Some("")
        {
            return Err(GrantError::EmptyConfigField);
        }
        Ok(Grants {
            kube,
            http,
            http_from_config: self.http_from_config.clone(),
            tls_skip_verify_from_config: self.tls_skip_verify_from_config.clone(),
        })
    }
}

impl KubeRuleSpec {
    fn validate(&self, rule: usize) -> Result<KubeRule, GrantError> {
        if self.kinds.is_empty() {
            return Err(GrantError::EmptyRule {
                rule,
                field: "kinds",
            });
        }
        if self.verbs.is_empty() {
            return Err(GrantError::EmptyRule {
                rule,
                field: "verbs",
            });
        }
        let kinds = if self.kinds.iter().any(|k| k == "*") {
            None
        } else {
            Some(self.kinds.clone())
        };
        let mut verbs = Vec::new();
        for verb in &self.verbs {
            if verb == "*" {
                verbs = KubeVerb::ALL.to_vec();
                break;
            }
            let parsed = KubeVerb::ALL
                .into_iter()
                .find(|v| v.as_str() == verb)
                .ok_or_else(|| GrantError::UnknownVerb {
                    rule,
                    verb: verb.clone(),
                })?;
            verbs.push(parsed);
        }
        let namespaces = if self.namespaces.iter().any(|n| n == "*") {
            NamespaceScope::Any
        } else if self.namespaces.is_empty() {
            NamespaceScope::Listed {
                rollout_namespace: true,
                names: Vec::new(),
            }
        } else {
            NamespaceScope::Listed {
                rollout_namespace: self.namespaces.iter().any(|n| n == ROLLOUT_NAMESPACE),
                names: self
                    .namespaces
                    .iter()
                    .filter(|n| *n != ROLLOUT_NAMESPACE)
                    .cloned()
                    .collect(),
            }
        };
        Ok(KubeRule {
            group: self.group.clone(),
            kinds,
            verbs,
            namespaces,
        })
    }
}

impl Grants {
    /// Whether `verb` on `group`/`kind` in `namespace` (`None`: cluster-scoped or all
    /// namespaces) is allowed for a call about an object in `rollout_namespace`.
    pub fn allows_kube(
        &self,
        verb: KubeVerb,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
        rollout_namespace: Option<&str>,
    ) -> bool {
        self.kube.iter().any(|rule| {
            rule.group == group
                && rule.verbs.contains(&verb)
                && rule
                    .kinds
                    .as_ref()
                    .is_none_or(|kinds| kinds.iter().any(|k| k == kind))
                && match (&rule.namespaces, namespace) {
                    (NamespaceScope::Any, _) => true,
                    (NamespaceScope::Listed { .. }, None) => false,
                    (
                        NamespaceScope::Listed {
                            rollout_namespace: own,
                            names,
                        },
                        Some(ns),
                    ) => (*own && rollout_namespace == Some(ns)) || names.iter().any(|n| n == ns),
                }
        })
    }

    /// Whether requests to `origin` are allowed.
    pub fn allows_http(&self, origin: &HttpOrigin) -> bool {
        self.http.contains(origin)
    }

    /// What a metric's plugin configuration (JSON) adds to one call: the origins of the URLs
    /// in its `httpFromConfig` fields (missing fields or non-URLs give nothing), and whether
    /// its `tlsSkipVerifyFromConfig` field is `true`.
    pub fn from_config(&self, plugin_config: &str) -> (Vec<HttpOrigin>, bool) {
        if self.http_from_config.is_empty() && self.tls_skip_verify_from_config.is_none() {
            return (Vec::new(), false);
        }
        let Ok(config) = serde_json::from_str::<serde_json::Value>(plugin_config) else {
            return (Vec::new(), false);
        };
        let origins = self
            .http_from_config
            .iter()
            .filter_map(|field| config.get(field)?.as_str()?.parse::<http::Uri>().ok())
            .filter_map(|uri| HttpOrigin::of_uri(&uri))
            .collect();
        let skip_tls_verify = self
            .tls_skip_verify_from_config
            .as_ref()
            .and_then(|field| config.get(field)?.as_bool())
            .unwrap_or(false);
        (origins, skip_tls_verify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(yaml: &str) -> Grants {
        serde_yaml::from_str::<GrantsSpec>(yaml)
            .unwrap()
            .validate()
            .unwrap()
    }

    #[test]
    fn kube_rules_default_to_the_rollout_namespace() {
        let g = grants(
            "kube: [{group: gateway.networking.k8s.io, kinds: [HTTPRoute], verbs: [get, patch]}]",
        );
        let gw = "gateway.networking.k8s.io";
        assert!(g.allows_kube(KubeVerb::Patch, gw, "HTTPRoute", Some("shop"), Some("shop")));
        assert!(!g.allows_kube(
            KubeVerb::Patch,
            gw,
            "HTTPRoute",
            Some("other"),
            Some("shop")
        ));
        assert!(!g.allows_kube(
            KubeVerb::Delete,
            gw,
            "HTTPRoute",
            Some("shop"),
            Some("shop")
        ));
        assert!(!g.allows_kube(KubeVerb::Get, gw, "GRPCRoute", Some("shop"), Some("shop")));
        assert!(!g.allows_kube(KubeVerb::Get, "", "HTTPRoute", Some("shop"), Some("shop")));
        assert!(!g.allows_kube(KubeVerb::Get, gw, "HTTPRoute", None, Some("shop")));
    }

    #[test]
    fn wildcards_and_literal_namespaces() {
        let g = grants("kube: [{kinds: ['*'], verbs: ['*'], namespaces: [monitoring]}]");
        assert!(g.allows_kube(
            KubeVerb::Delete,
            "",
            "ConfigMap",
            Some("monitoring"),
            Some("shop")
        ));
        assert!(!g.allows_kube(
            KubeVerb::Delete,
            "",
            "ConfigMap",
            Some("shop"),
            Some("shop")
        ));
        let g = grants("kube: [{kinds: [Namespace], verbs: [list], namespaces: ['*']}]");
        assert!(g.allows_kube(KubeVerb::List, "", "Namespace", None, Some("shop")));
    }

    #[test]
    fn invalid_grants_say_what_is_wrong() {
        let spec: GrantsSpec =
            serde_yaml::from_str("kube: [{kinds: [Pod], verbs: [update]}]").unwrap();
        let err = spec.validate().unwrap_err().to_string();
        assert!(
            err.contains("\"update\"") && err.contains("valid verbs"),
            "{err}"
        );
        for (origin, reason) in [
            ("http://prom:9090/api", "without a path"),
            ("https://*.example.com", "wildcards"),
            ("ftp://x", "http or https"),
            ("prometheus:9090", "scheme"),
        ] {
            let err = HttpOrigin::parse(origin).unwrap_err().to_string();
            assert!(err.contains(reason), "{origin}: {err}");
        }
    }

    #[test]
    fn http_origins_match_exactly_with_default_ports() {
        let g = grants("http: ['http://Prometheus.monitoring:9090', 'https://example.com']");
        let uri = |s: &str| HttpOrigin::of_uri(&s.parse().unwrap()).unwrap();
        assert!(g.allows_http(&uri("http://prometheus.monitoring:9090/api/v1/query?q=up")));
        assert!(g.allows_http(&uri("https://example.com:443/x")));
        assert!(!g.allows_http(&uri("http://example.com/x")));
        assert!(!g.allows_http(&uri("http://prometheus.monitoring:9091/")));
        assert!(!g.allows_http(&uri("http://prometheus.monitoring.evil:9090/")));
    }
}
