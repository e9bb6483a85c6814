//! Router calls of a plan, sent through the plugin registry to every configured router.

use kube::ResourceExt;
use sluice_api::rollout::{self as api, Rollout};
use sluice_core::RouterCall;
use sluice_core::observed::WeightVerification;
use sluice_runtime::{
    HeaderMatch, HeaderRoute, MirrorRoute, PluginRegistry, RolloutContext, RouteMatch, StringMatch,
    Verification, WeightDestination,
};

use crate::error::{Error, Result};

/// One traffic router configured on a Rollout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConfiguredRouter {
    /// The registry name of the plugin (`nginx`, `istio`, or the key under
    /// `trafficRouting.plugins`).
    pub plugin: String,
    /// The router's configuration block, as JSON.
    pub config: String,
}

/// The routers of a Rollout in call order: `nginx`, `istio`, then `plugins` by name. Routers
/// Sluice serves only through plugins (ALB, SMI, …) are an error.
pub(crate) fn configured_routers(rollout: &Rollout) -> Result<Vec<ConfiguredRouter>> {
    let Some(routing) = rollout
        .canary()
        .and_then(|canary| canary.traffic_routing.as_ref())
    else {
        return Ok(Vec::new());
    };
    let unsupported = [
        ("alb", routing.alb.is_some()),
        ("smi", routing.smi.is_some()),
        ("ambassador", routing.ambassador.is_some()),
        ("appMesh", routing.app_mesh.is_some()),
        ("traefik", routing.traefik.is_some()),
        ("apisix", routing.apisix.is_some()),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(Error::UnsupportedRouter((*name).to_string()));
    }
    let mut routers = Vec::new();
    if let Some(nginx) = &routing.nginx {
        routers.push(block("nginx", nginx)?);
    }
    if let Some(istio) = &routing.istio {
        routers.push(block("istio", istio)?);
    }
    for (name, config) in routing.plugins.iter().flatten() {
        routers.push(block(name, config)?);
    }
    Ok(routers)
}

/// A router block as a [`ConfiguredRouter`].
fn block(name: &str, value: &impl serde::Serialize) -> Result<ConfiguredRouter> {
    let config = serde_json::to_string(value).map_err(|source| Error::Serialization {
        what: format!("traffic router {name}"),
        source,
    })?;
    Ok(ConfiguredRouter {
        plugin: name.to_string(),
        config,
    })
}

/// The context of a router call.
pub(crate) struct RouterCallContext<'a> {
    /// The Rollout.
    pub rollout: &'a Rollout,
    /// The Rollout as JSON.
    pub rollout_json: String,
    /// Canary pod-template hash (the desired revision).
    pub canary_hash: String,
    /// Stable pod-template hash.
    pub stable_hash: String,
}

impl RouterCallContext<'_> {
    fn for_router(&self, router: &ConfiguredRouter) -> RolloutContext {
        let canary = self.rollout.canary();
        RolloutContext {
            namespace: self.rollout.namespace().unwrap_or_default(),
            name: self.rollout.name_any(),
            uid: self.rollout.uid().unwrap_or_default(),
            plugin_name: router.plugin.clone(),
            plugin_config: router.config.clone(),
            canary_service: canary
                .and_then(|canary| canary.canary_service.clone())
                .unwrap_or_default(),
            stable_service: canary
                .and_then(|canary| canary.stable_service.clone())
                .unwrap_or_default(),
            canary_pod_template_hash: self.canary_hash.clone(),
            stable_pod_template_hash: self.stable_hash.clone(),
            rollout_json: self.rollout_json.clone(),
        }
    }
}

/// Sends `call` to every router, in order; returns the combined verification for
/// `verify-weight` calls.
pub(crate) async fn call_routers(
    registry: &PluginRegistry,
    routers: &[ConfiguredRouter],
    context: &RouterCallContext<'_>,
    call: &RouterCall,
) -> Result<Option<WeightVerification>> {
    let mut verifications = Vec::new();
    for router in routers {
        let ctx = context.for_router(router);
        let failed = |source| Error::Router {
            router: router.plugin.clone(),
            source,
        };
        let plugin = registry
            .traffic_router(&router.plugin)
            .await
            .map_err(failed)?;
        match call {
            RouterCall::UpdateHash {
                canary_hash,
                stable_hash,
                additional,
            } => plugin
                .update_hash(&ctx, canary_hash, stable_hash, &destinations(additional))
                .await
                .map_err(failed)?,
            RouterCall::SetWeight { weight, additional } => plugin
                .set_weight(&ctx, *weight, &destinations(additional))
                .await
                .map_err(failed)?,
            RouterCall::SetHeaderRoute(route) => plugin
                .set_header_route(&ctx, &header_route(route))
                .await
                .map_err(failed)?,
            RouterCall::SetMirrorRoute(route) => plugin
                .set_mirror_route(&ctx, &mirror_route(route))
                .await
                .map_err(failed)?,
            RouterCall::VerifyWeight { weight, additional } => verifications.push(
                plugin
                    .verify_weight(&ctx, *weight, &destinations(additional))
                    .await
                    .map_err(failed)?,
            ),
            RouterCall::RemoveManagedRoutes => {
                plugin.remove_managed_routes(&ctx).await.map_err(failed)?;
            }
        }
    }
    Ok(match call {
        RouterCall::VerifyWeight { weight, .. } => Some(WeightVerification {
            weight: *weight,
            verified: combine(&verifications),
        }),
        _ => None,
    })
}

/// Not verified if any router says so; verified if at least one verified and none refused;
/// unknown when no router can verify.
fn combine(verifications: &[Verification]) -> Option<bool> {
    if verifications.contains(&Verification::NotVerified) {
        Some(false)
    } else if verifications.contains(&Verification::Verified) {
        Some(true)
    } else {
        None
    }
}

fn destinations(additional: &[api::WeightDestination]) -> Vec<WeightDestination> {
    additional
        .iter()
        .map(|destination| WeightDestination {
            service_name: destination.service_name.clone().unwrap_or_default(),
            pod_template_hash: destination.pod_template_hash.clone().unwrap_or_default(),
            weight: destination.weight,
        })
        .collect()
}

fn string_match(matcher: &api::StringMatch) -> StringMatch {
    match (&matcher.exact, &matcher.prefix, &matcher.regex) {
        (Some(exact), _, _) => StringMatch::Exact(exact.clone()),
        (None, Some(prefix), _) => StringMatch::Prefix(prefix.clone()),
        (None, None, Some(regex)) => StringMatch::Regex(regex.clone()),
        (None, None, None) => StringMatch::Exact(String::new()),
    }
}

fn header_route(route: &api::SetHeaderRoute) -> HeaderRoute {
    HeaderRoute {
        name: route.name.clone(),
        matches: route
            .matches
            .iter()
            .map(|matcher| HeaderMatch {
                header_name: matcher.header_name.clone(),
                value: string_match(&matcher.header_value),
            })
            .collect(),
    }
}

fn mirror_route(route: &api::SetMirrorRoute) -> MirrorRoute {
    MirrorRoute {
        name: route.name.clone(),
        matches: route
            .matches
            .iter()
            .map(|matcher| RouteMatch {
                method: matcher.method.as_ref().map(string_match),
                path: matcher.path.as_ref().map(string_match),
                headers: matcher
                    .headers
                    .iter()
                    .map(|(name, value)| (name.clone(), string_match(value)))
                    .collect(),
            })
            .collect(),
        percentage: route.percentage,
    }
}
