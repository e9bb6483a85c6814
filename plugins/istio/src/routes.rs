//! The pure VirtualService transformations: route selection, weights, header and mirror routes,
//! managed-route ordering and removal. Each works on a [`VirtualServiceSpec`] in memory; the
//! caller reads and writes the object.

use serde_json::{Map, Value, json};
use sluice_plugin_sdk::{HeaderRoute, MirrorRoute, PluginError, StringMatch, WeightDestination};

use crate::config::{TcpRouteRef, TlsRouteRef, VirtualServiceRef};
use crate::model::{Destination, HttpRoute, L4Match, RouteDestination, VirtualServiceSpec};

/// Which destinations are canary and stable: by service host, or by DestinationRule subset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// The canary service (empty when unset).
    pub canary_service: String,
    /// The stable service (empty when unset).
    pub stable_service: String,
    /// The canary subset, when a DestinationRule is configured.
    pub canary_subset: Option<String>,
    /// The stable subset, when a DestinationRule is configured.
    pub stable_subset: Option<String>,
}

impl Targets {
    fn is_canary(&self, destination: &Destination) -> bool {
        let host = destination.short_host();
        (!host.is_empty() && host == self.canary_service)
            || matches!(&self.canary_subset, Some(s) if !s.is_empty() && destination.subset() == s)
    }

    fn is_stable(&self, destination: &Destination) -> bool {
        let host = destination.short_host();
        (!host.is_empty() && host == self.stable_service)
            || matches!(&self.stable_subset, Some(s) if !s.is_empty() && destination.subset() == s)
    }

    /// Argo's check that a weighted route has both a canary and a stable destination: subsets
    /// when a DestinationRule is configured, services otherwise.
    fn validate(&self, destinations: &[RouteDestination]) -> Result<(), PluginError> {
        let has = |wanted: &dyn Fn(&Destination) -> bool| {
            destinations.iter().any(|d| wanted(&d.destination))
        };
        let invalid = |what: String| Err(PluginError::InvalidConfig(what));
        match (&self.canary_subset, &self.stable_subset) {
            (Some(canary), Some(stable)) => {
                if !has(&|d| d.subset() == canary) {
                    return invalid(format!(
                        "Canary DestinationRule subset '{canary}' not found in route"
                    ));
                }
                if !has(&|d| d.subset() == stable) {
                    return invalid(format!(
                        "Stable DestinationRule subset '{stable}' not found in route"
                    ));
                }
            }
            _ => {
                let canary = &self.canary_service;
                let stable = &self.stable_service;
                if canary.is_empty() || !has(&|d| d.short_host() == canary) {
                    return invalid(format!("Canary Service '{canary}' not found in route"));
                }
                if stable.is_empty() || !has(&|d| d.short_host() == stable) {
                    return invalid(format!("Stable Service '{stable}' not found in route"));
                }
            }
        }
        Ok(())
    }
}

/// Indices of the HTTP routes `set-weight` updates: the listed routes by name (or, with none
/// listed, the single unnamed route), plus mirror routes listed in `managedRoutes`.
pub fn weighted_http_routes(
    http: &[HttpRoute],
    virtual_service: &VirtualServiceRef,
    managed_routes: &[String],
) -> Result<Vec<usize>, PluginError> {
    let mut indices = Vec::new();
    if virtual_service.routes.is_empty() {
        let unmanaged = http
            .iter()
            .filter(|r| !managed_routes.iter().any(|m| m == r.name()))
            .count();
        if unmanaged > 1 {
            return Err(PluginError::InvalidConfig(
                "spec.http[] should be set in VirtualService and it must have exactly one route when omitting spec.strategy.canary.trafficRouting.istio.virtualService.routes".into(),
            ));
        }
        indices.extend(http.iter().position(|r| r.name.is_none()));
    } else {
        for wanted in &virtual_service.routes {
            match http.iter().position(|r| r.name() == wanted) {
                Some(index) => indices.push(index),
                None => {
                    return Err(PluginError::InvalidConfig(format!(
                        "HTTP Route '{wanted}' is not found in the defined Virtual Service."
                    )));
                }
            }
        }
    }
    Ok(indices)
}

/// The single port of a route's matches (0 without one), or `None` when they name several.
fn single_port(matches: &[L4Match]) -> Option<i64> {
    let mut ports: Vec<i64> = matches.iter().map(|m| m.port.unwrap_or(0)).collect();
    ports.sort_unstable();
    ports.dedup();
    match ports.as_slice() {
        [] => Some(0),
        [port] => Some(*port),
        _ => None,
    }
}

/// Indices of the TLS routes `set-weight` updates (every route matching a listed port and SNI
/// host set; the only route when none is listed).
pub fn weighted_tls_routes(
    routes: &[Vec<L4Match>],
    wanted: &[TlsRouteRef],
) -> Result<Vec<usize>, PluginError> {
    if wanted.is_empty() {
        return only_route(routes.len(), "tls");
    }
    let mut indices = Vec::new();
    for tls in wanted {
        let mut wanted_hosts = tls.sni_hosts.clone();
        wanted_hosts.sort();
        wanted_hosts.dedup();
        let before = indices.len();
        for (index, matches) in routes.iter().enumerate() {
            let mut hosts: Vec<String> = matches
                .iter()
                .flat_map(|m| m.sni_hosts.iter().cloned())
                .collect();
            hosts.sort();
            hosts.dedup();
            if single_port(matches) == Some(tls.port) && hosts == wanted_hosts {
                indices.push(index);
            }
        }
        if indices.len() == before {
            return Err(PluginError::InvalidConfig(
                "No matching TLS routes found in the defined Virtual Service.".into(),
            ));
        }
    }
    Ok(indices)
}

/// Indices of the TCP routes `set-weight` updates (every route matching a listed port; the only
/// route when none is listed).
pub fn weighted_tcp_routes(
    routes: &[Vec<L4Match>],
    wanted: &[TcpRouteRef],
) -> Result<Vec<usize>, PluginError> {
    if wanted.is_empty() {
        return only_route(routes.len(), "tcp");
    }
    let mut indices = Vec::new();
    for tcp in wanted {
        let before = indices.len();
        indices.extend(
            routes
                .iter()
                .enumerate()
                .filter(|(_, matches)| single_port(matches) == Some(tcp.port))
                .map(|(index, _)| index),
        );
        if indices.len() == before {
            return Err(PluginError::InvalidConfig(
                "No matching TCP routes found in the defined Virtual Service.".into(),
            ));
        }
    }
    Ok(indices)
}

fn only_route(count: usize, section: &str) -> Result<Vec<usize>, PluginError> {
    match count {
        0 => Ok(Vec::new()),
        1 => Ok(vec![0]),
        _ => Err(PluginError::InvalidConfig(format!(
            "spec.{section}[] should be set in VirtualService and it must have exactly one route when omitting spec.strategy.canary.trafficRouting.istio.virtualService.{section}Routes"
        ))),
    }
}

/// Sets the weights of one route's destinations: canary = `weight`, stable = 100 − `weight` −
/// Σ experiment weights (at least 0), experiments their own weight (appended when missing);
/// any other destination is removed. Returns whether anything changed.
pub fn apply_weights(
    destinations: &mut Vec<RouteDestination>,
    targets: &Targets,
    weight: i32,
    additional: &[WeightDestination],
) -> bool {
    let experiments_total: i64 = additional.iter().map(|d| i64::from(d.weight)).sum();
    let stable_weight = (100 - i64::from(weight) - experiments_total).max(0);
    let before = destinations.clone();
    let mut missing: Vec<&WeightDestination> = additional.iter().collect();
    destinations.retain_mut(|route| {
        let desired = if targets.is_canary(&route.destination) {
            i64::from(weight)
        } else if targets.is_stable(&route.destination) {
            stable_weight
        } else if let Some(position) = missing
            .iter()
            .position(|d| d.service_name == route.destination.short_host())
        {
            i64::from(missing.remove(position).weight)
        } else {
            // Argo leaves destinations without a host alone and deletes unknown services.
            return route.destination.short_host().is_empty();
        };
        route.weight = Some(desired);
        true
    });
    for experiment in missing {
        destinations.push(RouteDestination {
            destination: Destination {
                host: experiment.service_name.clone(),
                ..Destination::default()
            },
            weight: Some(i64::from(experiment.weight)),
            other: Map::new(),
        });
    }
    *destinations != before
}

/// Moves the routes named in `managed_routes` to the top, in that order; the others keep their
/// relative order below them.
pub fn order_managed_first(http: &mut Vec<HttpRoute>, managed_routes: &[String]) {
    if managed_routes.is_empty() {
        return;
    }
    let mut rest = std::mem::take(http);
    for name in managed_routes {
        let (matching, others): (Vec<HttpRoute>, Vec<HttpRoute>) =
            rest.into_iter().partition(|route| route.name() == name);
        http.extend(matching);
        rest = others;
    }
    http.extend(rest);
}

/// `set-weight` on one VirtualService spec: the selected HTTP, TLS and TCP routes get their
/// weights (after Argo's validation); managed routes are moved first when anything changed.
pub fn set_weights(
    spec: &mut VirtualServiceSpec,
    virtual_service: &VirtualServiceRef,
    targets: &Targets,
    managed_routes: &[String],
    weight: i32,
    additional: &[WeightDestination],
) -> Result<bool, PluginError> {
    let mut changed = false;
    if let Some(http) = spec.http.as_mut() {
        let listed = weighted_http_routes(http, virtual_service, managed_routes)?;
        for &index in &listed {
            targets.validate(&http[index].route)?;
        }
        let mirrors = http
            .iter()
            .enumerate()
            .filter(|(_, r)| r.mirror.is_some() && managed_routes.iter().any(|m| m == r.name()))
            .map(|(index, _)| index)
            .filter(|index| !listed.contains(index))
            .collect::<Vec<_>>();
        for index in listed.into_iter().chain(mirrors) {
            changed |= apply_weights(&mut http[index].route, targets, weight, additional);
        }
        if changed {
            order_managed_first(http, managed_routes);
        }
    }
    if let Some(tls) = spec.tls.as_mut() {
        let matches: Vec<Vec<L4Match>> = tls.iter().map(|r| r.matches.clone()).collect();
        for index in weighted_tls_routes(&matches, &virtual_service.tls_routes)? {
            targets.validate(&tls[index].route)?;
            changed |= apply_weights(&mut tls[index].route, targets, weight, additional);
        }
    }
    if let Some(tcp) = spec.tcp.as_mut() {
        let matches: Vec<Vec<L4Match>> = tcp.iter().map(|r| r.matches.clone()).collect();
        for index in weighted_tcp_routes(&matches, &virtual_service.tcp_routes)? {
            targets.validate(&tcp[index].route)?;
            changed |= apply_weights(&mut tcp[index].route, targets, weight, additional);
        }
    }
    Ok(changed)
}

/// Istio's `StringMatch` for a WIT string match.
pub fn string_match_json(value: &StringMatch) -> Value {
    match value {
        StringMatch::Exact(v) => json!({"exact": v}),
        StringMatch::Prefix(v) => json!({"prefix": v}),
        StringMatch::Regex(v) => json!({"regex": v}),
    }
}

/// Where header and mirror routes send traffic: the canary host and subset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanaryDestination {
    /// The DestinationRule's host when one is configured, else the canary service.
    pub host: String,
    /// The canary subset, when a DestinationRule is configured.
    pub subset: Option<String>,
}

fn http_routes(spec: &mut VirtualServiceSpec) -> Result<&mut Vec<HttpRoute>, PluginError> {
    spec.http
        .as_mut()
        .ok_or_else(|| PluginError::InvalidConfig("spec.http not found".into()))
}

/// The destinations of the first weighted HTTP route, if any.
fn weighted_route(
    http: &[HttpRoute],
    virtual_service: &VirtualServiceRef,
    managed_routes: &[String],
) -> Option<Vec<RouteDestination>> {
    let index = *weighted_http_routes(http, virtual_service, managed_routes)
        .ok()?
        .first()?;
    Some(http[index].route.clone())
}

/// The `{number: N}` port of the first weighted destination, if it names one.
fn weighted_port(route: Option<&Vec<RouteDestination>>) -> Option<Value> {
    let number = route?
        .first()?
        .destination
        .port
        .as_ref()?
        .get("number")?
        .clone();
    Some(json!({ "number": number }))
}

/// `set-header-route`: removes any HTTP route named `route.name`, then (unless the route has no
/// matches) appends one sending every request that matches a header to the canary; managed
/// routes are then moved first.
pub fn upsert_header_route(
    spec: &mut VirtualServiceSpec,
    virtual_service: &VirtualServiceRef,
    route: &HeaderRoute,
    canary: &CanaryDestination,
    managed_routes: &[String],
) -> Result<(), PluginError> {
    let http = http_routes(spec)?;
    let port = weighted_port(weighted_route(http, virtual_service, managed_routes).as_ref());
    http.retain(|r| r.name() != route.name);
    if !route.matches.is_empty() {
        let matches: Vec<Value> = route
            .matches
            .iter()
            .map(|m| json!({"headers": {m.header_name.clone(): string_match_json(&m.value)}}))
            .collect();
        http.push(HttpRoute {
            name: Some(route.name.clone()),
            route: vec![RouteDestination {
                destination: Destination {
                    host: canary.host.clone(),
                    subset: canary.subset.clone().filter(|s| !s.is_empty()),
                    port,
                    other: Map::new(),
                },
                weight: Some(100),
                other: Map::new(),
            }],
            mirror: None,
            other: Map::from_iter([("match".to_owned(), Value::Array(matches))]),
        });
    }
    order_managed_first(http, managed_routes);
    Ok(())
}

/// `set-mirror-route`: removes any HTTP route named `route.name`, then (unless the route has no
/// matches) puts first a route that keeps the current weighted destinations and mirrors
/// `percentage` (default 100) of the matching requests to the canary; managed routes are then
/// moved first.
pub fn upsert_mirror_route(
    spec: &mut VirtualServiceSpec,
    virtual_service: &VirtualServiceRef,
    route: &MirrorRoute,
    canary: &CanaryDestination,
    managed_routes: &[String],
) -> Result<(), PluginError> {
    let http = http_routes(spec)?;
    http.retain(|r| r.name() != route.name);
    if !route.matches.is_empty() {
        let weighted = weighted_route(http, virtual_service, managed_routes).ok_or_else(|| {
            PluginError::InvalidConfig(
                "no weighted HTTP route to copy into the mirror route".into(),
            )
        })?;
        let mut mirror = Map::new();
        mirror.insert("host".into(), Value::String(canary.host.clone()));
        if let Some(subset) = canary.subset.as_ref().filter(|s| !s.is_empty()) {
            mirror.insert("subset".into(), Value::String(subset.clone()));
        }
        if let Some(port) = weighted_port(Some(&weighted)) {
            mirror.insert("port".into(), port);
        }
        let matches: Vec<Value> = route
            .matches
            .iter()
            .map(|m| {
                let mut block = Map::new();
                if let Some(method) = &m.method {
                    block.insert("method".into(), string_match_json(method));
                }
                if let Some(path) = &m.path {
                    block.insert("uri".into(), string_match_json(path));
                }
                if !m.headers.is_empty() {
                    let headers: Map<String, Value> = m
                        .headers
                        .iter()
                        .map(|(name, value)| (name.clone(), string_match_json(value)))
                        .collect();
                    block.insert("headers".into(), Value::Object(headers));
                }
                Value::Object(block)
            })
            .collect();
        let percentage = route.percentage.unwrap_or(100);
        http.insert(
            0,
            HttpRoute {
                name: Some(route.name.clone()),
                route: weighted,
                mirror: Some(Value::Object(mirror)),
                other: Map::from_iter([
                    ("match".to_owned(), Value::Array(matches)),
                    (
                        "mirrorPercentage".to_owned(),
                        json!({ "value": percentage }),
                    ),
                ]),
            },
        );
    }
    order_managed_first(http, managed_routes);
    Ok(())
}

/// `remove-managed-routes`: drops every HTTP route named in `managed_routes`.
pub fn remove_managed_routes(spec: &mut VirtualServiceSpec, managed_routes: &[String]) {
    if let Some(http) = spec.http.as_mut() {
        http.retain(|route| !managed_routes.iter().any(|m| m == route.name()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::{HeaderMatch, RouteMatch};

    fn spec(value: Value) -> VirtualServiceSpec {
        serde_json::from_value(value).unwrap()
    }

    fn by_host() -> Targets {
        Targets {
            canary_service: "canary".into(),
            stable_service: "stable".into(),
            ..Targets::default()
        }
    }

    fn by_subset() -> Targets {
        Targets {
            canary_subset: Some("canary".into()),
            stable_subset: Some("stable".into()),
            ..Targets::default()
        }
    }

    fn vs(routes: &[&str]) -> VirtualServiceRef {
        VirtualServiceRef {
            name: "vs".into(),
            routes: routes.iter().map(|r| (*r).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn experiment(service: &str, weight: i32) -> WeightDestination {
        WeightDestination {
            service_name: service.into(),
            pod_template_hash: "h".into(),
            weight,
        }
    }

    fn weights(spec: &VirtualServiceSpec, route: usize) -> Vec<(String, Option<i64>)> {
        spec.http.as_ref().unwrap()[route]
            .route
            .iter()
            .map(|d| {
                (
                    d.destination.host.clone()
                        + d.destination
                            .subset
                            .as_deref()
                            .map(|s| format!("/{s}"))
                            .as_deref()
                            .unwrap_or(""),
                    d.weight,
                )
            })
            .collect()
    }

    fn two_hosts() -> Value {
        json!({"hosts": ["web"], "http": [{"name": "primary", "retries": {"attempts": 3}, "route": [
            {"destination": {"host": "stable.shop.svc.cluster.local", "port": {"number": 80}}, "weight": 100, "headers": {"request": {"set": {"x": "1"}}}},
            {"destination": {"host": "canary", "port": {"number": 80}}, "weight": 0}
        ]}]})
    }

    #[test]
    fn weights_by_host_keep_unknown_fields() {
        for weight in [0, 5, 50, 100] {
            let mut s = spec(two_hosts());
            set_weights(&mut s, &vs(&["primary"]), &by_host(), &[], weight, &[]).unwrap();
            let expected = vec![
                (
                    "stable.shop.svc.cluster.local".to_owned(),
                    Some(i64::from(100 - weight)),
                ),
                ("canary".to_owned(), Some(i64::from(weight))),
            ];
            assert_eq!(weights(&s, 0), expected);
            let out = serde_json::to_value(&s).unwrap();
            assert_eq!(out["hosts"], json!(["web"]));
            assert_eq!(out["http"][0]["retries"], json!({"attempts": 3}));
            assert_eq!(
                out["http"][0]["route"][0]["headers"],
                json!({"request": {"set": {"x": "1"}}})
            );
        }
    }

    #[test]
    fn weights_by_subset_and_experiments() {
        let mut s = spec(json!({"http": [{"route": [
            {"destination": {"host": "web", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "web", "subset": "canary"}, "weight": 0},
            {"destination": {"host": "old-experiment"}, "weight": 5}
        ]}]}));
        let changed = set_weights(
            &mut s,
            &vs(&[]),
            &by_subset(),
            &[],
            20,
            &[experiment("exp-a", 10), experiment("exp-b", 5)],
        )
        .unwrap();
        assert!(changed);
        assert_eq!(
            weights(&s, 0),
            vec![
                ("web/stable".to_owned(), Some(65)),
                ("web/canary".to_owned(), Some(20)),
                ("exp-a".to_owned(), Some(10)),
                ("exp-b".to_owned(), Some(5)),
            ]
        );
        assert!(
            !set_weights(
                &mut s,
                &vs(&[]),
                &by_subset(),
                &[],
                20,
                &[experiment("exp-a", 10), experiment("exp-b", 5)]
            )
            .unwrap()
        );
        set_weights(&mut s, &vs(&[]), &by_subset(), &[], 100, &[]).unwrap();
        assert_eq!(
            weights(&s, 0),
            vec![
                ("web/stable".to_owned(), Some(0)),
                ("web/canary".to_owned(), Some(100))
            ]
        );
    }

    #[test]
    fn stable_weight_never_goes_negative() {
        let mut destinations = spec(two_hosts()).http.unwrap().remove(0).route;
        apply_weights(&mut destinations, &by_host(), 90, &[experiment("exp", 20)]);
        let got: Vec<Option<i64>> = destinations.iter().map(|d| d.weight).collect();
        assert_eq!(got, [Some(0), Some(90), Some(20)]);
    }

    #[test]
    fn route_selection_errors_match_argo() {
        let mut s = spec(two_hosts());
        let err = set_weights(&mut s, &vs(&["missing"]), &by_host(), &[], 5, &[]).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidConfig(m) if m == "HTTP Route 'missing' is not found in the defined Virtual Service."),
            "{err:?}"
        );
        let other = Targets {
            canary_service: "nope".into(),
            stable_service: "stable".into(),
            ..Targets::default()
        };
        let err = set_weights(&mut s, &vs(&["primary"]), &other, &[], 5, &[]).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidConfig(m) if m == "Canary Service 'nope' not found in route"),
            "{err:?}"
        );
        let err = set_weights(&mut s, &vs(&["primary"]), &by_subset(), &[], 5, &[]).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidConfig(m) if m == "Canary DestinationRule subset 'canary' not found in route"),
            "{err:?}"
        );
        let mut two =
            spec(json!({"http": [{"name": "a", "route": []}, {"name": "b", "route": []}]}));
        assert!(set_weights(&mut two, &vs(&[]), &by_host(), &[], 5, &[]).is_err());
    }

    #[test]
    fn tls_and_tcp_routes_are_selected_by_port_and_sni_hosts() {
        let destinations = json!([{"destination": {"host": "stable"}, "weight": 100}, {"destination": {"host": "canary"}, "weight": 0}]);
        let mut s = spec(json!({
            "tls": [
                {"match": [{"port": 443, "sniHosts": ["a.example.com"]}], "route": destinations},
                {"match": [{"port": 443, "sniHosts": ["b.example.com"]}], "route": destinations}
            ],
            "tcp": [
                {"match": [{"port": 3306}], "route": destinations},
                {"match": [{"port": 5432}], "route": destinations}
            ]
        }));
        let reference = VirtualServiceRef {
            name: "vs".into(),
            tls_routes: vec![TlsRouteRef {
                port: 443,
                sni_hosts: vec!["b.example.com".into()],
            }],
            tcp_routes: vec![TcpRouteRef { port: 3306 }],
            ..Default::default()
        };
        set_weights(&mut s, &reference, &by_host(), &[], 30, &[]).unwrap();
        let tls: Vec<Option<i64>> = s
            .tls
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.route[1].weight)
            .collect();
        let tcp: Vec<Option<i64>> = s
            .tcp
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.route[1].weight)
            .collect();
        assert_eq!(tls, [Some(0), Some(30)]);
        assert_eq!(tcp, [Some(30), Some(0)]);
        let missing = VirtualServiceRef {
            tcp_routes: vec![TcpRouteRef { port: 1 }],
            ..reference
        };
        assert!(set_weights(&mut s, &missing, &by_host(), &[], 30, &[]).is_err());
    }

    #[test]
    fn header_routes_are_added_replaced_removed_and_ordered_first() {
        let mut s = spec(two_hosts());
        let managed = vec!["by-header".to_owned()];
        let canary = CanaryDestination {
            host: "canary".into(),
            subset: None,
        };
        let route = HeaderRoute {
            name: "by-header".into(),
            matches: vec![HeaderMatch {
                header_name: "x-canary".into(),
                value: StringMatch::Exact("yes".into()),
            }],
        };
        upsert_header_route(&mut s, &vs(&["primary"]), &route, &canary, &managed).unwrap();
        upsert_header_route(&mut s, &vs(&["primary"]), &route, &canary, &managed).unwrap();
        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(
            out["http"][0],
            json!({"name": "by-header", "match": [{"headers": {"x-canary": {"exact": "yes"}}}],
                   "route": [{"destination": {"host": "canary", "port": {"number": 80}}, "weight": 100}]})
        );
        assert_eq!(out["http"].as_array().unwrap().len(), 2);
        let removal = HeaderRoute {
            name: "by-header".into(),
            matches: vec![],
        };
        upsert_header_route(&mut s, &vs(&["primary"]), &removal, &canary, &managed).unwrap();
        assert_eq!(s, spec(two_hosts()));
    }

    #[test]
    fn mirror_routes_copy_the_weighted_route() {
        let mut s = spec(two_hosts());
        set_weights(&mut s, &vs(&["primary"]), &by_host(), &[], 30, &[]).unwrap();
        let canary = CanaryDestination {
            host: "web".into(),
            subset: Some("canary".into()),
        };
        let route = MirrorRoute {
            name: "mirror".into(),
            matches: vec![RouteMatch {
                method: Some(StringMatch::Exact("GET".into())),
                path: Some(StringMatch::Prefix("/api".into())),
                headers: vec![("x-mirror".into(), StringMatch::Regex("y.*".into()))],
            }],
            percentage: Some(25),
        };
        upsert_mirror_route(
            &mut s,
            &vs(&["primary"]),
            &route,
            &canary,
            &["mirror".to_owned()],
        )
        .unwrap();
        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(out["http"][0]["name"], "mirror");
        assert_eq!(
            out["http"][0]["match"],
            json!([{"method": {"exact": "GET"}, "uri": {"prefix": "/api"}, "headers": {"x-mirror": {"regex": "y.*"}}}])
        );
        assert_eq!(out["http"][0]["route"], out["http"][1]["route"]);
        assert_eq!(
            out["http"][0]["mirror"],
            json!({"host": "web", "subset": "canary", "port": {"number": 80}})
        );
        assert_eq!(out["http"][0]["mirrorPercentage"], json!({"value": 25}));

        set_weights(
            &mut s,
            &vs(&["primary"]),
            &by_host(),
            &["mirror".to_owned()],
            60,
            &[],
        )
        .unwrap();
        assert_eq!(
            weights(&s, 0),
            weights(&s, 1),
            "mirror routes follow set-weight"
        );

        remove_managed_routes(&mut s, &["mirror".to_owned()]);
        assert_eq!(s.http.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn managed_routes_come_first_in_their_order() {
        let mut http: Vec<HttpRoute> = ["user-a", "m2", "user-b", "m1"]
            .iter()
            .map(|n| HttpRoute {
                name: Some((*n).into()),
                ..HttpRoute::default()
            })
            .collect();
        order_managed_first(
            &mut http,
            &["m1".to_owned(), "m2".to_owned(), "absent".to_owned()],
        );
        let names: Vec<&str> = http.iter().map(HttpRoute::name).collect();
        assert_eq!(names, ["m1", "m2", "user-a", "user-b"]);
    }
}
