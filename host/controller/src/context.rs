//! What every reconcile shares: the client, the caches, the plugin registry and the metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};
use sluice_api::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use sluice_api::experiment::Experiment;
use sluice_api::rollout::{Rollout, StepPluginStatus};
use sluice_core::observed::WeightVerification;
use sluice_runtime::PluginRegistry;

use crate::metrics::Metrics;

/// The reflector caches the reconcilers read from; steady-state reconciles read nothing else.
#[derive(Clone)]
pub struct Stores {
    /// Rollouts (the Rollout controller's own cache).
    pub rollouts: Store<Rollout>,
    /// ReplicaSets carrying `rollouts-pod-template-hash`.
    pub replica_sets: Store<ReplicaSet>,
    /// Services.
    pub services: Store<Service>,
    /// AnalysisRuns (as the Rollout controller sees them).
    pub analysis_runs: Store<AnalysisRun>,
    /// AnalysisRuns (the AnalysisRun controller's own cache).
    pub analysis_runs_for_analysis: Store<AnalysisRun>,
    /// Experiments.
    pub experiments: Store<Experiment>,
    /// AnalysisTemplates.
    pub analysis_templates: Store<AnalysisTemplate>,
    /// ClusterAnalysisTemplates.
    pub cluster_analysis_templates: Store<ClusterAnalysisTemplate>,
}

/// Shared state of the reconcilers.
pub struct Context {
    /// The Kubernetes client used for writes.
    pub client: Client,
    /// The caches.
    pub stores: Stores,
    /// Loaded plugins, swapped in place when the plugin ConfigMap changes.
    pub plugins: Arc<PluginRegistry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The last `verify-weight` result per Rollout (the planner's
    /// `Observed::weight_verification`).
    pub weight_verifications: Mutex<HashMap<ObjectRef<Rollout>, WeightVerification>>,
    /// Step plugin outcomes not yet written to their Rollout's status, per Rollout.
    pub step_plugin_reports: Mutex<HashMap<ObjectRef<Rollout>, Vec<StepPluginStatus>>>,
    /// Set once every cache has listed its objects.
    pub caches_synced: Arc<AtomicBool>,
    /// Who reports the controller's Kubernetes Events.
    pub reporter: Reporter,
}

/// How long a reconcile waits for its own writes to reach the caches before returning, so the
/// next reconcile plans from what it wrote.
pub(crate) const CACHE_CATCH_UP: Duration = Duration::from_secs(2);

impl Context {
    /// Whether every cache has listed its objects.
    pub(crate) fn caches_synced(&self) -> bool {
        self.caches_synced.load(Ordering::Acquire)
    }

    /// The remembered `verify-weight` result of a Rollout.
    pub(crate) fn weight_verification(
        &self,
        key: &ObjectRef<Rollout>,
    ) -> Option<WeightVerification> {
        lock(&self.weight_verifications).get(key).copied()
    }

    /// Remembers the `verify-weight` result of a Rollout.
    pub(crate) fn remember_weight_verification(
        &self,
        key: ObjectRef<Rollout>,
        verification: WeightVerification,
    ) {
        lock(&self.weight_verifications).insert(key, verification);
    }

    /// Keeps the outcome of a step plugin call until a status write carries it.
    pub(crate) fn report_step_plugin(&self, key: ObjectRef<Rollout>, report: StepPluginStatus) {
        lock(&self.step_plugin_reports)
            .entry(key)
            .or_default()
            .push(report);
    }

    /// The step plugin outcomes of a Rollout not yet written to its status, oldest first.
    pub(crate) fn pending_step_plugin_reports(
        &self,
        key: &ObjectRef<Rollout>,
    ) -> Vec<StepPluginStatus> {
        lock(&self.step_plugin_reports)
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// Drops `written`: outcomes a plan took into account and whose status was written.
    pub(crate) fn settle_step_plugin_reports(
        &self,
        key: &ObjectRef<Rollout>,
        written: &[StepPluginStatus],
    ) {
        if written.is_empty() {
            return;
        }
        let mut reports = lock(&self.step_plugin_reports);
        if let Some(pending) = reports.get_mut(key) {
            pending.retain(|report| !written.contains(report));
            if pending.is_empty() {
                reports.remove(key);
            }
        }
    }

    /// Forgets a deleted Rollout.
    pub(crate) fn forget(&self, key: &ObjectRef<Rollout>) {
        lock(&self.weight_verifications).remove(key);
        lock(&self.step_plugin_reports).remove(key);
    }
}

/// Waits (bounded by [`CACHE_CATCH_UP`]) until `store` holds `key` at `resource_version` or
/// newer. Resource versions are opaque in general but etcd's are increasing integers; anything
/// else is compared for equality.
pub(crate) async fn await_cached<K>(store: &Store<K>, key: &ObjectRef<K>, resource_version: &str)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let wanted = resource_version.parse::<u64>().ok();
    let caught_up = || {
        store.get(key).is_some_and(|object| {
            let cached = object
                .meta()
                .resource_version
                .as_deref()
                .unwrap_or_default();
            match (wanted, cached.parse::<u64>().ok()) {
                (Some(wanted), Some(cached)) => cached >= wanted,
                _ => cached == resource_version,
            }
        })
    };
    let deadline = tokio::time::Instant::now() + CACHE_CATCH_UP;
    while !caught_up() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The owner reference that makes `owner` the controller of the objects it creates (garbage
/// collected with it).
pub(crate) fn controller_reference<K>(owner: &K) -> OwnerReference
where
    K: Resource<DynamicType = ()>,
{
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}
