//! A simulated kubelet and scheduler.
//!
//! There are no containers: the scheduler binds every unscheduled Pod to one fake Node, and the
//! kubelet writes the status a real kubelet would write — `Pending`/`ContainerCreating` first,
//! then, after [`KubeletConfig::ready_delay`], `Running` with Ready conditions, container statuses
//! and a Pod IP in `10.244.0.0/16` (never dialled). Pods with a `deletionTimestamp` are deleted
//! with grace period 0, as a kubelet does once the containers have stopped.
//!
//! Per-Pod behaviour is chosen with annotations (set them on a pod template to affect every Pod of
//! a ReplicaSet; changing them on a live Pod takes effect immediately):
//!
//! | annotation | value | effect |
//! |---|---|---|
//! | [`SIMULATE_ANNOTATION`] | `ready` (default) | Running and Ready |
//! | | `unready` | Running, containers started but never Ready |
//! | | `fail` | containers crash: `CrashLoopBackOff` (or phase `Failed` with `restartPolicy: Never`) |
//! | | `pending` | never scheduled: stays Pending without a node |
//! | [`SIMULATE_DELAY_ANNOTATION`] | `250ms`, `2s`, `1m`, or milliseconds | start-up delay for this Pod |
//!
//! The Node is not heart-beaten: the local cluster runs kube-controller-manager without the
//! node-lifecycle controller, so the Node stays Ready.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Error;

/// Pod annotation selecting the simulated behaviour; see [`Simulation`].
pub const SIMULATE_ANNOTATION: &str = "sluice.dev/simulate";
/// Pod annotation overriding [`KubeletConfig::ready_delay`] for one Pod (`250ms`, `2s`, `1m`, or a
/// number of milliseconds).
pub const SIMULATE_DELAY_ANNOTATION: &str = "sluice.dev/simulate-delay";
/// Name of the fake Node unless configured otherwise.
pub const DEFAULT_NODE_NAME: &str = "sluice-sim-node";

/// Field manager of the simulated kubelet's writes.
const FIELD_MANAGER: &str = "sluice-sim-kubelet";
/// The fake Node's InternalIP; Pod IPs are allocated after it.
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

/// Configuration of the simulated kubelet and scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletConfig {
    /// Name of the fake Node that every Pod is bound to.
    pub node_name: String,
    /// Time from the kubelet first seeing a bound Pod to the Pod running (and, unless simulated
    /// otherwise, Ready). Overridable per Pod with [`SIMULATE_DELAY_ANNOTATION`].
    pub ready_delay: Duration,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            node_name: DEFAULT_NODE_NAME.to_owned(),
            ready_delay: Duration::from_millis(100),
        }
    }
}

/// What the simulated kubelet does with a Pod, from its [`SIMULATE_ANNOTATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulation {
    /// Running and Ready (the default).
    Ready,
    /// Running, containers started, never Ready.
    Unready,
    /// Containers crash: `CrashLoopBackOff`, or phase `Failed` when `restartPolicy` is `Never`.
    Fail,
    /// Never scheduled: stays Pending without a node.
    Pending,
}

impl Simulation {
    /// Parses an annotation value (`ready`, `unready`, `fail`, `pending`).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "ready" | "" => Some(Self::Ready),
            "unready" => Some(Self::Unready),
            "fail" => Some(Self::Fail),
            "pending" => Some(Self::Pending),
            _ => None,
        }
    }

    /// The simulation a Pod asks for; an unknown value is logged and treated as [`Self::Ready`].
    pub fn of(pod: &Pod) -> Self {
        match annotation(pod, SIMULATE_ANNOTATION) {
            None => Self::Ready,
            Some(value) => Self::parse(value).unwrap_or_else(|| {
                tracing::warn!(
                    pod = pod.metadata.name.as_deref().unwrap_or_default(),
                    value,
                    "unknown {SIMULATE_ANNOTATION} value (expected ready, unready, fail or pending); treating as ready"
                );
                Self::Ready
            }),
        }
    }
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Parses `250ms`, `2s`, `1m` or a bare number of milliseconds.
fn parse_delay(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (number, unit_ms) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = value.strip_suffix('m') {
        (n, 60_000)
    } else {
        (value, 1)
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .map(|n| Duration::from_millis(n.saturating_mul(unit_ms)))
}

fn delay_of(pod: &Pod, default: Duration) -> Duration {
    match annotation(pod, SIMULATE_DELAY_ANNOTATION) {
        None => default,
        Some(value) => parse_delay(value).unwrap_or_else(|| {
            tracing::warn!(
                pod = pod.metadata.name.as_deref().unwrap_or_default(),
                value,
                "invalid {SIMULATE_DELAY_ANNOTATION} value; using the default delay"
            );
            default
        }),
    }
}

fn now() -> Value {
    serde_json::to_value(Time(Timestamp::now())).unwrap_or(Value::Null)
}

/// Registers (or updates) the fake Node and reports it Ready.
pub async fn register_node(client: &Client, config: &KubeletConfig) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = &config.node_name;
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "sluice.dev/simulated": "true",
            },
        },
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    nodes
        .patch(name, &params, &Patch::Apply(&node))
        .await
        .map_err(Error::kube(format!("registering node {name}")))?;
    let now = now();
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    let resources =
        json!({"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"});
    let status = json!({
        "status": {
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "simulated kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP.to_string()},
                {"type": "Hostname", "address": name},
            ],
            "capacity": resources,
            "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "sluice-simulated", "systemUUID": "sluice-simulated", "bootID": "sluice-simulated",
                "kernelVersion": "simulated", "osImage": "simulated", "containerRuntimeVersion": "simulated://0",
                "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                "operatingSystem": "linux", "architecture": "amd64",
            },
        }
    });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(Error::kube(format!("reporting node {name} Ready")))?;
    Ok(())
}

/// Registers the Node, then runs the scheduler and kubelet loops until the task is dropped.
pub async fn run(client: Client, config: KubeletConfig) -> Result<(), Error> {
    register_node(&client, &config).await?;
    simulate(client, config).await;
    Ok(())
}

/// Runs the scheduler and kubelet loops (the Node must be registered) until the task is dropped.
/// Errors are logged and retried with backoff.
pub async fn simulate(client: Client, config: KubeletConfig) {
    tokio::join!(
        schedule(client.clone(), config.node_name.clone()),
        Kubelet::new(client, config).run()
    );
}

/// Binds every unscheduled Pod (except `pending` ones) to the fake Node.
async fn schedule(client: Client, node_name: String) {
    let pods: Api<Pod> = Api::all(client.clone());
    let stream = watcher(pods, watcher::Config::default().fields("spec.nodeName="))
        .default_backoff()
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(pod) if wants_binding(&pod) => {
                tokio::spawn(bind(client.clone(), pod, node_name.clone()));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "simulated scheduler: watching pods failed"),
        }
    }
}

fn wants_binding(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .spec
            .as_ref()
            .is_some_and(|s| s.node_name.as_deref().unwrap_or_default().is_empty())
        && !matches!(phase, Some("Succeeded" | "Failed"))
        && Simulation::of(pod) != Simulation::Pending
}

async fn bind(client: Client, pod: Pod, node_name: String) {
    let (Some(namespace), Some(name)) = (pod.metadata.namespace, pod.metadata.name) else {
        return;
    };
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid,
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Node".to_owned()),
            name: Some(node_name),
            ..ObjectReference::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    match api
        .create_subresource::<_, Value>("binding", &name, &PostParams::default(), &binding)
        .await
    {
        Ok(_) => tracing::debug!(%namespace, %name, "simulated scheduler: bound"),
        // Already bound, or gone: nothing to do.
        Err(kube::Error::Api(s)) if s.is_conflict() || s.is_not_found() => {}
        Err(e) => {
            tracing::warn!(%namespace, %name, error = %e, "simulated scheduler: binding failed")
        }
    }
}

/// The `n`th Pod IP: 10.244.0.2, 10.244.0.3, …, skipping .0 and .255 host bytes and the Node's
/// address, wrapping after 65,023 addresses.
fn pod_ip(n: u32) -> Ipv4Addr {
    let index = n % (256 * 254 - 1) + 1;
    let [_, _, c, d] = (index / 254 * 256 + index % 254 + 1).to_be_bytes();
    Ipv4Addr::new(10, 244, c, d)
}

/// What the kubelet remembers about a Pod it runs.
#[derive(Debug)]
struct PodSim {
    first_seen: Instant,
    ip: Ipv4Addr,
    recheck_scheduled: bool,
    latest: Pod,
}

struct Kubelet {
    client: Client,
    config: KubeletConfig,
    pods: HashMap<String, PodSim>,
    deleting: HashSet<String>,
    next_ip: u32,
}

impl Kubelet {
    fn new(client: Client, config: KubeletConfig) -> Self {
        Self {
            client,
            config,
            pods: HashMap::new(),
            deleting: HashSet::new(),
            next_ip: 0,
        }
    }

    fn allocate_ip(&mut self) -> Ipv4Addr {
        let n = self.next_ip;
        self.next_ip = self.next_ip.wrapping_add(1);
        pod_ip(n)
    }

    async fn run(mut self) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let selector = format!("spec.nodeName={}", self.config.node_name);
        let stream = watcher(pods, watcher::Config::default().fields(&selector)).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let (recheck_tx, mut recheck_rx) = mpsc::unbounded_channel::<String>();
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                        self.observe(pod, &recheck_tx);
                    }
                    Some(Ok(watcher::Event::Delete(pod))) => {
                        if let Some(uid) = pod.metadata.uid {
                            self.pods.remove(&uid);
                            self.deleting.remove(&uid);
                        }
                    }
                    Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "simulated kubelet: watching pods failed"),
                    None => return,
                },
                Some(uid) = recheck_rx.recv() => {
                    if let Some(sim) = self.pods.get_mut(&uid) {
                        sim.recheck_scheduled = false;
                        let pod = sim.latest.clone();
                        self.observe(pod, &recheck_tx);
                    }
                }
            }
        }
    }

    fn observe(&mut self, pod: Pod, recheck: &mpsc::UnboundedSender<String>) {
        let (Some(uid), Some(namespace), Some(name)) = (
            pod.metadata.uid.clone(),
            pod.metadata.namespace.clone(),
            pod.metadata.name.clone(),
        ) else {
            return;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            if self.deleting.insert(uid.clone()) {
                tokio::spawn(finalize(self.client.clone(), namespace, name, uid));
            }
            return;
        }
        if !self.pods.contains_key(&uid) {
            let ip = self.allocate_ip();
            self.pods.insert(
                uid.clone(),
                PodSim {
                    first_seen: Instant::now(),
                    ip,
                    recheck_scheduled: false,
                    latest: pod.clone(),
                },
            );
        }
        let Some(sim) = self.pods.get_mut(&uid) else {
            return;
        };
        sim.latest = pod.clone();
        let due = sim.first_seen + delay_of(&pod, self.config.ready_delay);
        let started = Instant::now() >= due;
        if !started && !sim.recheck_scheduled {
            sim.recheck_scheduled = true;
            let recheck = recheck.clone();
            let uid = uid.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(due).await;
                // The kubelet loop is gone when the send fails: nothing left to do.
                let _ = recheck.send(uid);
            });
        }
        let desired = desired_status(&pod, Simulation::of(&pod), started, sim.ip);
        if Signature::of_status(&pod) != Signature::of_desired(&desired) {
            tokio::spawn(write_status(self.client.clone(), namespace, name, desired));
        }
    }
}

async fn write_status(client: Client, namespace: String, name: String, status: Value) {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let patch = json!({ "status": status });
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => tracing::debug!(%namespace, %name, "simulated kubelet: status written"),
        Err(kube::Error::Api(s)) if s.is_not_found() => {}
        Err(e) => {
            tracing::warn!(%namespace, %name, error = %e, "simulated kubelet: writing status failed")
        }
    }
}

async fn finalize(client: Client, namespace: String, name: String, uid: String) {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => tracing::debug!(%namespace, %name, "simulated kubelet: pod finalised"),
        Err(kube::Error::Api(s)) if s.is_not_found() || s.is_conflict() => {}
        Err(e) => {
            tracing::warn!(%namespace, %name, error = %e, "simulated kubelet: finalising failed")
        }
    }
}

/// The parts of a Pod status whose change makes the kubelet write.
#[derive(Debug, PartialEq, Eq)]
struct Signature {
    phase: String,
    ready: String,
    has_ip: bool,
    containers: Vec<(String, String, bool)>,
}

impl Signature {
    fn of_status(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
            .unwrap_or_default();
        let containers = status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|statuses| {
                statuses
                    .iter()
                    .map(|c| {
                        let state = c.state.as_ref().map_or("", |s| {
                            if s.running.is_some() {
                                "running"
                            } else if s.terminated.is_some() {
                                "terminated"
                            } else {
                                s.waiting
                                    .as_ref()
                                    .and_then(|w| w.reason.as_deref())
                                    .unwrap_or("waiting")
                            }
                        });
                        (c.name.clone(), state.to_owned(), c.ready)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
            ready,
            has_ip: status.and_then(|s| s.pod_ip.as_ref()).is_some(),
            containers,
        }
    }

    fn of_desired(status: &Value) -> Self {
        let str_at = |v: &Value, p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let ready = status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .map(|c| str_at(c, "/status"))
            .unwrap_or_default();
        let containers = status["containerStatuses"]
            .as_array()
            .map(|statuses| {
                statuses
                    .iter()
                    .map(|c| {
                        let state = if c.pointer("/state/running").is_some() {
                            "running".to_owned()
                        } else if c.pointer("/state/terminated").is_some() {
                            "terminated".to_owned()
                        } else {
                            str_at(c, "/state/waiting/reason")
                        };
                        (
                            str_at(c, "/name"),
                            state,
                            c["ready"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            phase: str_at(status, "/phase"),
            ready,
            has_ip: status.get("podIP").is_some(),
            containers,
        }
    }
}

fn container_id(uid: &str, container: &str) -> String {
    let mut out = String::from("containerd://");
    for salt in 0..4u8 {
        let mut hasher = DefaultHasher::new();
        (uid, container, salt).hash(&mut hasher);
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}

/// The status a kubelet would report for `pod`.
fn desired_status(pod: &Pod, simulation: Simulation, started: bool, ip: Ipv4Addr) -> Value {
    let now = now();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let restart_never = spec.and_then(|s| s.restart_policy.as_deref()) == Some("Never");
    let previous = pod.status.as_ref();

    let (phase, containers_ready, container_state): (&str, bool, &str) = match (started, simulation)
    {
        (false, _) => ("Pending", false, "creating"),
        (true, Simulation::Ready | Simulation::Pending) => ("Running", true, "running"),
        (true, Simulation::Unready) => ("Running", false, "running"),
        (true, Simulation::Fail) if restart_never => ("Failed", false, "failed"),
        (true, Simulation::Fail) => ("Running", false, "crashloop"),
    };

    let previous_started_at = |name: &str| {
        previous
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == name))
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .and_then(|t| serde_json::to_value(t).ok())
    };
    let containers: Vec<Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let mut status = json!({
                "name": c.name,
                "image": image,
                "imageID": format!("sluice-simulated://{image}"),
                "ready": containers_ready,
                "restartCount": 0,
                "started": false,
            });
            match container_state {
                "creating" => {
                    status["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
                }
                "running" => {
                    let started_at = previous_started_at(&c.name).unwrap_or_else(|| now.clone());
                    status["state"] = json!({"running": {"startedAt": started_at}});
                    status["started"] = json!(true);
                    status["containerID"] = json!(container_id(uid, &c.name));
                }
                "failed" => {
                    status["state"] = json!({"terminated": {
                        "exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now,
                        "containerID": container_id(uid, &c.name),
                    }});
                    status["containerID"] = json!(container_id(uid, &c.name));
                }
                _ => {
                    status["state"] = json!({"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": format!("back-off 10s restarting failed container={} pod={}", c.name, pod.metadata.name.as_deref().unwrap_or_default()),
                    }});
                    status["lastState"] = json!({"terminated": {
                        "exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now,
                        "containerID": container_id(uid, &c.name),
                    }});
                    status["restartCount"] = json!(1);
                    status["containerID"] = json!(container_id(uid, &c.name));
                }
            }
            status
        })
        .collect();
    let init_containers: Vec<Value> = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let state = if started {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now, "containerID": container_id(uid, &c.name)}})
            } else {
                json!({"waiting": {"reason": "PodInitializing"}})
            };
            json!({
                "name": c.name, "image": image, "imageID": format!("sluice-simulated://{image}"),
                "ready": started, "restartCount": 0, "state": state,
            })
        })
        .collect();

    let not_ready_names: Vec<&str> = spec
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    let condition = |type_: &str, ok: bool, reason: &str| {
        let status = if ok { "True" } else { "False" };
        let since = previous
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == status))
            .and_then(|c| c.last_transition_time.as_ref())
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or_else(|| now.clone());
        let mut condition = json!({
            "type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since,
        });
        if !ok {
            condition["reason"] = json!(reason);
            condition["message"] = json!(format!(
                "containers with unready status: [{}]",
                not_ready_names.join(" ")
            ));
        }
        condition
    };
    let ready_reason = if phase == "Failed" {
        "PodFailed"
    } else {
        "ContainersNotReady"
    };
    let mut status = json!({
        "phase": phase,
        "hostIP": NODE_IP.to_string(),
        "conditions": [
            condition("Initialized", started || init_containers.is_empty(), "ContainersNotInitialized"),
            condition("Ready", containers_ready, ready_reason),
            condition("ContainersReady", containers_ready, ready_reason),
            condition("PodScheduled", true, ""),
        ],
        "containerStatuses": containers,
        "qosClass": previous.and_then(|s| s.qos_class.clone()).unwrap_or_else(|| "BestEffort".to_owned()),
        "startTime": previous
            .and_then(|s| s.start_time.as_ref())
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or_else(|| now.clone()),
    });
    if !init_containers.is_empty() {
        status["initContainerStatuses"] = json!(init_containers);
    }
    if started {
        status["podIP"] = json!(ip.to_string());
        status["podIPs"] = json!([{"ip": ip.to_string()}]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_delays() {
        assert_eq!(parse_delay("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_delay("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_delay("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_delay("40"), Some(Duration::from_millis(40)));
        assert_eq!(parse_delay("soon"), None);
    }

    #[test]
    fn parses_simulations() {
        assert_eq!(Simulation::parse("unready"), Some(Simulation::Unready));
        assert_eq!(Simulation::parse(" fail "), Some(Simulation::Fail));
        assert_eq!(Simulation::parse("pending"), Some(Simulation::Pending));
        assert_eq!(Simulation::parse("ready"), Some(Simulation::Ready));
        assert_eq!(Simulation::parse("crash"), None);
    }

    #[test]
    fn allocates_distinct_non_routable_ips() {
        assert_eq!(pod_ip(0), Ipv4Addr::new(10, 244, 0, 2));
        let ips = (0..256 * 254 - 1).map(pod_ip).collect::<HashSet<_>>();
        assert_eq!(ips.len(), 256 * 254 - 1);
        assert!(!ips.contains(&NODE_IP));
        assert!(ips.iter().all(|ip| {
            let [a, b, _, d] = ip.octets();
            a == 10 && b == 244 && d != 0 && d != 255
        }));
    }

    fn pod(annotations: &[(&str, &str)], restart_policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u-1",
                "annotations": annotations.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            },
            "spec": {"restartPolicy": restart_policy, "containers": [{"name": "app", "image": "nginx:1"}]},
        }))
        .expect("valid pod")
    }

    #[test]
    fn desired_status_follows_the_simulation() {
        let ip = Ipv4Addr::new(10, 244, 0, 2);
        let ready = desired_status(&pod(&[], "Always"), Simulation::Ready, true, ip);
        assert_eq!(ready["phase"], "Running");
        assert_eq!(ready["podIP"], "10.244.0.2");
        assert_eq!(ready["containerStatuses"][0]["ready"], true);
        assert_eq!(Signature::of_desired(&ready).ready, "True");

        let creating = desired_status(&pod(&[], "Always"), Simulation::Ready, false, ip);
        assert_eq!(creating["phase"], "Pending");
        assert!(creating.get("podIP").is_none());
        assert_eq!(
            creating["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );

        let unready = desired_status(&pod(&[], "Always"), Simulation::Unready, true, ip);
        assert_eq!(unready["phase"], "Running");
        assert_eq!(Signature::of_desired(&unready).ready, "False");

        let crash = desired_status(&pod(&[], "Always"), Simulation::Fail, true, ip);
        assert_eq!(
            crash["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CrashLoopBackOff"
        );
        let failed = desired_status(&pod(&[], "Never"), Simulation::Fail, true, ip);
        assert_eq!(failed["phase"], "Failed");
    }

    #[test]
    fn reads_annotations() {
        let p = pod(
            &[
                (SIMULATE_ANNOTATION, "unready"),
                (SIMULATE_DELAY_ANNOTATION, "2s"),
            ],
            "Always",
        );
        assert_eq!(Simulation::of(&p), Simulation::Unready);
        assert_eq!(delay_of(&p, Duration::ZERO), Duration::from_secs(2));
        assert_eq!(Simulation::of(&pod(&[], "Always")), Simulation::Ready);
    }

    #[test]
    fn written_status_matches_its_signature() {
        let p = pod(&[], "Always");
        let desired = desired_status(&p, Simulation::Ready, true, Ipv4Addr::new(10, 244, 0, 2));
        let mut written = p.clone();
        written.status = Some(serde_json::from_value(desired.clone()).expect("valid status"));
        assert_eq!(
            Signature::of_status(&written),
            Signature::of_desired(&desired)
        );
    }
}
