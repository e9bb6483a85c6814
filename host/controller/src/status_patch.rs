//! Writes an object's status through the status subresource: a merge patch of what changed, no
//! request when nothing did, and a wait until the watch cache shows the write.

use std::fmt::Debug;
use std::hash::Hash;

use kube::api::{Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::context::{Context, await_cached};
use crate::error::{Error, Result};
use crate::patch::merge_patch;

/// A status as JSON for diffing; an absent status is `{}`.
pub(crate) fn status_json<S: Serialize>(status: Option<&S>, what: &str) -> Result<Value> {
    let value = serde_json::to_value(status).map_err(|source| Error::Serialization {
        what: what.into(),
        source,
    })?;
    Ok(if value.is_null() { json!({}) } else { value })
}

/// Merge-patches the status of `object` from `old` to `new`. Returns whether a request was made.
pub(crate) async fn patch_status<K>(
    ctx: &Context,
    object: &K,
    old: &Value,
    new: &Value,
    cache: &Store<K>,
) -> Result<bool>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + DeserializeOwned + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let Some(change) = merge_patch(old, new) else {
        return Ok(false);
    };
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let namespace = object
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": change})),
        )
        .await;
    ctx.metrics
        .count_request(&kind, &namespace, "Patch", &result);
    let patched =
        result.map_err(|source| Error::kube(format!("patch status of {kind} {name}"), source))?;
    if let Some(resource_version) = patched.resource_version() {
        await_cached(cache, &ObjectRef::from_obj(&patched), &resource_version).await;
    }
    Ok(true)
}
