//! The Experiment reconciler: observe (caches) → [`sluice_core::experiment::plan_experiment`] →
//! create or scale the templates' ReplicaSets, create their Services and the AnalysisRuns,
//! terminate runs → write the status when it changed → publish the Events of the transitions.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use sluice_api::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use sluice_api::experiment::Experiment;
use sluice_api::labels;
use sluice_core::Timestamp;
use sluice_core::analysis::TemplateCatalog;
use sluice_core::experiment::{
    ExperimentAction, ObservedExperiment, TemplateReplicaSet, plan_experiment, replica_set_name,
};
use tracing::Instrument;

use crate::Scope;
use crate::context::{Context, await_cached, controller_reference};
use crate::error::{Error, Result};
use crate::rollout::observe_analysis_run;
use crate::status_patch::{patch_status, status_json};

/// Experiments reconciled at once (Argo's `--experiment-threads` default).
const CONCURRENCY: u16 = 10;
const MIN_REQUEUE: Duration = Duration::from_millis(50);
const CACHE_SYNC_RETRY: Duration = Duration::from_millis(100);
const ERROR_REQUEUE: Duration = Duration::from_secs(5);
/// The action of the Events an Experiment reconcile publishes.
const RECONCILE_ACTION: &str = "Reconcile";

/// The Experiment reconciler's caches (its own watches, so that a change it is woken for is
/// already in the cache it reads), beside the shared context.
pub(crate) struct ExperimentContext {
    /// Client, metrics, Services and analysis templates.
    pub shared: Arc<Context>,
    /// Experiments.
    pub experiments: Store<Experiment>,
    /// ReplicaSets carrying `rollouts-pod-template-hash`.
    pub replica_sets: Store<ReplicaSet>,
    /// AnalysisRuns.
    pub analysis_runs: Store<AnalysisRun>,
    /// Set once the caches above have listed their objects.
    pub synced: AtomicBool,
}

/// The Experiment controller (owning ReplicaSets and AnalysisRuns) and the future that marks
/// its caches synced; both end when `stop` completes.
pub(crate) fn controller(
    scope: &Scope,
    shared: Arc<Context>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) -> (BoxFuture<'static, ()>, BoxFuture<'static, ()>) {
    let (experiments, experiment_events) =
        scope.reflect::<Experiment>(Some(scope.instance_selector.clone()));
    let (replica_sets, replica_set_events) =
        scope.reflect::<ReplicaSet>(Some(labels::POD_TEMPLATE_HASH.to_string()));
    let (analysis_runs, analysis_run_events) = scope.reflect::<AnalysisRun>(None);
    let ctx = Arc::new(ExperimentContext {
        shared,
        experiments: experiments.clone(),
        replica_sets,
        analysis_runs,
        synced: AtomicBool::new(false),
    });
    let readiness = {
        let ctx = ctx.clone();
        async move {
            let (a, b, c) = futures::join!(
                ctx.experiments.wait_until_ready(),
                ctx.replica_sets.wait_until_ready(),
                ctx.analysis_runs.wait_until_ready(),
            );
            if a.is_ok() && b.is_ok() && c.is_ok() {
                ctx.synced.store(true, Ordering::Release);
            }
        }
        .boxed()
    };
    let controller = Controller::for_stream(experiment_events, experiments)
        .owns_stream(replica_set_events)
        .owns_stream(analysis_run_events)
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "experiment controller");
            }
        })
        .boxed();
    (controller, readiness)
}

/// Reconciles one Experiment.
pub(crate) async fn reconcile(
    experiment: Arc<Experiment>,
    ctx: Arc<ExperimentContext>,
) -> Result<Action> {
    let namespace = experiment.namespace().unwrap_or_default();
    let name = experiment.name_any();
    let span =
        tracing::info_span!("reconcile_experiment", experiment = %name, namespace = %namespace);
    async {
        let started = Instant::now();
        let result = reconcile_inner(&experiment, &ctx).await;
        tracing::debug!(elapsed = ?started.elapsed(), "experiment reconciled");
        result
    }
    .instrument(span)
    .await
}

/// Requeues a failed Experiment reconcile.
pub(crate) fn error_policy(
    experiment: Arc<Experiment>,
    error: &Error,
    _ctx: Arc<ExperimentContext>,
) -> Action {
    tracing::warn!(
        experiment = %experiment.name_any(),
        namespace = %experiment.namespace().unwrap_or_default(),
        error = %error,
        "reconcile failed"
    );
    Action::requeue(ERROR_REQUEUE)
}

async fn reconcile_inner(experiment: &Experiment, ctx: &ExperimentContext) -> Result<Action> {
    if experiment.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !ctx.shared.caches_synced() || !ctx.synced.load(Ordering::Acquire) {
        return Ok(Action::requeue(CACHE_SYNC_RETRY));
    }
    let namespace = experiment
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let templates = namespace_templates(&ctx.shared, &namespace, experiment);
    let cluster_templates = cluster_templates(&ctx.shared, experiment);
    let observed = ObservedExperiment {
        templates: TemplateCatalog {
            templates: &templates,
            cluster_templates: &cluster_templates,
        },
        ..observe(experiment, &namespace, ctx)
    };
    let plan = plan_experiment(experiment, &observed, Timestamp::now());
    if !plan.actions.is_empty() {
        tracing::info!(actions = plan.actions.len(), "executing plan");
        let writer = Writer {
            experiment,
            namespace: &namespace,
            ctx,
        };
        for action in &plan.actions {
            tracing::debug!(?action, "executing");
            writer.execute(action).await?;
        }
    }
    let old = status_json(experiment.status.as_ref(), "Experiment status")?;
    let new = status_json(Some(&plan.status), "Experiment status")?;
    if patch_status(&ctx.shared, experiment, &old, &new, &ctx.experiments).await? {
        tracing::info!(phase = ?plan.status.phase, "status written");
    }
    let events = sluice_core::events::experiment_events(experiment, &observed, &plan);
    crate::events::publish(&ctx.shared, experiment, RECONCILE_ACTION, &events).await;
    Ok(match plan.requeue_after {
        Some(delay) => Action::requeue(delay.max(MIN_REQUEUE)),
        None => Action::await_change(),
    })
}

/// What the caches hold about `experiment`: no API request.
fn observe<'a>(
    experiment: &Experiment,
    namespace: &str,
    ctx: &ExperimentContext,
) -> ObservedExperiment<'a> {
    let uid = experiment.uid().unwrap_or_default();
    let owned = |references: Option<&Vec<OwnerReference>>| {
        references.is_some_and(|references| {
            references
                .iter()
                .any(|reference| reference.controller == Some(true) && reference.uid == uid)
        })
    };
    let name = experiment.name_any();
    let replica_sets = experiment
        .spec
        .templates
        .iter()
        .filter_map(|template| {
            let rs_name = replica_set_name(&name, &template.name);
            ctx.replica_sets
                .get(&ObjectRef::new(&rs_name).within(namespace))
                .filter(|rs| owned(rs.metadata.owner_references.as_ref()))
                .map(|rs| {
                    let status = rs.status.clone().unwrap_or_default();
                    TemplateReplicaSet {
                        name: rs_name,
                        spec_replicas: rs.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1),
                        replicas: status.replicas,
                        updated_replicas: status.fully_labeled_replicas.unwrap_or(0),
                        ready_replicas: status.ready_replicas.unwrap_or(0),
                        available_replicas: status.available_replicas.unwrap_or(0),
                    }
                })
        })
        .collect();
    let services = experiment
        .spec
        .templates
        .iter()
        .filter_map(|template| {
            let service = template.service.as_ref()?;
            let service_name = service
                .name
                .clone()
                .unwrap_or_else(|| replica_set_name(&name, &template.name));
            ctx.shared
                .stores
                .services
                .get(&ObjectRef::new(&service_name).within(namespace))
                .map(|_| service_name)
        })
        .collect();
    let analysis_runs = ctx
        .analysis_runs
        .state()
        .iter()
        .filter(|run| run.namespace().as_deref() == Some(namespace))
        .filter(|run| owned(run.metadata.owner_references.as_ref()))
        .map(|run| observe_analysis_run(run))
        .collect();
    ObservedExperiment {
        replica_sets,
        services,
        analysis_runs,
        templates: TemplateCatalog::default(),
    }
}

/// The AnalysisTemplates of the namespace, copied only while an analysis still needs its run.
fn namespace_templates(
    ctx: &Context,
    namespace: &str,
    experiment: &Experiment,
) -> Vec<AnalysisTemplate> {
    if !needs_templates(experiment) {
        return Vec::new();
    }
    ctx.stores
        .analysis_templates
        .state()
        .iter()
        .filter(|template| template.namespace().as_deref() == Some(namespace))
        .map(|template| (**template).clone())
        .collect()
}

fn cluster_templates(ctx: &Context, experiment: &Experiment) -> Vec<ClusterAnalysisTemplate> {
    if !needs_templates(experiment) {
        return Vec::new();
    }
    ctx.stores
        .cluster_analysis_templates
        .state()
        .iter()
        .map(|template| (**template).clone())
        .collect()
}

/// Whether some analysis has no run recorded yet.
fn needs_templates(experiment: &Experiment) -> bool {
    let recorded = experiment
        .status
        .as_ref()
        .map_or(0, |status| status.analysis_runs.len());
    recorded < experiment.spec.analyses.len()
}

struct Writer<'a> {
    experiment: &'a Experiment,
    namespace: &'a str,
    ctx: &'a ExperimentContext,
}

impl Writer<'_> {
    async fn execute(&self, action: &ExperimentAction) -> Result<()> {
        match action {
            ExperimentAction::CreateReplicaSet(rs) => {
                let mut rs = (**rs).clone();
                rs.metadata.owner_references = Some(vec![self.owner_reference()]);
                if let Some(created) = self.create(&rs, "ReplicaSet").await? {
                    self.await_replica_set(&created).await;
                }
            }
            ExperimentAction::ScaleReplicaSet { name, replicas } => {
                let patch = json!({"spec": {"replicas": replicas}});
                let patched: ReplicaSet = self.patch(name, "ReplicaSet", patch).await?;
                self.await_replica_set(&patched).await;
            }
            ExperimentAction::CreateService(service) => {
                let mut service: Service = (**service).clone();
                service.metadata.owner_references = Some(vec![self.owner_reference()]);
                self.create(&service, "Service").await?;
            }
            ExperimentAction::CreateAnalysisRun(run) => {
                let mut run: AnalysisRun = (**run).clone();
                run.metadata.owner_references = Some(vec![self.owner_reference()]);
                self.create(&run, "AnalysisRun").await?;
            }
            ExperimentAction::TerminateAnalysisRun { name } => {
                let patch = json!({"spec": {"terminate": true}});
                let _: AnalysisRun = self.patch(name, "AnalysisRun", patch).await?;
            }
        }
        Ok(())
    }

    fn owner_reference(&self) -> OwnerReference {
        controller_reference(self.experiment)
    }

    fn count<T>(&self, kind: &str, verb: &str, result: &kube::Result<T>) {
        self.ctx
            .shared
            .metrics
            .count_request(kind, self.namespace, verb, result);
    }

    /// Creates `object`; one that already exists (created by a reconcile the cache does not
    /// show yet) is not an error.
    async fn create<K>(&self, object: &K, kind: &str) -> Result<Option<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.ctx.shared.client.clone(), self.namespace);
        let result = api.create(&PostParams::default(), object).await;
        self.count(kind, "Create", &result);
        match result {
            Ok(created) => Ok(Some(created)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(source) => Err(Error::kube(
                format!("create {kind} {}", object.name_any()),
                source,
            )),
        }
    }

    async fn patch<K>(&self, name: &str, kind: &str, patch: serde_json::Value) -> Result<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.ctx.shared.client.clone(), self.namespace);
        let result = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        self.count(kind, "Patch", &result);
        result.map_err(|source| Error::kube(format!("patch {kind} {name}"), source))
    }

    /// Waits until the cache shows a ReplicaSet write, so the next plan starts from it.
    async fn await_replica_set(&self, rs: &ReplicaSet) {
        await_cached(
            &self.ctx.replica_sets,
            &ObjectRef::from_obj(rs),
            &rs.resource_version().unwrap_or_default(),
        )
        .await;
    }
}
