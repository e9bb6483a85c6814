//! [`KubeBackend`] over a real `kube::Client`, with `DynamicObject` and cached discovery.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

use super::kube::{
    BoxFuture, Gvk, KubeBackend, KubeError, ListOptions, ObjectKey, ObjectPage, PatchBody,
};

/// Most kinds whose discovery result is cached; plugins touch a handful of kinds.
const MAX_CACHED_KINDS: usize = 256;

/// Sends plugin requests to the API server with the controller's client.
///
/// Kinds are resolved once through discovery (`pinned_kind`) and cached; the grant check has
/// already happened, and the controller's RBAC is the outer fence.
pub struct ClientKubeBackend {
    client: kube::Client,
    kinds: Mutex<HashMap<Gvk, (ApiResource, ApiCapabilities)>>,
}

impl ClientKubeBackend {
    /// Wraps a client.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    async fn resolve(&self, gvk: &Gvk) -> Result<(ApiResource, ApiCapabilities), KubeError> {
        if let Some(found) = self
            .kinds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(gvk)
        {
            return Ok(found.clone());
        }
        let wanted = GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind);
        let found = kube::discovery::pinned_kind(&self.client, &wanted)
            .await
            .map_err(map_error)?;
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        if kinds.len() >= MAX_CACHED_KINDS {
            kinds.clear();
        }
        kinds.insert(gvk.clone(), found.clone());
        Ok(found)
    }

    async fn api(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
    ) -> Result<Api<DynamicObject>, KubeError> {
        let (resource, capabilities) = self.resolve(gvk).await?;
        Ok(match (capabilities.scope, namespace) {
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &resource),
            (Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, &resource)
            }
            (Scope::Namespaced, None) => Api::all_with(self.client.clone(), &resource),
        })
    }
}

fn map_error(error: kube::Error) -> KubeError {
    match error {
        kube::Error::Api(status) => {
            let message = status.message.clone();
            match status.code {
                401 | 403 => KubeError::AccessDenied(message),
                404 => KubeError::NotFound(message),
                409 => KubeError::Conflict(message),
                400 | 422 => KubeError::Invalid(message),
                _ => KubeError::Unavailable(message),
            }
        }
        kube::Error::SerdeError(e) => KubeError::Invalid(e.to_string()),
        other => KubeError::Unavailable(other.to_string()),
    }
}

fn to_value(object: &impl serde::Serialize) -> Result<Value, KubeError> {
    serde_json::to_value(object).map_err(|e| KubeError::Invalid(e.to_string()))
}

impl KubeBackend for ClientKubeBackend {
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let api = self.api(&key.gvk, key.namespace.as_deref()).await?;
            to_value(&api.get(&key.name).await.map_err(map_error)?)
        })
    }

    fn list<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        options: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectPage, KubeError>> {
        Box::pin(async move {
            let api = self.api(gvk, namespace).await?;
            let mut params = ListParams::default();
            if let Some(selector) = &options.label_selector {
                params = params.labels(selector);
            }
            if let Some(selector) = &options.field_selector {
                params = params.fields(selector);
            }
            if let Some(limit) = options.limit {
                params = params.limit(limit);
            }
            if let Some(token) = &options.continue_token {
                params = params.continue_token(token);
            }
            let list = api.list(&params).await.map_err(map_error)?;
            Ok(ObjectPage {
                items: list.items.iter().map(to_value).collect::<Result<_, _>>()?,
                continue_token: list.metadata.continue_.filter(|t| !t.is_empty()),
                resource_version: list.metadata.resource_version.unwrap_or_default(),
            })
        })
    }

    fn create<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        object: Value,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let api = self.api(gvk, namespace).await?;
            let object: DynamicObject =
                serde_json::from_value(object).map_err(|e| KubeError::Invalid(e.to_string()))?;
            to_value(
                &api.create(&PostParams::default(), &object)
                    .await
                    .map_err(map_error)?,
            )
        })
    }

    fn patch<'a>(
        &'a self,
        key: &'a ObjectKey,
        patch: PatchBody,
        field_manager: &'a str,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            let api = self.api(&key.gvk, key.namespace.as_deref()).await?;
            let (patch, params) = match patch {
                PatchBody::Merge(body) => (Patch::Merge(body), PatchParams::default()),
                PatchBody::Json(body) => {
                    let ops: json_patch::Patch = serde_json::from_value(body)
                        .map_err(|e| KubeError::Invalid(format!("not a JSON patch: {e}")))?;
                    (Patch::Json::<Value>(ops), PatchParams::default())
                }
                PatchBody::Apply(body) => (Patch::Apply(body), PatchParams::apply(field_manager)),
            };
            to_value(
                &api.patch(&key.name, &params, &patch)
                    .await
                    .map_err(map_error)?,
            )
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), KubeError>> {
        Box::pin(async move {
            let api = self.api(&key.gvk, key.namespace.as_deref()).await?;
            // Background propagation, as kubectl does: the object goes now and the garbage
            // collector removes its dependents (batch/v1 Jobs would otherwise orphan their Pods).
            api.delete(&key.name, &DeleteParams::background())
                .await
                .map_err(map_error)?;
            Ok(())
        })
    }
}
