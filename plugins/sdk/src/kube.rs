//! Typed Kubernetes access over `sluice:host/kube` (objects cross the boundary as JSON).
//!
//! Typed functions work with any `k8s-openapi` type (or your own type implementing
//! [`k8s_openapi::Resource`]); the `*_dynamic` functions take a [`Gvk`] and JSON values for
//! kinds without Rust types (e.g. Gateway API routes). Every call is checked against the
//! plugin's grants; a refusal is [`KubeError::AccessDenied`].

use k8s_openapi::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::wit::host::kube::{Gvk, KubeError, ListParams, ObjectRef, PatchType};

/// One page of typed list results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Token for the next page, if any.
    pub continue_token: Option<String>,
}

/// The [`Gvk`] of a typed resource.
pub fn gvk_of<K: Resource>() -> Gvk {
    Gvk {
        group: K::GROUP.to_owned(),
        version: K::VERSION.to_owned(),
        kind: K::KIND.to_owned(),
    }
}

fn object_ref(gvk: Gvk, namespace: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        gvk,
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

#[cfg(target_arch = "wasm32")]
fn decode<T: DeserializeOwned>(json: &str) -> Result<T, KubeError> {
    serde_json::from_str(json).map_err(|e| KubeError::Invalid(format!("cannot decode object: {e}")))
}

fn encode(value: &impl Serialize) -> Result<String, KubeError> {
    serde_json::to_string(value)
        .map_err(|e| KubeError::Invalid(format!("cannot encode object: {e}")))
}

#[cfg(not(target_arch = "wasm32"))]
fn off_wasm<T>() -> Result<T, KubeError> {
    Err(KubeError::Unavailable(
        "the Sluice host is only available to wasm32 plugins".into(),
    ))
}

/// Reads an object as JSON.
pub fn get_dynamic(gvk: Gvk, namespace: Option<&str>, name: &str) -> Result<Value, KubeError> {
    let target = object_ref(gvk, namespace, name);
    #[cfg(target_arch = "wasm32")]
    {
        decode(&crate::wit::host::kube::get(&target)?)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = target;
        off_wasm()
    }
}

/// Lists objects as JSON.
pub fn list_dynamic(
    gvk: Gvk,
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Page<Value>, KubeError> {
    #[cfg(target_arch = "wasm32")]
    {
        let list = crate::wit::host::kube::list_objects(&gvk, namespace, params)?;
        Ok(Page {
            items: decode(&list.items_json)?,
            continue_token: list.continue_token,
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (gvk, namespace, params);
        off_wasm()
    }
}

/// Creates an object from JSON (with `apiVersion` and `kind`) and returns the stored object.
pub fn create_dynamic(namespace: Option<&str>, object: &Value) -> Result<Value, KubeError> {
    let json = encode(object)?;
    #[cfg(target_arch = "wasm32")]
    {
        decode(&crate::wit::host::kube::create(namespace, &json)?)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (namespace, json);
        off_wasm()
    }
}

/// Patches an object and returns the stored result.
pub fn patch_dynamic(
    gvk: Gvk,
    namespace: Option<&str>,
    name: &str,
    patch_type: PatchType,
    body: &Value,
) -> Result<Value, KubeError> {
    let target = object_ref(gvk, namespace, name);
    let json = encode(body)?;
    #[cfg(target_arch = "wasm32")]
    {
        decode(&crate::wit::host::kube::patch(&target, patch_type, &json)?)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (target, patch_type, json);
        off_wasm()
    }
}

/// Deletes an object.
pub fn delete_dynamic(gvk: Gvk, namespace: Option<&str>, name: &str) -> Result<(), KubeError> {
    let target = object_ref(gvk, namespace, name);
    #[cfg(target_arch = "wasm32")]
    {
        crate::wit::host::kube::delete(&target)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = target;
        off_wasm()
    }
}

/// Reads a typed object.
pub fn get<K: Resource + DeserializeOwned>(
    namespace: Option<&str>,
    name: &str,
) -> Result<K, KubeError> {
    serde_json::from_value(get_dynamic(gvk_of::<K>(), namespace, name)?)
        .map_err(|e| KubeError::Invalid(format!("cannot decode {}: {e}", K::KIND)))
}

/// Lists typed objects.
pub fn list<K: Resource + DeserializeOwned>(
    namespace: Option<&str>,
    params: &ListParams,
) -> Result<Page<K>, KubeError> {
    let page = list_dynamic(gvk_of::<K>(), namespace, params)?;
    let items = page
        .items
        .into_iter()
        .map(|item| {
            serde_json::from_value(item)
                .map_err(|e| KubeError::Invalid(format!("cannot decode {}: {e}", K::KIND)))
        })
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        continue_token: page.continue_token,
    })
}

/// Creates a typed object (its `apiVersion`/`kind` are filled in from the type).
pub fn create<K: Resource + Serialize + DeserializeOwned>(
    namespace: Option<&str>,
    object: &K,
) -> Result<K, KubeError> {
    let mut value = serde_json::to_value(object).map_err(|e| KubeError::Invalid(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            Value::String(K::API_VERSION.to_owned()),
        );
        map.insert("kind".into(), Value::String(K::KIND.to_owned()));
    }
    serde_json::from_value(create_dynamic(namespace, &value)?)
        .map_err(|e| KubeError::Invalid(e.to_string()))
}

/// Patches a typed object (`PatchType::Merge`, `Json` or `Apply`).
pub fn patch<K: Resource + DeserializeOwned>(
    namespace: Option<&str>,
    name: &str,
    patch_type: PatchType,
    body: &Value,
) -> Result<K, KubeError> {
    serde_json::from_value(patch_dynamic(
        gvk_of::<K>(),
        namespace,
        name,
        patch_type,
        body,
    )?)
    .map_err(|e| KubeError::Invalid(e.to_string()))
}

/// Deletes a typed object.
pub fn delete<K: Resource>(namespace: Option<&str>, name: &str) -> Result<(), KubeError> {
    delete_dynamic(gvk_of::<K>(), namespace, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn typed_kinds_map_to_gvks() {
        let gvk = gvk_of::<ConfigMap>();
        assert_eq!(
            (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()),
            ("", "v1", "ConfigMap")
        );
    }

    #[test]
    fn host_calls_fail_cleanly_off_wasm() {
        let err = get::<ConfigMap>(Some("default"), "x").unwrap_err();
        assert!(matches!(err, KubeError::Unavailable(_)), "{err}");
        assert!(matches!(
            crate::PluginError::from(err),
            crate::PluginError::Transient(_)
        ));
    }
}
