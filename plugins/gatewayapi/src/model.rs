//! Typed views of the parts of Gateway API routes the router touches.
//!
//! Every struct keeps the fields it does not model in a flattened `rest` map, so a route read,
//! rewritten and written back keeps foreign fields (filters, timeouts, fields of newer Gateway
//! API versions, controller-specific extensions) verbatim.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_plugin_sdk::kube::Gvk;

/// The kinds of route the router manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// `HTTPRoute` (`gateway.networking.k8s.io/v1`): weights, header and mirror rules.
    Http,
    /// `GRPCRoute` (`gateway.networking.k8s.io/v1`): weights and header rules.
    Grpc,
    /// `TCPRoute` (`gateway.networking.k8s.io/v1alpha2`): weights only.
    Tcp,
}

/// The API group of every Gateway API route.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

impl RouteKind {
    /// The Kubernetes kind.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Http => "HTTPRoute",
            Self::Grpc => "GRPCRoute",
            Self::Tcp => "TCPRoute",
        }
    }

    /// The API version used: `v1` for HTTP and gRPC routes; TCPRoute is only in `v1alpha2`
    /// in released Gateway API versions.
    pub fn version(self) -> &'static str {
        match self {
            Self::Http | Self::Grpc => "v1",
            Self::Tcp => "v1alpha2",
        }
    }

    /// The group/version/kind for host calls.
    pub fn gvk(self) -> Gvk {
        Gvk {
            group: GATEWAY_API_GROUP.to_owned(),
            version: self.version().to_owned(),
            kind: self.kind().to_owned(),
        }
    }

    /// Whether rules of this kind have `matches` that header routes can extend.
    pub fn supports_header_routes(self) -> bool {
        matches!(self, Self::Http | Self::Grpc)
    }
}

/// A route object: metadata, `spec.rules`, and everything else untouched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Object metadata.
    #[serde(default)]
    pub metadata: Metadata,
    /// The route spec.
    #[serde(default)]
    pub spec: RouteSpec,
    /// apiVersion, kind, status and anything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The metadata fields the router reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The resourceVersion the object was read at (sent back for optimistic concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Annotations, where the record of managed rules lives.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Everything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `spec` of a route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// The routing rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// parentRefs, hostnames and anything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One routing rule (HTTP, gRPC or TCP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The rule's name (Gateway API v1.2+); managed rules are found again by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Request matches (HTTP and gRPC rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<Match>>,
    /// Filters, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<Value>>,
    /// Weighted backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_refs: Option<Vec<BackendRef>>,
    /// timeouts, retry, sessionPersistence and anything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Rule {
    /// The rule's backendRefs (empty when it has none).
    pub fn backends(&self) -> &[BackendRef] {
        self.backend_refs.as_deref().unwrap_or_default()
    }

    /// Whether any backendRef names `service`.
    pub fn references(&self, service: &str) -> bool {
        self.backends()
            .iter()
            .any(|backend| backend.name == service)
    }
}

/// One match of an HTTP or gRPC rule; only the header matches are modelled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Header matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HeaderMatch>>,
    /// path, method, queryParams (HTTP) or method (gRPC), and anything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A header match of an HTTP or gRPC rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// `Exact` (the default) or `RegularExpression`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    /// The header name (case-insensitive).
    pub name: String,
    /// The value or pattern.
    pub value: String,
    /// Anything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A backendRef of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendRef {
    /// The referenced object's name (a Service unless group/kind say otherwise).
    pub name: String,
    /// The relative weight; Gateway API's default is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// group, kind, namespace, port, filters and anything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl BackendRef {
    /// The weight Gateway API applies: the explicit one, else 1.
    pub fn effective_weight(&self) -> i32 {
        self.weight.unwrap_or(1)
    }

    /// The object reference without weight or filters (what `RequestMirror` takes).
    pub fn object_reference(&self) -> Value {
        let mut reference = Map::new();
        for field in ["group", "kind", "namespace"] {
            if let Some(value) = self.rest.get(field) {
                reference.insert(field.to_owned(), value.clone());
            }
        }
        reference.insert("name".to_owned(), Value::String(self.name.clone()));
        if let Some(port) = self.rest.get("port") {
            reference.insert("port".to_owned(), port.clone());
        }
        Value::Object(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn foreign_fields_survive_a_round_trip() {
        let object = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7", "labels": {"a": "b"}},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "hostnames": ["shop.example"],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "x", "value": "1"}]}],
                    "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "a", "value": "b"}]}}],
                    "backendRefs": [{"name": "web-stable", "port": 80, "weight": 100, "filters": []}],
                    "timeouts": {"request": "10s"},
                    "vendorExtension": {"x": 1}
                }]
            },
            "status": {"parents": []}
        });
        let route: Route = serde_json::from_value(object.clone()).unwrap();
        assert_eq!(route.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(route.spec.rules[0].backends()[0].weight, Some(100));
        assert_eq!(serde_json::to_value(&route).unwrap(), object);
    }

    #[test]
    fn mirror_references_drop_weight_and_filters() {
        let backend: BackendRef = serde_json::from_value(
            json!({"name": "c", "port": 8080, "kind": "Service", "weight": 3, "filters": []}),
        )
        .unwrap();
        assert_eq!(
            backend.object_reference(),
            json!({"name": "c", "port": 8080, "kind": "Service"})
        );
        assert_eq!(BackendRef::default().effective_weight(), 1);
    }
}
