//! Istio traffic router: VirtualService route weights and DestinationRule subsets.
//!
//! Behaves as Argo Rollouts' in-tree `istio` router for the same `trafficRouting.istio` block:
//! `set-weight` sets the canary/stable (and experiment) destination weights of the listed HTTP,
//! TLS and TCP routes of each VirtualService; `update-hash` pins the DestinationRule's canary and
//! stable subsets to the pod-template hashes; header and mirror routes are added to, and managed
//! routes removed from, the HTTP routes, with `managedRoutes` ordered first. Every write is a
//! merge patch carrying the resourceVersion that was read, so a concurrent change is a conflict,
//! which is retried from a fresh read a bounded number of times.
//!
//! The pure logic is in [`routes`] and [`subsets`]; this module only talks to the host.

pub mod config;
pub mod model;
pub mod routes;
pub mod subsets;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sluice_plugin_sdk::kube::{self, Gvk, KubeError, PatchType};
use sluice_plugin_sdk::{
    HeaderRoute, MirrorRoute, PluginError, RolloutContext, TrafficRouter, WeightDestination,
};

use crate::config::{ISTIO_GROUP, RouterInput, VirtualServiceRef};
use crate::model::{DestinationRuleSpec, VirtualServiceSpec};
use crate::routes::{CanaryDestination, Targets};
use crate::subsets::{MANAGED_BY_ANNOTATION, pinned_subsets};

/// The type name Argo reports for this router.
pub const PLUGIN_TYPE: &str = "Istio";

/// How many times a write that conflicted is retried from a fresh read.
pub const MAX_WRITE_ATTEMPTS: usize = 5;

/// The Istio traffic router.
pub struct IstioRouter;

fn gvk(input: &RouterInput, kind: &str) -> Gvk {
    Gvk {
        group: ISTIO_GROUP.into(),
        version: input.config.version().into(),
        kind: kind.into(),
    }
}

fn targets(input: &RouterInput) -> Targets {
    let rule = input.config.destination_rule.as_ref();
    Targets {
        canary_service: input.canary_service.clone(),
        stable_service: input.stable_service.clone(),
        canary_subset: rule.map(|r| r.canary_subset_name.clone()),
        stable_subset: rule.map(|r| r.stable_subset_name.clone()),
    }
}

/// The fields of `changed` that differ from `original` (as JSON; removed fields become `null`).
fn changed_fields<T: Serialize>(original: &T, changed: &T) -> Map<String, Value> {
    let as_map = |value: &T| match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let (before, after) = (as_map(original), as_map(changed));
    let mut fields: Map<String, Value> = after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    for key in before.keys().filter(|key| !after.contains_key(*key)) {
        fields.insert(key.clone(), Value::Null);
    }
    fields
}

/// Reads an Istio object, lets `transform` change its typed `spec` (and return extra
/// annotations to set), and writes the difference as a merge patch guarded by the read
/// resourceVersion. Conflicts are retried from a fresh read up to [`MAX_WRITE_ATTEMPTS`] times.
fn read_modify_write<S: Serialize + DeserializeOwned + Clone>(
    gvk: &Gvk,
    namespace: &str,
    name: &str,
    mut transform: impl FnMut(&Value, &mut S) -> Result<Map<String, Value>, PluginError>,
) -> Result<(), PluginError> {
    let describe = || format!("{} `{namespace}/{name}`", gvk.kind);
    let mut last_conflict = String::new();
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let object =
            kube::get_dynamic(gvk.clone(), Some(namespace), name).map_err(|error| match error {
                KubeError::NotFound(_) => {
                    PluginError::NotFound(format!("{} not found", describe()))
                }
                other => other.into(),
            })?;
        let original: S =
            serde_json::from_value(object.get("spec").cloned().unwrap_or_else(|| json!({})))
                .map_err(|e| {
                    PluginError::InvalidConfig(format!(
                        "{} has an unexpected spec: {e}",
                        describe()
                    ))
                })?;
        let mut spec = original.clone();
        let annotations = transform(&object, &mut spec)?;
        let spec_changes = changed_fields(&original, &spec);
        if spec_changes.is_empty() && annotations.is_empty() {
            sluice_plugin_sdk::debug!("{} already up to date", describe());
            return Ok(());
        }
        let mut metadata = Map::new();
        metadata.insert(
            "resourceVersion".into(),
            object
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if !annotations.is_empty() {
            metadata.insert("annotations".into(), Value::Object(annotations));
        }
        let mut patch = Map::new();
        patch.insert("metadata".into(), Value::Object(metadata));
        if !spec_changes.is_empty() {
            patch.insert("spec".into(), Value::Object(spec_changes));
        }
        match kube::patch_dynamic(
            gvk.clone(),
            Some(namespace),
            name,
            PatchType::Merge,
            &Value::Object(patch),
        ) {
            Ok(_) => {
                sluice_plugin_sdk::info!("updated {}", describe());
                return Ok(());
            }
            Err(KubeError::Conflict(message)) => {
                sluice_plugin_sdk::debug!(
                    "{} changed while updating it ({message}); retrying",
                    describe()
                );
                last_conflict = message;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(PluginError::Conflict(format!(
        "{} kept changing during {MAX_WRITE_ATTEMPTS} attempts: {last_conflict}",
        describe()
    )))
}

/// Applies `transform` to the spec of every configured VirtualService.
fn update_virtual_services(
    input: &RouterInput,
    mut transform: impl FnMut(&VirtualServiceRef, &mut VirtualServiceSpec) -> Result<(), PluginError>,
) -> Result<(), PluginError> {
    let gvk = gvk(input, "VirtualService");
    for reference in input.config.virtual_service_refs()? {
        let (namespace, name) = reference.namespace_and_name(&input.namespace);
        read_modify_write(&gvk, namespace, name, |_, spec: &mut VirtualServiceSpec| {
            transform(&reference, spec).map(|()| Map::new())
        })?;
    }
    Ok(())
}

/// Where header and mirror routes point: the DestinationRule's host and canary subset when one
/// is configured, else the canary service.
fn canary_destination(input: &RouterInput) -> Result<CanaryDestination, PluginError> {
    let Some(rule) = &input.config.destination_rule else {
        return Ok(CanaryDestination {
            host: input.canary_service.clone(),
            subset: None,
        });
    };
    let object = kube::get_dynamic(
        gvk(input, "DestinationRule"),
        Some(&input.namespace),
        &rule.name,
    )
    .map_err(|error| match error {
        KubeError::NotFound(_) => PluginError::NotFound(format!(
            "DestinationRule `{}/{}` not found",
            input.namespace, rule.name
        )),
        other => other.into(),
    })?;
    let host = object
        .pointer("/spec/host")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(CanaryDestination {
        host: if host.is_empty() {
            input.canary_service.clone()
        } else {
            host.to_owned()
        },
        subset: Some(rule.canary_subset_name.clone()),
    })
}

impl TrafficRouter for IstioRouter {
    fn plugin_type() -> String {
        PLUGIN_TYPE.into()
    }

    fn set_weight(
        ctx: RolloutContext,
        desired_weight: i32,
        additional_destinations: Vec<WeightDestination>,
    ) -> Result<(), PluginError> {
        let input = RouterInput::from_context(&ctx)?;
        let targets = targets(&input);
        update_virtual_services(&input, |reference, spec| {
            routes::set_weights(
                spec,
                reference,
                &targets,
                &input.managed_routes,
                desired_weight,
                &additional_destinations,
            )
            .map(drop)
        })
    }

    fn update_hash(
        ctx: RolloutContext,
        canary_hash: String,
        stable_hash: String,
        additional_destinations: Vec<WeightDestination>,
    ) -> Result<(), PluginError> {
        let input = RouterInput::from_context(&ctx)?;
        let Some(rule) = &input.config.destination_rule else {
            return Ok(());
        };
        let gvk = gvk(&input, "DestinationRule");
        read_modify_write(
            &gvk,
            &input.namespace,
            &rule.name,
            |object, spec: &mut DestinationRuleSpec| {
                spec.subsets = pinned_subsets(
                    &spec.subsets,
                    rule,
                    &canary_hash,
                    &stable_hash,
                    &additional_destinations,
                );
                let managed_by = object
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(MANAGED_BY_ANNOTATION));
                let mut annotations = Map::new();
                if managed_by.and_then(Value::as_str) != Some(input.rollout_name.as_str()) {
                    annotations.insert(
                        MANAGED_BY_ANNOTATION.into(),
                        Value::String(input.rollout_name.clone()),
                    );
                }
                Ok(annotations)
            },
        )
    }

    fn set_header_route(ctx: RolloutContext, route: HeaderRoute) -> Result<(), PluginError> {
        let input = RouterInput::from_context(&ctx)?;
        let canary = canary_destination(&input)?;
        update_virtual_services(&input, |reference, spec| {
            routes::upsert_header_route(spec, reference, &route, &canary, &input.managed_routes)
        })
    }

    fn set_mirror_route(ctx: RolloutContext, route: MirrorRoute) -> Result<(), PluginError> {
        let input = RouterInput::from_context(&ctx)?;
        let canary = canary_destination(&input)?;
        update_virtual_services(&input, |reference, spec| {
            routes::upsert_mirror_route(spec, reference, &route, &canary, &input.managed_routes)
        })
    }

    fn remove_managed_routes(ctx: RolloutContext) -> Result<(), PluginError> {
        let input = RouterInput::from_context(&ctx)?;
        if input.managed_routes.is_empty() {
            return Ok(());
        }
        update_virtual_services(&input, |_, spec| {
            routes::remove_managed_routes(spec, &input.managed_routes);
            Ok(())
        })
    }
}

sluice_plugin_sdk::export_traffic_router!(IstioRouter);
