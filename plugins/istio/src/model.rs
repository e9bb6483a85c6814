//! Typed views of the VirtualService and DestinationRule fields the router touches. Every other
//! field is kept verbatim in a flattened map, so a read-modify-write never drops anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `spec` of a VirtualService.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VirtualServiceSpec {
    /// HTTP routes, in precedence order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpRoute>>,
    /// TLS routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Vec<TlsRoute>>,
    /// TCP routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<Vec<TcpRoute>>,
    /// Everything else (hosts, gateways, exportTo…).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One HTTP route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRoute {
    /// The route's name (needed to select it, and for managed routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
    /// A mirror destination, when the route mirrors traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Value>,
    /// Everything else (match, retries, timeout, mirrorPercentage…).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl HttpRoute {
    /// The route's name, empty when unnamed.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// One TLS route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsRoute {
    /// The route's matches.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<L4Match>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
    /// Everything else.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One TCP route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpRoute {
    /// The route's matches.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<L4Match>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
    /// Everything else.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A TLS or TCP match: the fields used to select routes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L4Match {
    /// The destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// SNI hosts (TLS only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
    /// Everything else.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A weighted destination of a route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteDestination {
    /// Where traffic goes.
    pub destination: Destination,
    /// Share of the route's traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Everything else (headers…).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A destination host, subset and port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// The service host, short or fully qualified.
    #[serde(default)]
    pub host: String,
    /// A DestinationRule subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The port selector (`{number: N}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Destination {
    /// The service name Argo compares: the host up to its first dot.
    pub fn short_host(&self) -> &str {
        self.host.split('.').next().unwrap_or_default()
    }

    /// The subset, empty when none.
    pub fn subset(&self) -> &str {
        self.subset.as_deref().unwrap_or_default()
    }
}

/// `spec` of a DestinationRule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DestinationRuleSpec {
    /// The service host the rule applies to.
    #[serde(default)]
    pub host: String,
    /// The named subsets.
    #[serde(default)]
    pub subsets: Vec<Subset>,
    /// Everything else (trafficPolicy, exportTo…).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A DestinationRule subset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subset {
    /// The subset's name.
    pub name: String,
    /// The pod labels that select it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Everything else (trafficPolicy…).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}
