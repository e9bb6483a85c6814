//! An in-memory Kubernetes object store implementing the runtime's `KubeBackend`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_runtime::{
    BoxFuture, Gvk, KubeBackend, KubeError, ListOptions, ObjectKey, ObjectPage, PatchBody,
};

/// (group, kind, namespace, name)
type Key = (String, String, String, String);

/// Objects keyed by group/kind/namespace/name, with resourceVersions, merge/JSON/apply
/// patches, label-selector lists and optional injected latency.
#[derive(Default)]
pub struct InMemoryKube {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    next_resource_version: u64,
    latency: Option<Duration>,
}

/// A fixture could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A document is not valid YAML/JSON.
    #[error("invalid YAML in {path}: {source}")]
    Yaml {
        /// The file (or `<inline>`).
        path: String,
        /// The parse error.
        source: serde_yaml::Error,
    },
    /// An object lacks apiVersion, kind or metadata.name.
    #[error("object needs apiVersion, kind and metadata.name: {0}")]
    Incomplete(String),
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn key_of(gvk: &Gvk, namespace: Option<&str>, name: &str) -> Key {
    (
        gvk.group.clone(),
        gvk.kind.clone(),
        namespace.unwrap_or_default().to_owned(),
        name.to_owned(),
    )
}

fn describe(key: &Key) -> String {
    let (group, kind, namespace, name) = key;
    let kind = if group.is_empty() {
        kind.clone()
    } else {
        format!("{kind}.{group}")
    };
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// `a=b`, `a!=b`, `a` and `!a` terms, comma-separated.
fn labels_match(object: &Value, selector: &str) -> bool {
    let labels = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object);
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                label(k.trim()) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                label(k.trim().trim_end_matches('=')) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                label(k).is_none()
            } else {
                label(term).is_some()
            }
        })
}

impl InMemoryKube {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every request wait this long first (to test slow API servers).
    pub fn set_latency(&self, latency: Option<Duration>) {
        self.lock().latency = latency;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts or replaces an object (must have apiVersion, kind, metadata.name).
    pub fn insert(&self, mut object: Value) -> Result<(), FixtureError> {
        let (api_version, kind, name) = (
            str_at(&object, "/apiVersion"),
            str_at(&object, "/kind"),
            str_at(&object, "/metadata/name"),
        );
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(FixtureError::Incomplete(object.to_string()));
        }
        let gvk = Gvk::from_api_version(api_version, kind);
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let key = key_of(&gvk, namespace.as_deref(), name);
        let mut state = self.lock();
        state.stamp(&mut object);
        state.objects.insert(key, object);
        Ok(())
    }

    /// Inserts every document of a multi-document YAML (or JSON) string; `null` documents are skipped.
    pub fn load_yaml(&self, text: &str) -> Result<(), FixtureError> {
        self.load_yaml_named(text, "<inline>")
    }

    fn load_yaml_named(&self, text: &str, path: &str) -> Result<(), FixtureError> {
        for document in serde_yaml::Deserializer::from_str(text) {
            let value: Value =
                serde::Deserialize::deserialize(document).map_err(|source| FixtureError::Yaml {
                    path: path.to_owned(),
                    source,
                })?;
            match value {
                Value::Null => {}
                Value::Array(items) => items.into_iter().try_for_each(|item| self.insert(item))?,
                object => self.insert(object)?,
            }
        }
        Ok(())
    }

    /// Inserts the objects of a YAML file.
    pub fn load_yaml_file(&self, path: &Path) -> Result<(), FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load_yaml_named(&text, &path.display().to_string())
    }

    /// The stored object, if any.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let gvk = Gvk::from_api_version(api_version, kind);
        self.lock()
            .objects
            .get(&key_of(&gvk, namespace, name))
            .cloned()
    }

    /// Every stored object.
    pub fn objects(&self) -> Vec<Value> {
        self.lock().objects.values().cloned().collect()
    }

    async fn delay(&self) {
        let latency = self.lock().latency;
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
    }
}

impl State {
    fn stamp(&mut self, object: &mut Value) {
        self.next_resource_version += 1;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert(
                "resourceVersion".into(),
                Value::String(self.next_resource_version.to_string()),
            );
        }
    }

    fn check_version(&self, current: &Value, incoming: &Value, key: &Key) -> Result<(), KubeError> {
        match incoming
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(wanted)
                if Some(wanted)
                    != current
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str) =>
            {
                Err(KubeError::Conflict(format!(
                    "{} was modified: resourceVersion {wanted} is not the latest",
                    describe(key)
                )))
            }
            _ => Ok(()),
        }
    }
}

impl KubeBackend for InMemoryKube {
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            self.delay().await;
            let key = key_of(&key.gvk, key.namespace.as_deref(), &key.name);
            self.lock()
                .objects
                .get(&key)
                .cloned()
                .ok_or_else(|| KubeError::NotFound(describe(&key)))
        })
    }

    fn list<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        options: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectPage, KubeError>> {
        Box::pin(async move {
            self.delay().await;
            let state = self.lock();
            let items = state
                .objects
                .iter()
                .filter(|((group, kind, ns, _), _)| {
                    *group == gvk.group
                        && *kind == gvk.kind
                        && namespace.is_none_or(|wanted| ns == wanted)
                })
                .map(|(_, object)| object)
                .filter(|object| {
                    options
                        .label_selector
                        .as_deref()
                        .is_none_or(|s| labels_match(object, s))
                })
                .cloned()
                .collect();
            Ok(ObjectPage {
                items,
                continue_token: None,
                resource_version: state.next_resource_version.to_string(),
            })
        })
    }

    fn create<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        mut object: Value,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            self.delay().await;
            let name = str_at(&object, "/metadata/name").to_owned();
            if name.is_empty() {
                return Err(KubeError::Invalid("metadata.name is required".into()));
            }
            if let (Some(ns), Some(metadata)) = (
                namespace,
                object.get_mut("metadata").and_then(Value::as_object_mut),
            ) {
                metadata.insert("namespace".into(), Value::String(ns.to_owned()));
            }
            let key = key_of(gvk, namespace, &name);
            let mut state = self.lock();
            if state.objects.contains_key(&key) {
                return Err(KubeError::Conflict(format!(
                    "{} already exists",
                    describe(&key)
                )));
            }
            state.stamp(&mut object);
            state.objects.insert(key, object.clone());
            Ok(object)
        })
    }

    fn patch<'a>(
        &'a self,
        key: &'a ObjectKey,
        patch: PatchBody,
        _field_manager: &'a str,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            self.delay().await;
            let store_key = key_of(&key.gvk, key.namespace.as_deref(), &key.name);
            let mut state = self.lock();
            let existing = state.objects.get(&store_key).cloned();
            let mut object = match (existing, &patch) {
                (Some(current), _) => current,
                (None, PatchBody::Apply(_)) => json!({
                    "apiVersion": key.gvk.api_version(),
                    "kind": key.gvk.kind,
                    "metadata": {"name": key.name, "namespace": key.namespace},
                }),
                (None, _) => return Err(KubeError::NotFound(describe(&store_key))),
            };
            match patch {
                PatchBody::Merge(body) | PatchBody::Apply(body) => {
                    state.check_version(&object, &body, &store_key)?;
                    json_patch::merge(&mut object, &body);
                }
                PatchBody::Json(body) => {
                    let operations: json_patch::Patch = serde_json::from_value(body)
                        .map_err(|e| KubeError::Invalid(format!("not a JSON patch: {e}")))?;
                    json_patch::patch(&mut object, &operations)
                        .map_err(|e| KubeError::Invalid(e.to_string()))?;
                }
            }
            if key.namespace.is_none()
                && let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
            {
                metadata.remove("namespace");
            }
            state.stamp(&mut object);
            state.objects.insert(store_key, object.clone());
            Ok(object)
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), KubeError>> {
        Box::pin(async move {
            self.delay().await;
            let key = key_of(&key.gvk, key.namespace.as_deref(), &key.name);
            self.lock()
                .objects
                .remove(&key)
                .map(drop)
                .ok_or_else(|| KubeError::NotFound(describe(&key)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm_key(name: &str) -> ObjectKey {
        ObjectKey {
            gvk: Gvk::from_api_version("v1", "ConfigMap"),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn crud_with_resource_versions_and_patches() {
        let kube = InMemoryKube::new();
        kube.load_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: shop, labels: {app: web}}\ndata: {x: '1'}\n---\n",
        )
        .unwrap();
        let a = kube.get(&cm_key("a")).await.unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "1");

        let merged = kube
            .patch(
                &cm_key("a"),
                PatchBody::Merge(json!({"data": {"y": "2"}})),
                "m",
            )
            .await
            .unwrap();
        assert_eq!(merged["data"], json!({"x": "1", "y": "2"}));
        let stale =
            PatchBody::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"z": "3"}}));
        assert!(matches!(
            kube.patch(&cm_key("a"), stale, "m").await,
            Err(KubeError::Conflict(_))
        ));

        let ops = json!([{"op": "remove", "path": "/data/x"}]);
        let patched = kube
            .patch(&cm_key("a"), PatchBody::Json(ops), "m")
            .await
            .unwrap();
        assert_eq!(patched["data"], json!({"y": "2"}));

        let applied = kube
            .patch(
                &cm_key("b"),
                PatchBody::Apply(json!({"data": {"k": "v"}})),
                "m",
            )
            .await
            .unwrap();
        assert_eq!(applied["metadata"]["namespace"], "shop");

        let gvk = Gvk::from_api_version("v1", "ConfigMap");
        let selected = kube
            .list(
                &gvk,
                Some("shop"),
                &ListOptions {
                    label_selector: Some("app=web".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(selected.items.len(), 1);

        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        assert!(matches!(
            kube.create(&gvk, Some("shop"), object).await,
            Err(KubeError::Conflict(_))
        ));
        kube.delete(&cm_key("a")).await.unwrap();
        assert!(matches!(
            kube.get(&cm_key("a")).await,
            Err(KubeError::NotFound(_))
        ));
    }
}
