//! `sluice:host/kube`: grant-checked Kubernetes access through a pluggable [`KubeBackend`].

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Capability, HostState};
use crate::bindings::wit_kube;
use crate::grants::KubeVerb;

/// A boxed, sendable future (the backends' return type).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A group/version/kind; `group` is empty for core kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gvk {
    /// API group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
}

impl Gvk {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Parses an object's `apiVersion` and `kind`.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

/// Names one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// Its kind.
    pub gvk: Gvk,
    /// Its namespace (`None` when cluster-scoped).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// Options of a list request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOptions {
    /// Label selector.
    pub label_selector: Option<String>,
    /// Field selector.
    pub field_selector: Option<String>,
    /// Page size (already clamped by the host).
    pub limit: Option<u32>,
    /// Continue token.
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectPage {
    /// The objects.
    pub items: Vec<Value>,
    /// Token for the next page.
    pub continue_token: Option<String>,
    /// The list's resourceVersion.
    pub resource_version: String,
}

/// A patch body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "body", rename_all = "lowercase")]
pub enum PatchBody {
    /// JSON merge patch.
    Merge(Value),
    /// JSON patch (array of operations).
    Json(Value),
    /// Server-side apply configuration.
    Apply(Value),
}

impl PatchBody {
    fn kind(&self) -> &'static str {
        match self {
            Self::Merge(_) => "merge",
            Self::Json(_) => "json",
            Self::Apply(_) => "apply",
        }
    }
}

/// Why a Kubernetes request failed (mirrors the WIT `kube-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "kebab-case")]
pub enum KubeError {
    /// Refused by a grant or by the API server's RBAC.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// No such object.
    #[error("not found: {0}")]
    NotFound(String),
    /// A resourceVersion, already-exists or apply conflict.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Invalid request or object.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Timeout, throttling or unavailable API server.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Where plugin Kubernetes requests go after the grant check.
///
/// The controller uses [`super::kube_client::ClientKubeBackend`]; the testkit an in-memory store.
pub trait KubeBackend: Send + Sync {
    /// Reads one object.
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Value, KubeError>>;
    /// Lists objects of a kind (`namespace: None` = all namespaces or cluster-scoped).
    fn list<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        options: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectPage, KubeError>>;
    /// Creates an object (its `apiVersion`/`kind` name the type; `namespace` overrides metadata).
    fn create<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        object: Value,
    ) -> BoxFuture<'a, Result<Value, KubeError>>;
    /// Patches an object; `field_manager` is used for server-side apply.
    fn patch<'a>(
        &'a self,
        key: &'a ObjectKey,
        patch: PatchBody,
        field_manager: &'a str,
    ) -> BoxFuture<'a, Result<Value, KubeError>>;
    /// Deletes an object.
    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), KubeError>>;
}

/// Largest page a plugin may request.
const MAX_LIST_LIMIT: u32 = 500;

impl From<wit_kube::Gvk> for Gvk {
    fn from(g: wit_kube::Gvk) -> Self {
        Self {
            group: g.group,
            version: g.version,
            kind: g.kind,
        }
    }
}

impl From<wit_kube::ObjectRef> for ObjectKey {
    fn from(r: wit_kube::ObjectRef) -> Self {
        Self {
            gvk: r.gvk.into(),
            namespace: r.namespace,
            name: r.name,
        }
    }
}

impl From<KubeError> for wit_kube::KubeError {
    fn from(e: KubeError) -> Self {
        match e {
            KubeError::AccessDenied(m) => Self::AccessDenied(m),
            KubeError::NotFound(m) => Self::NotFound(m),
            KubeError::Conflict(m) => Self::Conflict(m),
            KubeError::Invalid(m) => Self::Invalid(m),
            KubeError::Unavailable(m) => Self::Unavailable(m),
        }
    }
}

fn describe(gvk: &Gvk) -> String {
    if gvk.group.is_empty() {
        gvk.kind.clone()
    } else {
        format!("{}/{}", gvk.group, gvk.kind)
    }
}

fn outcome_json<T: Serialize>(result: &Result<T, KubeError>) -> Value {
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(error) => json!({ "error": error }),
    }
}

impl HostState {
    /// Checks a grant; on refusal records the denial and returns the error for the guest.
    fn check_kube(
        &mut self,
        verb: KubeVerb,
        gvk: &Gvk,
        namespace: Option<&str>,
        request: &Value,
    ) -> Result<(), KubeError> {
        let scope = self.scope.clone();
        let allowed = scope.plugin.grants.allows_kube(
            verb,
            &gvk.group,
            &gvk.kind,
            namespace,
            scope.namespace.as_deref(),
        );
        if allowed {
            return Ok(());
        }
        let message = format!(
            "plugin {} has no grant to {verb} {} in {}",
            scope.plugin.name,
            describe(gvk),
            namespace.map_or("all namespaces / cluster scope".to_owned(), |ns| format!(
                "namespace {ns}"
            )),
        );
        scope.deny(
            &mut self.denials,
            Capability::Kube,
            request.clone(),
            message.clone(),
        );
        Err(KubeError::AccessDenied(message))
    }

    /// Serializes a response for the guest, enforcing the size cap.
    fn to_guest_json(&self, value: &impl Serialize) -> Result<String, KubeError> {
        let text = serde_json::to_string(value).map_err(|e| KubeError::Invalid(e.to_string()))?;
        let text = self.scope.access.conceal(text);
        let cap = self.scope.plugin.limits.kube_max_response_bytes;
        if text.len() > cap {
            return Err(KubeError::Invalid(format!(
                "response of {} bytes exceeds the plugin's limit of {cap} bytes; use a smaller list limit",
                text.len()
            )));
        }
        Ok(text)
    }

    fn record(&self, request: Value, response: Value) {
        self.scope.observe(Capability::Kube, request, response);
    }
}

fn parse_json(what: &str, body: &str) -> Result<Value, KubeError> {
    serde_json::from_str(body)
        .map_err(|e| KubeError::Invalid(format!("{what} is not valid JSON: {e}")))
}

impl wit_kube::Host for HostState {
    async fn get(
        &mut self,
        target: wit_kube::ObjectRef,
    ) -> wasmtime::Result<Result<String, wit_kube::KubeError>> {
        let key = ObjectKey::from(target);
        let request = json!({"verb": "get", "target": key});
        if let Err(e) = self.check_kube(KubeVerb::Get, &key.gvk, key.namespace.as_deref(), &request)
        {
            return Ok(Err(e.into()));
        }
        let backend = self.scope.plugin.services.kube.clone();
        let result = backend.get(&key).await;
        self.record(request, outcome_json(&result));
        Ok(result
            .and_then(|v| self.to_guest_json(&v))
            .map_err(Into::into))
    }

    async fn list_objects(
        &mut self,
        kind: wit_kube::Gvk,
        namespace: Option<String>,
        params: wit_kube::ListParams,
    ) -> wasmtime::Result<Result<wit_kube::ObjectList, wit_kube::KubeError>> {
        let gvk = Gvk::from(kind);
        let options = ListOptions {
            label_selector: params.label_selector,
            field_selector: params.field_selector,
            limit: Some(params.limit.unwrap_or(MAX_LIST_LIMIT).min(MAX_LIST_LIMIT)),
            continue_token: params.continue_token,
        };
        let request =
            json!({"verb": "list", "gvk": gvk, "namespace": namespace, "options": options});
        if let Err(e) = self.check_kube(KubeVerb::List, &gvk, namespace.as_deref(), &request) {
            return Ok(Err(e.into()));
        }
        let backend = self.scope.plugin.services.kube.clone();
        let result = backend.list(&gvk, namespace.as_deref(), &options).await;
        self.record(request, outcome_json(&result));
        Ok(result
            .and_then(|page| {
                Ok(wit_kube::ObjectList {
                    items_json: self.to_guest_json(&page.items)?,
                    continue_token: page.continue_token,
                    resource_version: page.resource_version,
                })
            })
            .map_err(Into::into))
    }

    async fn create(
        &mut self,
        namespace: Option<String>,
        object_json: String,
    ) -> wasmtime::Result<Result<String, wit_kube::KubeError>> {
        let object = match parse_json("object", &object_json) {
            Ok(object) => object,
            Err(e) => {
                self.record(
                    json!({"verb": "create", "namespace": namespace, "body": object_json}),
                    outcome_json::<()>(&Err(e.clone())),
                );
                return Ok(Err(e.into()));
            }
        };
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let request = json!({"verb": "create", "namespace": namespace, "object": object});
        if api_version.is_empty() || kind.is_empty() {
            let e = KubeError::Invalid("object needs apiVersion and kind".into());
            self.record(request, outcome_json::<()>(&Err(e.clone())));
            return Ok(Err(e.into()));
        }
        let gvk = Gvk::from_api_version(api_version, kind);
        let namespace = namespace.or_else(|| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        if let Err(e) = self.check_kube(KubeVerb::Create, &gvk, namespace.as_deref(), &request) {
            return Ok(Err(e.into()));
        }
        let backend = self.scope.plugin.services.kube.clone();
        let object = self.scope.access.reveal_json(object);
        let result = backend.create(&gvk, namespace.as_deref(), object).await;
        self.record(request, outcome_json(&result));
        Ok(result
            .and_then(|v| self.to_guest_json(&v))
            .map_err(Into::into))
    }

    async fn patch(
        &mut self,
        target: wit_kube::ObjectRef,
        patch_type: wit_kube::PatchType,
        body: String,
    ) -> wasmtime::Result<Result<String, wit_kube::KubeError>> {
        let key = ObjectKey::from(target);
        let parsed = match parse_json("patch body", &body) {
            Ok(value) => value,
            Err(e) => {
                self.record(
                    json!({"verb": "patch", "target": key, "body": body}),
                    outcome_json::<()>(&Err(e.clone())),
                );
                return Ok(Err(e.into()));
            }
        };
        let patch = match patch_type {
            wit_kube::PatchType::Merge => PatchBody::Merge(parsed),
            wit_kube::PatchType::Json => PatchBody::Json(parsed),
            wit_kube::PatchType::Apply => PatchBody::Apply(parsed),
        };
        let request =
            json!({"verb": "patch", "target": key, "patchType": patch.kind(), "patch": patch});
        if let Err(e) = self.check_kube(
            KubeVerb::Patch,
            &key.gvk,
            key.namespace.as_deref(),
            &request,
        ) {
            return Ok(Err(e.into()));
        }
        let backend = self.scope.plugin.services.kube.clone();
        let manager = self.scope.plugin.field_manager.clone();
        let patch = match patch {
            PatchBody::Merge(body) => PatchBody::Merge(self.scope.access.reveal_json(body)),
            PatchBody::Json(body) => PatchBody::Json(self.scope.access.reveal_json(body)),
            PatchBody::Apply(body) => PatchBody::Apply(self.scope.access.reveal_json(body)),
        };
        let result = backend.patch(&key, patch, &manager).await;
        self.record(request, outcome_json(&result));
        Ok(result
            .and_then(|v| self.to_guest_json(&v))
            .map_err(Into::into))
    }

    async fn delete(
        &mut self,
        target: wit_kube::ObjectRef,
    ) -> wasmtime::Result<Result<(), wit_kube::KubeError>> {
        let key = ObjectKey::from(target);
        let request = json!({"verb": "delete", "target": key});
        if let Err(e) = self.check_kube(
            KubeVerb::Delete,
            &key.gvk,
            key.namespace.as_deref(),
            &request,
        ) {
            return Ok(Err(e.into()));
        }
        let backend = self.scope.plugin.services.kube.clone();
        let result = backend.delete(&key).await;
        self.record(request, outcome_json(&result));
        Ok(result.map_err(Into::into))
    }
}
