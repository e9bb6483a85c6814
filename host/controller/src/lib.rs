//! The Sluice controller: kube-rs reconcilers for Rollouts, AnalysisRuns and Experiments.
//!
//! Data flows one way: **observe → plan (pure) → execute → record status**. The Rollout
//! reconciler reads the Rollout, its ReplicaSets, Services, AnalysisRuns and Experiments from
//! reflector caches (steady-state reconciles make no API request), asks [`sluice_core::plan`]
//! what to do, executes the actions in order (ReplicaSets, Services, traffic-router plugins,
//! AnalysisRuns) and writes the status through the status subresource only when it changed.
//! The AnalysisRun reconciler runs the due measurements concurrently through the
//! metric-provider plugins and records them with [`sluice_core::analysis`]. The Experiment
//! reconciler runs experiments' ReplicaSets, Services and AnalysisRuns as
//! [`sluice_core::experiment`] plans them.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), sluice_controller::Error> {
//! use sluice_controller::{ControllerOptions, PluginConfigMap};
//!
//! let options = ControllerOptions {
//!     namespace: Some("team-a".into()),
//!     plugin_config: Some(PluginConfigMap {
//!         namespace: "team-a".into(),
//!         name: "argo-rollouts-config".into(),
//!     }),
//!     ..ControllerOptions::default()
//! };
//! sluice_controller::run(client, options, async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```

mod analysis;
mod context;
mod error;
pub mod events;
mod experiment;
pub mod leader;
pub mod metrics;
pub mod patch;
mod plugins;
pub mod rate_limit;
mod rollout;
mod status_patch;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use sluice_api::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use sluice_api::experiment::Experiment;
use sluice_api::labels;
use sluice_api::rollout::Rollout;
use sluice_runtime::{
    ClientKubeBackend, EngineOptions, FetchOptions, HostServices, PluginEngine, PluginMetrics,
    PluginRegistry, ReqwestHttpBackend,
};

pub use crate::context::{Context, Stores};
pub use crate::error::{Error, Result};
pub use crate::leader::LeaderElection;
pub use crate::metrics::Metrics;
pub use crate::plugins::PluginConfigMap;
pub use crate::rate_limit::RateLimitLayer;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Watch only this namespace (`--namespaced`); `None` watches every namespace.
    pub namespace: Option<String>,
    /// Only handle objects labelled `argo-rollouts.argoproj.io/controller-instance-id=<id>`;
    /// without an id, only objects without that label.
    pub instance_id: Option<String>,
    /// The plugin ConfigMap, watched for changes; `None` runs without plugins.
    pub plugin_config: Option<PluginConfigMap>,
    /// Embedded plugin components by `builtin:NAME` name; each is compiled on its first use.
    pub builtins: BTreeMap<String, Bytes>,
    /// The plugins configured without any ConfigMap, in the ConfigMap's format (keys
    /// `trafficRouterPlugins` and `metricProviderPlugins`): usually the built-ins with their
    /// grants. The ConfigMap's entries are laid over them by name.
    pub default_plugins: BTreeMap<String, String>,
    /// The plugin engine's options.
    pub engine: EngineOptions,
    /// Elect a leader among replicas on a Lease before reconciling (`--leader-elect`);
    /// `None` reconciles at once.
    pub leader_election: Option<LeaderElection>,
    /// Rollouts reconciled at once (Argo's `--rollout-threads`, default 10).
    pub rollout_concurrency: u16,
    /// AnalysisRuns reconciled at once (Argo's `--analysis-threads`, default 30).
    pub analysis_concurrency: u16,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            instance_id: None,
            plugin_config: None,
            builtins: BTreeMap::new(),
            default_plugins: BTreeMap::new(),
            leader_election: None,
            engine: EngineOptions::default(),
            rollout_concurrency: 10,
            analysis_concurrency: 30,
        }
    }
}

/// Runs the controller until `shutdown` completes, with metrics registered in a private
/// registry. See [`SluiceController`] to serve the metrics.
pub async fn run(
    client: Client,
    options: ControllerOptions,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<()> {
    let mut registry = prometheus_client::registry::Registry::default();
    SluiceController::new(client, options, &mut registry)?
        .run(shutdown)
        .await
}

/// The controller, set up but not running yet: its metrics, readiness and plugins are
/// available before [`SluiceController::run`].
pub struct SluiceController {
    client: Client,
    options: ControllerOptions,
    plugins: Arc<PluginRegistry>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

impl SluiceController {
    /// Creates the plugin engine and registry and registers every metric (the controller's and
    /// the plugins') in `prometheus`.
    pub fn new(
        client: Client,
        options: ControllerOptions,
        prometheus: &mut prometheus_client::registry::Registry,
    ) -> Result<Self> {
        let engine = PluginEngine::new(options.engine.clone()).map_err(Error::Engine)?;
        let services = HostServices {
            kube: Arc::new(ClientKubeBackend::new(client.clone())),
            http: Arc::new(ReqwestHttpBackend::new().map_err(Error::HttpBackend)?),
            observer: None,
        };
        let plugin_metrics = PluginMetrics::register(prometheus);
        let plugins = Arc::new(PluginRegistry::new(
            engine,
            services,
            plugin_metrics,
            options.builtins.clone(),
            FetchOptions::default(),
        ));
        let metrics = Arc::new(Metrics::register(prometheus));
        Ok(Self {
            client,
            options,
            plugins,
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The controller's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The plugin registry.
    pub fn plugins(&self) -> Arc<PluginRegistry> {
        self.plugins.clone()
    }

    /// True once the plugins are loaded and every cache has synced (for `/readyz`).
    pub fn readiness(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// Runs both reconcilers until `shutdown` completes; in-flight reconciles finish first.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) -> Result<()> {
        let Self {
            client,
            options,
            plugins,
            metrics,
            ready,
        } = self;
        let shutdown = shutdown.shared();
        let mut candidate = options
            .leader_election
            .clone()
            .map(|election| leader::Candidate::new(client.clone(), election));
        if let Some(candidate) = candidate.as_mut() {
            // A standby replica is healthy and ready: it only waits for the lease.
            ready.store(true, Ordering::Release);
            tracing::info!(identity = %candidate.election().identity, "waiting for the leader lease");
            tokio::select! {
                () = candidate.acquire() => {}
                () = shutdown.clone() => return Ok(()),
            }
            ready.store(false, Ordering::Release);
        }
        let (stop_reconciling, stopped) = tokio::sync::oneshot::channel::<()>();
        let stop = async {
            stopped.await.ok();
        }
        .shared();
        let mut background = tokio::task::JoinSet::new();
        match &options.plugin_config {
            Some(source) => {
                let defaults = &options.default_plugins;
                let applied = plugins::apply_initial(&client, source, defaults, &plugins).await?;
                background.spawn(plugins::watch(
                    client.clone(),
                    source.clone(),
                    defaults.clone(),
                    plugins.clone(),
                    applied,
                ));
            }
            None => plugins::apply(&options.default_plugins, None, &plugins).await,
        }

        let scope = Scope {
            client: client.clone(),
            namespace: options.namespace.clone(),
            instance_selector: instance_selector(options.instance_id.as_deref()),
        };
        let (rollouts, rollout_events) =
            scope.reflect::<Rollout>(Some(scope.instance_selector.clone()));
        let (replica_sets, replica_set_events) =
            scope.reflect::<ReplicaSet>(Some(labels::POD_TEMPLATE_HASH.to_string()));
        let (services, service_events) = scope.reflect::<Service>(None);
        let (analysis_runs, analysis_run_events) = scope.reflect::<AnalysisRun>(None);
        let (own_runs, own_run_events) =
            scope.reflect::<AnalysisRun>(Some(scope.instance_selector.clone()));
        let (experiments, experiment_events) = scope.reflect::<Experiment>(None);
        let (analysis_templates, template_events) = scope.reflect::<AnalysisTemplate>(None);
        let (cluster_analysis_templates, cluster_template_events) = {
            let (store, writer) = reflector::store();
            let events = watcher(
                Api::<ClusterAnalysisTemplate>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(trim)
            .reflect(writer)
            .applied_objects();
            (store, events)
        };
        background.spawn(drain(template_events));
        background.spawn(drain(cluster_template_events));

        let stores = Stores {
            rollouts: rollouts.clone(),
            replica_sets,
            services,
            analysis_runs,
            analysis_runs_for_analysis: own_runs.clone(),
            experiments,
            analysis_templates,
            cluster_analysis_templates,
        };
        let context = Arc::new(Context {
            client: client.clone(),
            stores: stores.clone(),
            plugins,
            metrics,
            weight_verifications: Default::default(),
            step_plugin_reports: Default::default(),
            caches_synced: ready.clone(),
            reporter: events::reporter(),
        });

        let service_rollouts = rollouts.clone();
        let rollout_controller = Controller::for_stream(rollout_events, rollouts)
            .owns_stream(replica_set_events)
            .owns_stream(analysis_run_events)
            .owns_stream(experiment_events)
            .watches_stream(service_events, move |service: Service| {
                rollouts_naming_service(&service_rollouts, &service)
            })
            .with_config(controller::Config::default().concurrency(options.rollout_concurrency))
            .graceful_shutdown_on(stop.clone())
            .run(rollout::reconcile, rollout::error_policy, context.clone())
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "rollout controller");
                }
            });
        let analysis_controller = Controller::for_stream(own_run_events, own_runs)
            .with_config(controller::Config::default().concurrency(options.analysis_concurrency))
            .graceful_shutdown_on(stop.clone())
            .run(analysis::reconcile, analysis::error_policy, context.clone())
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "analysis controller");
                }
            });
        let (experiment_controller, experiment_readiness) =
            experiment::controller(&scope, context.clone(), stop.clone());
        let readiness = async {
            if stores.wait_until_ready().await {
                ready.store(true, Ordering::Release);
                tracing::info!("caches synced; controller ready");
            }
        };
        let supervise = async {
            let leadership_lost = async {
                match candidate.as_mut() {
                    Some(candidate) => candidate.keep_leading().await,
                    None => std::future::pending().await,
                }
            };
            let lost = tokio::select! {
                () = shutdown.clone() => false,
                () = leadership_lost => true,
            };
            stop_reconciling.send(()).ok();
            lost
        };
        tracing::info!(namespace = ?options.namespace, "controller starting");
        let ((), (), (), (), (), leadership_lost) = futures::join!(
            rollout_controller,
            analysis_controller,
            experiment_controller,
            readiness,
            experiment_readiness,
            supervise
        );
        ready.store(false, Ordering::Release);
        background.abort_all();
        if leadership_lost {
            return Err(Error::LeadershipLost);
        }
        if let Some(candidate) = candidate.as_mut() {
            candidate.release().await;
        }
        tracing::info!("controller stopped");
        Ok(())
    }
}

impl Stores {
    /// Waits until every cache has listed its objects; false if a cache can never sync.
    pub async fn wait_until_ready(&self) -> bool {
        let results = futures::join!(
            self.rollouts.wait_until_ready(),
            self.replica_sets.wait_until_ready(),
            self.services.wait_until_ready(),
            self.analysis_runs.wait_until_ready(),
            self.analysis_runs_for_analysis.wait_until_ready(),
            self.experiments.wait_until_ready(),
            self.analysis_templates.wait_until_ready(),
            self.cluster_analysis_templates.wait_until_ready(),
        );
        results.0.is_ok()
            && results.1.is_ok()
            && results.2.is_ok()
            && results.3.is_ok()
            && results.4.is_ok()
            && results.5.is_ok()
            && results.6.is_ok()
            && results.7.is_ok()
    }
}

/// The label selector of the objects this instance handles.
fn instance_selector(instance_id: Option<&str>) -> String {
    match instance_id {
        Some(id) => format!("{}={id}", labels::INSTANCE_ID),
        None => format!("!{}", labels::INSTANCE_ID),
    }
}

struct Scope {
    client: Client,
    namespace: Option<String>,
    instance_selector: String,
}

type Events<K> = futures::stream::BoxStream<'static, Result<K, watcher::Error>>;

impl Scope {
    /// A trimmed reflector of `K` in the controller's scope, and its event stream (which must be
    /// polled for the cache to fill).
    fn reflect<K>(&self, label_selector: Option<String>) -> (Store<K>, Events<K>)
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let api: Api<K> = match &self.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        };
        let mut config = watcher::Config::default();
        if let Some(selector) = label_selector {
            config = config.labels(&selector);
        }
        let (store, writer) = reflector::store();
        let events = watcher(api, config)
            .default_backoff()
            .modify(trim)
            .reflect(writer)
            .applied_objects()
            .boxed();
        (store, events)
    }
}

/// Drops what the controller never reads from cached objects.
fn trim<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Polls a reflector's events so its cache stays current.
fn drain<K: Send + 'static>(
    events: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
) -> BoxFuture<'static, ()> {
    events
        .for_each(|event| async move {
            if let Err(error) = event {
                tracing::warn!(%error, "watch failed");
            }
        })
        .boxed()
}

/// The Rollouts of the Service's namespace whose strategy names it.
fn rollouts_naming_service(
    rollouts: &Store<Rollout>,
    service: &Service,
) -> Vec<ObjectRef<Rollout>> {
    let namespace = service.namespace();
    let name = service.name_any();
    rollouts
        .state()
        .iter()
        .filter(|rollout| rollout.namespace() == namespace)
        .filter(|rollout| rollout::service_names(rollout).contains(&name))
        .map(|rollout| ObjectRef::from_obj(&**rollout))
        .collect()
}
