//! NGINX Ingress traffic router: owns a canary Ingress with canary-weight annotations.
//!
//! Behaves as Argo Rollouts' in-tree `nginx` router for the same `trafficRouting.nginx` block:
//! for each stable Ingress it creates (or merge-patches) `<rollout>-<stableIngress>-canary`, a
//! copy of the stable Ingress rules that point at the stable service, rewritten to the canary
//! service, annotated with `<prefix>/canary: "true"` and `<prefix>/canary-weight`. The user's
//! stable Ingress is only read. Header and mirror routes, hash updates and managed-route
//! removal are no-ops, and weights cannot be verified, exactly as in Argo.
//!
//! The pure logic is in [`canary`] and [`config`]; this module only talks to the host.

pub mod canary;
pub mod config;

use k8s_openapi::api::networking::v1::Ingress;
use sluice_plugin_sdk::kube::{self, KubeError, PatchType};
use sluice_plugin_sdk::{
    HeaderRoute, MirrorRoute, PluginError, RolloutContext, TrafficRouter, WeightDestination,
};

use crate::canary::{canary_update_patch, desired_canary_ingress, is_controlled_by};
use crate::config::RouterInput;

/// The type name Argo reports for this router.
pub const PLUGIN_TYPE: &str = "Nginx";

/// The NGINX traffic router.
pub struct NginxRouter;

/// Reads the stable Ingress `name`; a missing one is a `not-found` error naming it.
fn stable_ingress(input: &RouterInput, name: &str) -> Result<Ingress, PluginError> {
    kube::get::<Ingress>(Some(&input.namespace), name).map_err(|error| match error {
        KubeError::NotFound(_) => PluginError::NotFound(format!(
            "stable Ingress `{name}` not found in namespace {}",
            input.namespace
        )),
        other => other.into(),
    })
}

/// Brings the canary Ingress of one stable Ingress to `weight`.
fn reconcile_canary_ingress(
    input: &RouterInput,
    stable_name: &str,
    weight: i32,
) -> Result<(), PluginError> {
    let stable = stable_ingress(input, stable_name)?;
    let desired = desired_canary_ingress(input, stable_name, &stable, weight)?;
    let canary_name = desired.metadata.name.clone().unwrap_or_default();
    let namespace = Some(input.namespace.as_str());

    let current = match kube::get::<Ingress>(namespace, &canary_name) {
        Ok(current) => current,
        Err(KubeError::NotFound(_)) => match kube::create(namespace, &desired) {
            Ok(_) => {
                sluice_plugin_sdk::info!(
                    "created canary Ingress {canary_name} with weight {weight}"
                );
                return Ok(());
            }
            // Created concurrently: continue as if it had existed.
            Err(KubeError::Conflict(_)) => kube::get::<Ingress>(namespace, &canary_name)?,
            Err(other) => return Err(other.into()),
        },
        Err(other) => return Err(other.into()),
    };

    if !is_controlled_by(&current, &input.rollout_uid) {
        return Err(PluginError::InvalidConfig(format!(
            "canary ingress `{canary_name}` controlled by different object"
        )));
    }
    match canary_update_patch(&current, &desired) {
        None => {
            sluice_plugin_sdk::debug!("canary Ingress {canary_name} already at weight {weight}")
        }
        Some(patch) => {
            kube::patch::<Ingress>(namespace, &canary_name, PatchType::Merge, &patch)?;
            sluice_plugin_sdk::info!("updated canary Ingress {canary_name} to weight {weight}");
        }
    }
    Ok(())
}

impl TrafficRouter for NginxRouter {
    fn plugin_type() -> String {
        PLUGIN_TYPE.into()
    }

    fn set_weight(
        ctx: RolloutContext,
        desired_weight: i32,
        _additional_destinations: Vec<WeightDestination>,
    ) -> Result<(), PluginError> {
        let input = RouterInput::from_context(&ctx)?;
        for stable_name in input.config.stable_ingress_names()? {
            reconcile_canary_ingress(&input, &stable_name, desired_weight)?;
        }
        Ok(())
    }

    /// A no-op, as in Argo: header routing is configured with `additionalIngressAnnotations`.
    fn set_header_route(_ctx: RolloutContext, _route: HeaderRoute) -> Result<(), PluginError> {
        Ok(())
    }

    /// A no-op, as in Argo.
    fn set_mirror_route(_ctx: RolloutContext, _route: MirrorRoute) -> Result<(), PluginError> {
        Ok(())
    }
}

sluice_plugin_sdk::export_traffic_router!(NginxRouter);
