//! A Kubernetes backend wrapper that races the plugin: before each of the first N patches,
//! another writer changes the target object, so a plugin's resourceVersion-guarded write gets a
//! conflict and must re-read and retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use sluice_runtime::{
    BoxFuture, Gvk, KubeBackend, KubeError, ListOptions, ObjectKey, ObjectPage, PatchBody,
};

/// The label the concurrent writer sets; its value counts down from the number of conflicts asked
/// for (`2`, then `1`, for two conflicts).
pub const CONCURRENT_WRITE_LABEL: &str = "sluice.test/concurrent-writes";

/// Delegates to `inner`, but before each of the first `conflicts` patches it merge-patches the
/// target object's [`CONCURRENT_WRITE_LABEL`] behind the plugin's back, bumping its
/// resourceVersion. Works over the in-memory store and over a real API server alike.
pub struct ConflictingKube<K> {
    /// The real backend.
    pub inner: Arc<K>,
    conflicts_left: AtomicU32,
    /// Patches the plugin sent.
    pub plugin_patches: AtomicU32,
}

impl<K> ConflictingKube<K> {
    /// Injects `conflicts` concurrent writes (`u32::MAX`: one before every patch).
    pub fn new(inner: Arc<K>, conflicts: u32) -> Self {
        Self {
            inner,
            conflicts_left: AtomicU32::new(conflicts),
            plugin_patches: AtomicU32::new(0),
        }
    }
}

impl<K: KubeBackend> KubeBackend for ConflictingKube<K> {
    fn get<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<Value, KubeError>> {
        self.inner.get(key)
    }

    fn list<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        options: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectPage, KubeError>> {
        self.inner.list(gvk, namespace, options)
    }

    fn create<'a>(
        &'a self,
        gvk: &'a Gvk,
        namespace: Option<&'a str>,
        object: Value,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        self.inner.create(gvk, namespace, object)
    }

    fn patch<'a>(
        &'a self,
        key: &'a ObjectKey,
        patch: PatchBody,
        field_manager: &'a str,
    ) -> BoxFuture<'a, Result<Value, KubeError>> {
        Box::pin(async move {
            self.plugin_patches.fetch_add(1, Ordering::SeqCst);
            let inject =
                self.conflicts_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if let Ok(remaining) = inject {
                let label = json!({"metadata": {"labels": {CONCURRENT_WRITE_LABEL: remaining.to_string()}}});
                self.inner
                    .patch(key, PatchBody::Merge(label), "concurrent-writer")
                    .await?;
            }
            self.inner.patch(key, patch, field_manager).await
        })
    }

    fn delete<'a>(&'a self, key: &'a ObjectKey) -> BoxFuture<'a, Result<(), KubeError>> {
        self.inner.delete(key)
    }
}
