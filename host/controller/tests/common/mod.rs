//! Shared helpers of the end-to-end tests: a controller running in-process against the local
//! control plane, fixture plugins, Rollout manifests and polling.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use sluice_api::analysis::{AnalysisRun, AnalysisTemplate};
use sluice_api::rollout::Rollout;
use sluice_controller::events::REPORTING_CONTROLLER;
use sluice_controller::{ControllerOptions, Metrics, PluginConfigMap, SluiceController};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Name of the plugin ConfigMap the tests create.
pub const PLUGIN_CONFIG_MAP: &str = "argo-rollouts-config";
/// Registry name of the echo router fixture.
pub const ECHO_ROUTER: &str = "sluice/echo-router";
/// Registry name of the echo provider fixture.
pub const ECHO_PROVIDER: &str = "sluice/echo-provider";

/// Serializes the tests of one binary: each runs its own controller, and the step-timing
/// assertions (1 s pauses) are kept free of a second controller competing for the CPU.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// A controller running in a task of the test's runtime.
pub struct RunningController {
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<sluice_controller::Result<()>>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
}

impl RunningController {
    /// Starts a controller watching only `namespace`, with the plugin ConfigMap of that
    /// namespace.
    pub fn start(client: Client, namespace: &str) -> anyhow::Result<Self> {
        Self::start_with(client, namespace, ControllerOptions::default())
    }

    /// Like [`RunningController::start`], with the built-in plugins configured by default as
    /// `sluice controller` configures them (the ConfigMap's entries laid over them).
    pub fn start_with_builtins(client: Client, namespace: &str) -> anyhow::Result<Self> {
        Self::start_with(
            client,
            namespace,
            ControllerOptions {
                builtins: sluice_builtins::components(),
                default_plugins: sluice_builtins::default_plugin_config(),
                ..ControllerOptions::default()
            },
        )
    }

    /// Like [`RunningController::start`], with `options` for everything but the namespace and
    /// the plugin ConfigMap.
    pub fn start_with(
        client: Client,
        namespace: &str,
        options: ControllerOptions,
    ) -> anyhow::Result<Self> {
        let _already = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let options = ControllerOptions {
            namespace: Some(namespace.to_string()),
            plugin_config: Some(PluginConfigMap {
                namespace: namespace.to_string(),
                name: PLUGIN_CONFIG_MAP.to_string(),
            }),
            ..options
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let controller = SluiceController::new(client, options, &mut registry)?;
        let metrics = controller.metrics();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller.run(async {
            stopped.await.ok();
        }));
        Ok(Self {
            shutdown: Some(shutdown),
            task,
            metrics,
        })
    }

    /// Kills the controller: its task is aborted wherever it is.
    pub async fn kill(self) {
        self.task.abort();
        let _aborted = self.task.await;
    }

    /// Stops the controller gracefully.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).ok();
        }
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .context("controller did not stop")???;
        Ok(())
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds (once per test binary) the fixture plugin `package` and returns its `.wasm` path.
pub async fn fixture_plugin(package: &'static str) -> anyhow::Result<PathBuf> {
    static BUILT: Mutex<BTreeMap<&'static str, PathBuf>> = Mutex::new(BTreeMap::new());
    let path = tokio::task::spawn_blocking(move || {
        let mut built = BUILT.lock().expect("fixture builds");
        if let Some(path) = built.get(package) {
            return Ok(path.clone());
        }
        let path = sluice_plugin_build::build_plugin(&workspace_root(), package)?;
        built.insert(package, path.clone());
        anyhow::Ok(path)
    })
    .await??;
    Ok(path)
}

/// Creates the plugin ConfigMap (the `sluice-runtime` format) with the echo fixtures.
pub async fn install_plugins(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let router = fixture_plugin("sluice-fixture-echo-router").await?;
    let provider = fixture_plugin("sluice-fixture-echo-provider").await?;
    install_plugin_config(
        client,
        namespace,
        &format!(
            "- name: {ECHO_ROUTER}\n  location: file://{}\n  grants:\n    kube:\n      - {{kinds: [ConfigMap], verbs: [get, create, patch, delete]}}\n",
            router.display()
        ),
        &format!(
            "- name: {ECHO_PROVIDER}\n  location: file://{}\n",
            provider.display()
        ),
    )
    .await
}

/// Creates or replaces the plugin ConfigMap with these `trafficRouterPlugins` and
/// `metricProviderPlugins` lists (YAML).
pub async fn install_plugin_config(
    client: &Client,
    namespace: &str,
    traffic_routers: &str,
    metric_providers: &str,
) -> anyhow::Result<()> {
    let config_map: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": PLUGIN_CONFIG_MAP},
        "data": {
            "trafficRouterPlugins": traffic_routers,
            "metricProviderPlugins": metric_providers,
        },
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .patch(
            PLUGIN_CONFIG_MAP,
            &PatchParams::apply("sluice-tests").force(),
            &Patch::Apply(&config_map),
        )
        .await?;
    Ok(())
}

/// A Rollout of `replicas` pods with a canary strategy (`canary` is the strategy's JSON).
pub fn rollout(name: &str, replicas: i32, canary: serde_json::Value) -> Rollout {
    rollout_with_strategy(name, replicas, json!({"canary": canary}))
}

/// A Rollout of `replicas` pods with a blue-green strategy (`blue_green` is the strategy's JSON).
pub fn blue_green_rollout(name: &str, replicas: i32, blue_green: serde_json::Value) -> Rollout {
    rollout_with_strategy(name, replicas, json!({"blueGreen": blue_green}))
}

fn rollout_with_strategy(name: &str, replicas: i32, strategy: serde_json::Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            },
            "strategy": strategy,
        },
    }))
    .expect("a valid Rollout")
}

/// Creates a Rollout.
pub async fn create_rollout(
    client: &Client,
    namespace: &str,
    rollout: &Rollout,
) -> anyhow::Result<()> {
    Api::<Rollout>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), rollout)
        .await?;
    Ok(())
}

/// Changes the Rollout's image (a new revision).
pub async fn set_image(
    client: &Client,
    namespace: &str,
    name: &str,
    image: &str,
) -> anyhow::Result<()> {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    Api::<Rollout>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Merge-patches the Rollout's status (what `kubectl argo rollouts promote/abort` do).
pub async fn patch_status(
    client: &Client,
    namespace: &str,
    name: &str,
    status: serde_json::Value,
) -> anyhow::Result<()> {
    Api::<Rollout>::namespaced(client.clone(), namespace)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await?;
    Ok(())
}

/// Reads a Rollout.
pub async fn get_rollout(client: &Client, namespace: &str, name: &str) -> anyhow::Result<Rollout> {
    Ok(Api::<Rollout>::namespaced(client.clone(), namespace)
        .get(name)
        .await?)
}

/// The ReplicaSets a Rollout owns.
pub async fn owned_replica_sets(
    client: &Client,
    namespace: &str,
    rollout: &Rollout,
) -> anyhow::Result<Vec<ReplicaSet>> {
    let uid = rollout.uid().unwrap_or_default();
    Ok(Api::<ReplicaSet>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|rs| rs.owner_references().iter().any(|owner| owner.uid == uid))
        .collect())
}

/// `spec.replicas` of the owned ReplicaSet with this pod-template hash (0 when absent).
pub fn replicas_of(replica_sets: &[ReplicaSet], hash: Option<&str>) -> i32 {
    replica_sets
        .iter()
        .find(|rs| {
            hash.is_some_and(|hash| {
                rs.labels()
                    .get("rollouts-pod-template-hash")
                    .map(String::as_str)
                    == Some(hash)
            })
        })
        .and_then(|rs| rs.spec.as_ref().and_then(|spec| spec.replicas))
        .unwrap_or(0)
}

/// Waits until an aborted Rollout's canary ReplicaSet (its `currentPodHash`) is scaled to zero
/// and its stable one (`stableRS`) to `stable_replicas`.
pub async fn wait_canary_scaled_to_zero(
    client: &Client,
    namespace: &str,
    aborted: &Rollout,
    stable_replicas: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let status = aborted.status.clone().unwrap_or_default();
    let (canary, stable) = (status.current_pod_hash, status.stable_rs);
    eventually("the canary scaled to zero", timeout, || async {
        let replica_sets = owned_replica_sets(client, namespace, aborted).await?;
        Ok((replicas_of(&replica_sets, canary.as_deref()) == 0
            && replicas_of(&replica_sets, stable.as_deref()) == stable_replicas)
            .then_some(()))
    })
    .await
}

/// Polls `check` every 20 ms until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to a minute) until the Rollout satisfies `check` and returns it.
pub async fn wait_rollout(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Rollout) -> bool,
) -> anyhow::Result<Rollout> {
    let check = &check;
    eventually(
        &format!("Rollout {name}: {what}"),
        Duration::from_secs(60),
        || async move {
            let rollout = get_rollout(client, namespace, name).await?;
            Ok(check(&rollout).then_some(rollout))
        },
    )
    .await
}

/// Waits until the Rollout is Healthy on its current revision and returns it.
pub async fn wait_healthy(client: &Client, namespace: &str, name: &str) -> anyhow::Result<Rollout> {
    wait_rollout(client, namespace, name, "Healthy", |rollout| {
        let status = rollout.status.clone().unwrap_or_default();
        status.phase.map(|phase| phase.as_str()) == Some("Healthy")
            && status.current_pod_hash.is_some()
            && status.current_pod_hash == status.stable_rs
            && status.observed_generation.as_deref()
                == rollout
                    .metadata
                    .generation
                    .map(|generation| generation.to_string())
                    .as_deref()
    })
    .await
}

/// Waits until the Rollout's update is paused at canary step `index` and returns it.
pub async fn wait_paused_at_step(
    client: &Client,
    namespace: &str,
    name: &str,
    index: i32,
) -> anyhow::Result<Rollout> {
    wait_rollout(
        client,
        namespace,
        name,
        &format!("paused at step {index}"),
        |rollout| {
            let status = rollout.status.clone().unwrap_or_default();
            status.current_step_index == Some(index)
                && !status.pause_conditions.is_empty()
                && status.current_pod_hash != status.stable_rs
        },
    )
    .await
}

/// The values `extract` takes on one named object, each with the wall-clock time a watch saw
/// it; consecutive repeats are recorded once. Recording stops when this is dropped.
pub struct Recording<T> {
    values: Arc<Mutex<Vec<(T, SystemTime)>>>,
    task: JoinHandle<()>,
}

impl<T: Clone + PartialEq + Send + 'static> Recording<T> {
    /// Starts watching the object `name` of `api`.
    pub fn start<K>(
        api: Api<K>,
        name: &str,
        extract: impl Fn(&K) -> Option<T> + Send + 'static,
    ) -> Self
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let values = Arc::new(Mutex::new(Vec::new()));
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let task = tokio::spawn({
            let values = values.clone();
            async move {
                let mut events = watcher(api, config).applied_objects().boxed();
                while let Some(Ok(object)) = events.next().await {
                    if let Some(value) = extract(&object) {
                        let mut values = values.lock().expect("recorded values");
                        if values.last().map(|(last, _)| last) != Some(&value) {
                            values.push((value, SystemTime::now()));
                        }
                    }
                }
            }
        });
        Self { values, task }
    }

    /// The values recorded so far, with the times they were seen.
    pub fn timed(&self) -> Vec<(T, SystemTime)> {
        self.values.lock().expect("recorded values").clone()
    }

    /// The values recorded so far.
    pub fn values(&self) -> Vec<T> {
        self.timed().into_iter().map(|(value, _)| value).collect()
    }
}

impl<T> Drop for Recording<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An API for a custom (or any dynamically typed) resource in `namespace`.
pub fn dynamic_api(
    client: &Client,
    namespace: &str,
    group: &str,
    version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Creates an object given as JSON through `api`.
pub async fn create_object(
    api: &Api<DynamicObject>,
    object: serde_json::Value,
) -> anyhow::Result<()> {
    let object: DynamicObject = serde_json::from_value(object)?;
    api.create(&PostParams::default(), &object).await?;
    Ok(())
}

pub async fn create_echo_template(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let template: AnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "echo-check"},
        "spec": {
            "args": [{"name": "value"}],
            "metrics": [{
                "name": "quality",
                "successCondition": "result >= 0.95",
                "provider": {"plugin": {ECHO_PROVIDER: {"value": "{{args.value}}"}}},
            }],
        },
    }))?;
    Api::<AnalysisTemplate>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &template)
        .await?;
    Ok(())
}

pub fn analysis_step(value: &str) -> serde_json::Value {
    json!({"analysis": {
        "templates": [{"templateName": "echo-check"}],
        "args": [{"name": "value", "value": value}],
    }})
}

pub async fn runs(client: &Client, namespace: &str) -> anyhow::Result<Vec<AnalysisRun>> {
    Ok(Api::<AnalysisRun>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items)
}

pub fn phase_of(run: &AnalysisRun) -> Option<&'static str> {
    run.status
        .as_ref()
        .and_then(|status| status.phase)
        .map(|phase| phase.as_str())
}

pub async fn create_service(
    client: &Client,
    namespace: &str,
    name: &str,
    app: &str,
) -> anyhow::Result<()> {
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": app}, "ports": [{"port": 80}]},
    }))?;
    Api::<Service>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &service)
        .await?;
    Ok(())
}

/// Waits (up to a minute) until the Rollout's phase is `phase` and returns it.
pub async fn wait_phase(
    client: &Client,
    namespace: &str,
    name: &str,
    phase: &str,
) -> anyhow::Result<Rollout> {
    wait_rollout(client, namespace, name, phase, |rollout| {
        rollout
            .status
            .as_ref()
            .and_then(|status| status.phase)
            .is_some_and(|current| current.as_str() == phase)
    })
    .await
}

/// Records every weight the echo router receives for `rollout` (each router call replaces the
/// echo ConfigMap's data, so its last state alone is not enough).
pub fn echo_router_weights(client: &Client, namespace: &str, rollout: &str) -> Recording<String> {
    Recording::start(
        Api::<ConfigMap>::namespaced(client.clone(), namespace),
        &format!("{rollout}-echo"),
        |map: &ConfigMap| map.data.as_ref()?.get("weight").cloned(),
    )
}

/// The `rollouts-pod-template-hash` a Service selects.
pub async fn selected_hash(
    client: &Client,
    namespace: &str,
    service: &str,
) -> anyhow::Result<Option<String>> {
    let service = Api::<Service>::namespaced(client.clone(), namespace)
        .get(service)
        .await?;
    Ok(service
        .spec
        .and_then(|spec| spec.selector)
        .unwrap_or_default()
        .get("rollouts-pod-template-hash")
        .cloned())
}

/// An `events.k8s.io/v1` Event as the tests read it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenEvent {
    /// Reason.
    pub reason: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    /// The message.
    pub note: String,
}

/// The Events the controller (`sluice`) reported about the object `kind/name`, oldest first.
pub async fn events_about(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
) -> anyhow::Result<Vec<SeenEvent>> {
    let mut events: Vec<Event> = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|event| {
            event.reporting_controller.as_deref() == Some(REPORTING_CONTROLLER)
                && event.regarding.as_ref().is_some_and(|regarding| {
                    regarding.kind.as_deref() == Some(kind)
                        && regarding.name.as_deref() == Some(name)
                })
        })
        .collect();
    events.sort_by_key(|event| event.event_time.as_ref().map(|time| time.0));
    Ok(events
        .into_iter()
        .map(|event| SeenEvent {
            reason: event.reason.unwrap_or_default(),
            type_: event.type_.unwrap_or_default(),
            note: event.note.unwrap_or_default(),
        })
        .collect())
}

/// The one event with this reason (fails on none or several).
pub fn only_event<'a>(events: &'a [SeenEvent], reason: &str) -> anyhow::Result<&'a SeenEvent> {
    let mut found = events.iter().filter(|event| event.reason == reason);
    match (found.next(), found.next()) {
        (Some(event), None) => Ok(event),
        (None, _) => bail!("no {reason} event in {events:#?}"),
        (Some(_), Some(_)) => bail!("several {reason} events in {events:#?}"),
    }
}

/// Waits until the controller reported an event about `kind/name` that satisfies `wanted`
/// (events are published right after the status write that a test may see first), and returns
/// all of the object's events.
pub async fn events_including(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
    wanted: impl Fn(&SeenEvent) -> bool,
) -> anyhow::Result<Vec<SeenEvent>> {
    let wanted = &wanted;
    eventually(
        &format!("an expected event about {kind} {name}"),
        Duration::from_secs(10),
        || async move {
            let events = events_about(client, namespace, kind, name).await?;
            Ok(events.iter().any(wanted).then_some(events))
        },
    )
    .await
}
