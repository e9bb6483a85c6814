//! The plugin configuration: the JSON of `trafficRouting.plugins."argoproj-labs/gatewayAPI"`
//! (or `trafficRouting.plugins.gatewayAPI`), in the shape of the upstream plugin.

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::PluginError;

use crate::model::RouteKind;

/// One route the router manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredRoute {
    /// Its kind.
    pub kind: RouteKind,
    /// Its name.
    pub name: String,
    /// Whether header (and mirror) rules are added to it.
    pub use_header_routes: bool,
}

/// The parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Namespace of the routes (default: the Rollout's).
    pub namespace: String,
    /// Routes in the order HTTP, gRPC, TCP; within a kind the list first, then the single form.
    pub routes: Vec<ConfiguredRoute>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NamedRoute {
    name: String,
    #[serde(default)]
    use_header_routes: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    http_route: Option<String>,
    #[serde(default)]
    http_routes: Vec<NamedRoute>,
    #[serde(default)]
    grpc_route: Option<String>,
    #[serde(default)]
    grpc_routes: Vec<NamedRoute>,
    #[serde(default)]
    tcp_route: Option<String>,
    #[serde(default)]
    tcp_routes: Vec<NamedRoute>,
    // Upstream fields Sluice does not implement: refused rather than silently ignored.
    #[serde(default)]
    tls_route: Option<Value>,
    #[serde(default)]
    tls_routes: Option<Value>,
    #[serde(default)]
    http_route_selector: Option<Value>,
    #[serde(default)]
    grpc_route_selector: Option<Value>,
    #[serde(default)]
    tcp_route_selector: Option<Value>,
    #[serde(default)]
    tls_route_selector: Option<Value>,
}

/// The message of a configuration without any route.
pub const NO_ROUTE_MESSAGE: &str = "the gatewayAPI plugin config lists no route: set httpRoute, httpRoutes, grpcRoute, \
     grpcRoutes, tcpRoute or tcpRoutes";

impl Config {
    /// Parses the plugin config JSON; `rollout_namespace` is the default namespace.
    pub fn parse(config_json: &str, rollout_namespace: &str) -> Result<Self, PluginError> {
        let raw: RawConfig = PluginError::parse_config(config_json)?;
        let unsupported = [
            ("tlsRoute", raw.tls_route.is_some()),
            ("tlsRoutes", raw.tls_routes.is_some()),
            ("httpRouteSelector", raw.http_route_selector.is_some()),
            ("grpcRouteSelector", raw.grpc_route_selector.is_some()),
            ("tcpRouteSelector", raw.tcp_route_selector.is_some()),
            ("tlsRouteSelector", raw.tls_route_selector.is_some()),
        ];
        if let Some((field, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(PluginError::InvalidConfig(format!(
                "plugin config: {field} is not supported by Sluice's Gateway API router; list HTTP, gRPC or TCP routes by name"
            )));
        }
        let mut routes = Vec::new();
        let lists = [
            (RouteKind::Http, raw.http_routes, raw.http_route),
            (RouteKind::Grpc, raw.grpc_routes, raw.grpc_route),
            (RouteKind::Tcp, raw.tcp_routes, raw.tcp_route),
        ];
        for (kind, list, single) in lists {
            for named in list {
                routes.push(ConfiguredRoute {
                    kind,
                    name: named.name,
                    use_header_routes: named.use_header_routes,
                });
            }
            // As upstream: the single form takes part in header routes.
            if let Some(name) = single.filter(|n| !n.is_empty()) {
                routes.push(ConfiguredRoute {
                    kind,
                    name,
                    use_header_routes: true,
                });
            }
        }
        if routes.is_empty() {
            return Err(PluginError::InvalidConfig(NO_ROUTE_MESSAGE.to_owned()));
        }
        if let Some(route) = routes.iter().find(|r| r.name.is_empty()) {
            return Err(PluginError::InvalidConfig(format!(
                "plugin config: a {} entry has an empty name",
                route.kind.kind()
            )));
        }
        let namespace = raw
            .namespace
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| rollout_namespace.to_owned());
        Ok(Self { namespace, routes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(kind: RouteKind, name: &str, use_header_routes: bool) -> ConfiguredRoute {
        ConfiguredRoute {
            kind,
            name: name.into(),
            use_header_routes,
        }
    }

    #[test]
    fn single_and_list_forms_with_the_rollout_namespace_by_default() {
        let config = Config::parse(
            r#"{"httpRoute": "a", "httpRoutes": [{"name": "b"}, {"name": "c", "useHeaderRoutes": true}],
                "grpcRoutes": [{"name": "g"}], "tcpRoute": "t", "unknownField": 1}"#,
            "shop",
        )
        .unwrap();
        assert_eq!(config.namespace, "shop");
        assert_eq!(
            config.routes,
            [
                route(RouteKind::Http, "b", false),
                route(RouteKind::Http, "c", true),
                route(RouteKind::Http, "a", true),
                route(RouteKind::Grpc, "g", false),
                route(RouteKind::Tcp, "t", true),
            ]
        );
        assert_eq!(
            Config::parse(r#"{"httpRoute": "a", "namespace": "edge"}"#, "shop")
                .unwrap()
                .namespace,
            "edge"
        );
    }

    #[test]
    fn a_config_without_routes_is_invalid() {
        for json in ["", "{}", r#"{"namespace": "x"}"#, r#"{"httpRoutes": []}"#] {
            match Config::parse(json, "shop") {
                Err(PluginError::InvalidConfig(message)) => assert_eq!(message, NO_ROUTE_MESSAGE),
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_and_unsupported_configs_are_invalid() {
        for (json, wanted) in [
            (r#"{"httpRoutes": "web"}"#, "plugin config"),
            (r#"{"httpRoutes": [{"name": ""}]}"#, "empty name"),
            (r#"{"tlsRoute": "t"}"#, "tlsRoute is not supported"),
            (
                r#"{"httpRouteSelector": {"matchLabels": {}}}"#,
                "httpRouteSelector is not supported",
            ),
        ] {
            match Config::parse(json, "shop") {
                Err(PluginError::InvalidConfig(message)) => {
                    assert!(message.contains(wanted), "{message}")
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }
}
