//! Writes a Rollout's status through the status subresource, only when it changed.

use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;
use sluice_api::rollout::{Rollout, RolloutStatus};

use crate::context::{Context, await_cached};
use crate::error::{Error, Result};
use crate::patch::merge_patch;

/// Merge-patches `status` over the cached status of `rollout`; no request when they are equal.
/// Returns whether a request was made.
pub(crate) async fn write_status(
    rollout: &Rollout,
    status: &RolloutStatus,
    ctx: &Context,
) -> Result<bool> {
    let serialize = |status: Option<&RolloutStatus>| {
        serde_json::to_value(status).map_err(|source| Error::Serialization {
            what: "Rollout status".into(),
            source,
        })
    };
    let old = serialize(rollout.status.as_ref())?;
    let new = serialize(Some(status))?;
    let old = if old.is_null() { json!({}) } else { old };
    let Some(change) = merge_patch(&old, &new) else {
        return Ok(false);
    };
    let namespace = rollout
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let name = rollout.name_any();
    let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": change})),
        )
        .await;
    let code = match &result {
        Ok(_) => "200".to_string(),
        Err(kube::Error::Api(status)) => status.code.to_string(),
        Err(_) => "error".to_string(),
    };
    ctx.metrics
        .count_request("Rollout", &namespace, "Patch", &code);
    let patched =
        result.map_err(|source| Error::kube(format!("patch status of Rollout {name}"), source))?;
    if let Some(resource_version) = patched.resource_version() {
        await_cached(
            &ctx.stores.rollouts,
            &ObjectRef::from_obj(&patched),
            &resource_version,
        )
        .await;
    }
    Ok(true)
}
