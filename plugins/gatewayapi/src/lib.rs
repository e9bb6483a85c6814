//! Gateway API traffic router (HTTPRoute, GRPCRoute, TCPRoute); also answers to
//! `argoproj-labs/gatewayAPI` and accepts that plugin's configuration.
//!
//! Every call reads the configured routes, rewrites their `spec.rules` with the pure functions
//! of [`rewrite`], and writes them back with a JSON merge patch carrying the resourceVersion it
//! read, so the API server refuses a write over a concurrent change; the router then re-reads
//! and retries (at most [`MAX_ATTEMPTS`] times). Header and mirror rules are named rules, and
//! which rules and backends each Rollout manages is recorded in the route's
//! [`managed::MANAGED_ROUTES_ANNOTATION`] annotation. See the crate's README for the
//! configuration, the grants and how it differs from the upstream plugin.

pub mod config;
pub mod managed;
pub mod model;
pub mod rewrite;

use serde_json::json;
use sluice_plugin_sdk::kube::{self, KubeError, PatchType};
use sluice_plugin_sdk::{
    HeaderRoute, MirrorRoute, PluginError, RolloutContext, TrafficRouter, Verification,
    WeightDestination,
};

use crate::config::{Config, ConfiguredRoute};
use crate::managed::{MANAGED_ROUTES_ANNOTATION, ManagedRecord};
use crate::model::{Route, RouteKind};
use crate::rewrite::{RewriteError, Target};

/// The type name reported to the host, as the upstream plugin's.
pub const PLUGIN_TYPE: &str = "GatewayAPI";

/// Attempts of one route update before a conflict is returned to the host.
pub const MAX_ATTEMPTS: u32 = 5;

/// The plugin.
pub struct GatewayApiRouter;

/// The Rollout-level facts every call needs.
struct Call<'a> {
    ctx: &'a RolloutContext,
    config: Config,
}

impl<'a> Call<'a> {
    fn new(ctx: &'a RolloutContext) -> Result<Self, PluginError> {
        let config = Config::parse(&ctx.plugin_config, &ctx.namespace)?;
        for (field, value) in [
            ("canaryService", &ctx.canary_service),
            ("stableService", &ctx.stable_service),
        ] {
            if value.is_empty() {
                return Err(PluginError::InvalidConfig(format!(
                    "the Gateway API router needs spec.strategy.canary.{field} on Rollout {}/{}",
                    ctx.namespace, ctx.name
                )));
            }
        }
        Ok(Self { ctx, config })
    }

    fn label(&self, route: &ConfiguredRoute) -> String {
        format!(
            "{} {}/{}",
            route.kind.kind(),
            self.config.namespace,
            route.name
        )
    }

    fn target<'b>(&'b self, label: &'b str) -> Target<'b> {
        Target {
            route: label,
            rollout: &self.ctx.name,
            canary: &self.ctx.canary_service,
            stable: &self.ctx.stable_service,
        }
    }

    /// Reads a route and its record of managed rules.
    fn read(
        &self,
        route: &ConfiguredRoute,
        label: &str,
    ) -> Result<(Route, ManagedRecord), PluginError> {
        let object = kube::get_dynamic(route.kind.gvk(), Some(&self.config.namespace), &route.name)
            .map_err(|e| kube_error(label, "reading", e))?;
        let parsed: Route = serde_json::from_value(object).map_err(|e| {
            PluginError::Internal(format!("{label} is not a valid {}: {e}", route.kind.kind()))
        })?;
        let annotation = parsed
            .metadata
            .annotations
            .get(MANAGED_ROUTES_ANNOTATION)
            .map(String::as_str);
        let record = ManagedRecord::parse(annotation).map_err(|e| {
            PluginError::InvalidConfig(format!(
                "{label}: annotation {MANAGED_ROUTES_ANNOTATION} is not valid JSON ({e}); fix or remove it"
            ))
        })?;
        Ok((parsed, record))
    }

    /// Reads, rewrites and writes one route, re-reading and retrying on conflicts.
    fn update(
        &self,
        route: &ConfiguredRoute,
        mut rewrite: impl FnMut(&mut Route, &mut ManagedRecord, &Target<'_>) -> Result<(), RewriteError>,
    ) -> Result<(), PluginError> {
        let label = self.label(route);
        let target = self.target(&label);
        let mut last_conflict = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let (mut object, mut record) = self.read(route, &label)?;
            let original_rules = object.spec.rules.clone();
            let original_annotation = object
                .metadata
                .annotations
                .get(MANAGED_ROUTES_ANNOTATION)
                .cloned();
            rewrite(&mut object, &mut record, &target)?;
            let annotation = record.to_annotation();
            if object.spec.rules == original_rules && annotation == original_annotation {
                sluice_plugin_sdk::debug!("{label} already up to date");
                return Ok(());
            }
            let body = json!({
                "metadata": {
                    "resourceVersion": object.metadata.resource_version,
                    "annotations": {MANAGED_ROUTES_ANNOTATION: annotation},
                },
                "spec": {"rules": object.spec.rules},
            });
            match kube::patch_dynamic(
                route.kind.gvk(),
                Some(&self.config.namespace),
                &route.name,
                PatchType::Merge,
                &body,
            ) {
                Ok(stored) => {
                    sluice_plugin_sdk::debug!("updated {label} (attempt {attempt})");
                    let added = rewrite::added_rule_names(&original_rules, &object.spec.rules);
                    return self.check_rule_names_kept(
                        route,
                        &label,
                        stored,
                        &added,
                        original_rules,
                        original_annotation,
                    );
                }
                Err(KubeError::Conflict(message)) => {
                    sluice_plugin_sdk::info!(
                        "{label} changed while updating it (attempt {attempt}), retrying: {message}"
                    );
                    last_conflict = message;
                }
                Err(error) => return Err(kube_error(&label, "updating", error)),
            }
        }
        Err(PluginError::Conflict(format!(
            "{label} kept changing during {MAX_ATTEMPTS} attempts to update it: {last_conflict}"
        )))
    }

    /// Rolls back an update whose new rule names the API server dropped: CRDs older than
    /// Gateway API v1.2 have no `rules[].name` and prune it, which would leave rules the router
    /// can never find again.
    fn check_rule_names_kept(
        &self,
        route: &ConfiguredRoute,
        label: &str,
        stored: serde_json::Value,
        added: &[String],
        original_rules: Vec<model::Rule>,
        original_annotation: Option<String>,
    ) -> Result<(), PluginError> {
        let stored: Route = serde_json::from_value(stored).map_err(|e| {
            PluginError::Internal(format!("{label} is not a valid {}: {e}", route.kind.kind()))
        })?;
        let dropped = rewrite::missing_rule_names(&stored, added);
        if dropped.is_empty() {
            return Ok(());
        }
        let revert = json!({
            "metadata": {
                "resourceVersion": stored.metadata.resource_version,
                "annotations": {MANAGED_ROUTES_ANNOTATION: original_annotation},
            },
            "spec": {"rules": original_rules},
        });
        let rolled_back = kube::patch_dynamic(
            route.kind.gvk(),
            Some(&self.config.namespace),
            &route.name,
            PatchType::Merge,
            &revert,
        )
        .map_or_else(
            |e| format!("rolling the change back failed: {e}"),
            |_| "the change was rolled back".to_owned(),
        );
        Err(PluginError::InvalidConfig(format!(
            "{label}: the API server dropped the names of the rules {dropped:?}, so its {} CRD predates Gateway API \
             v1.2 (rules[].name); header and mirror routes need Gateway API v1.2 or newer; {rolled_back}",
            route.kind.kind()
        )))
    }

    /// Routes that take header (and mirror) rules, of the given kinds.
    fn header_routes(&self, kinds: &[RouteKind]) -> Vec<&ConfiguredRoute> {
        let routes: Vec<_> = self
            .config
            .routes
            .iter()
            .filter(|r| r.use_header_routes && kinds.contains(&r.kind))
            .collect();
        if routes.is_empty() {
            sluice_plugin_sdk::warn!(
                "no configured route of kind {kinds:?} has useHeaderRoutes: true; nothing to do for Rollout {}/{}",
                self.ctx.namespace,
                self.ctx.name
            );
        }
        routes
    }
}

/// A host error with the route and the action in its message.
fn kube_error(label: &str, action: &str, error: KubeError) -> PluginError {
    match error {
        KubeError::NotFound(message) => {
            PluginError::NotFound(format!("{label} not found while {action} it: {message}"))
        }
        KubeError::AccessDenied(message) => {
            PluginError::AccessDenied(format!("{action} {label}: {message}"))
        }
        KubeError::Conflict(message) => {
            PluginError::Conflict(format!("{action} {label}: {message}"))
        }
        KubeError::Invalid(message) => {
            PluginError::Internal(format!("{action} {label} was rejected: {message}"))
        }
        KubeError::Unavailable(message) => {
            PluginError::Transient(format!("{action} {label}: {message}"))
        }
    }
}

impl TrafficRouter for GatewayApiRouter {
    fn plugin_type() -> String {
        PLUGIN_TYPE.to_owned()
    }

    fn set_weight(
        ctx: RolloutContext,
        desired_weight: i32,
        additional_destinations: Vec<WeightDestination>,
    ) -> Result<(), PluginError> {
        let call = Call::new(&ctx)?;
        for route in &call.config.routes {
            call.update(route, |object, record, target| {
                rewrite::set_weights(
                    object,
                    record,
                    target,
                    desired_weight,
                    &additional_destinations,
                )
            })?;
        }
        sluice_plugin_sdk::info!(
            "set canary weight {desired_weight} on {} route(s) of Rollout {}/{}",
            call.config.routes.len(),
            ctx.namespace,
            ctx.name
        );
        Ok(())
    }

    fn set_header_route(ctx: RolloutContext, route: HeaderRoute) -> Result<(), PluginError> {
        let call = Call::new(&ctx)?;
        let headers = route
            .matches
            .iter()
            .map(|m| rewrite::header_match(&m.header_name, &m.value))
            .collect::<Result<Vec<_>, _>>()?;
        for configured in call.header_routes(&[RouteKind::Http, RouteKind::Grpc]) {
            call.update(configured, |object, record, target| {
                rewrite::set_header_route(object, record, target, &route.name, &headers)
            })?;
        }
        Ok(())
    }

    fn set_mirror_route(ctx: RolloutContext, route: MirrorRoute) -> Result<(), PluginError> {
        let call = Call::new(&ctx)?;
        let matches = rewrite::mirror_matches(&route.matches)?;
        for configured in call.header_routes(&[RouteKind::Http]) {
            call.update(configured, |object, record, target| {
                rewrite::set_mirror_route(
                    object,
                    record,
                    target,
                    &route.name,
                    matches.clone(),
                    route.percentage,
                )
            })?;
        }
        Ok(())
    }

    fn verify_weight(
        ctx: RolloutContext,
        desired_weight: i32,
        additional_destinations: Vec<WeightDestination>,
    ) -> Result<Verification, PluginError> {
        let call = Call::new(&ctx)?;
        for route in &call.config.routes {
            let label = call.label(route);
            let (object, record) = call.read(route, &label)?;
            if !rewrite::weights_match(
                &object,
                &record,
                &call.target(&label),
                desired_weight,
                &additional_destinations,
            ) {
                sluice_plugin_sdk::info!(
                    "{label} does not carry canary weight {desired_weight} yet"
                );
                return Ok(Verification::NotVerified);
            }
        }
        Ok(Verification::Verified)
    }

    fn remove_managed_routes(ctx: RolloutContext) -> Result<(), PluginError> {
        let call = Call::new(&ctx)?;
        for route in call
            .config
            .routes
            .iter()
            .filter(|r| r.kind.supports_header_routes())
        {
            let result = call.update(route, |object, record, target| {
                rewrite::remove_managed_routes(object, record, target.rollout);
                Ok(())
            });
            match result {
                Err(PluginError::NotFound(message)) => {
                    sluice_plugin_sdk::warn!("nothing to remove: {message}");
                }
                other => other?,
            }
        }
        Ok(())
    }
}

sluice_plugin_sdk::export_traffic_router!(GatewayApiRouter);
