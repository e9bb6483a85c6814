//! The controller against the local control plane (real kube-apiserver and etcd, simulated
//! kubelet, real Prometheus), run manually: `cargo bench -p sluice --bench controller_scale`.
//! Prints three figures:
//!
//! 1. **Abort latency**: from a failed AnalysisRun becoming visible to the Gateway API route's
//!    canary weight returning to 0, both observed through watches by this process
//!    (`SLUICE_BENCH_ABORTS` canaries, default 20).
//! 2. **Steady state**: every HTTP request the controller's client makes during 60 s with 100
//!    Healthy Rollouts (`SLUICE_BENCH_STEADY` Rollouts, `SLUICE_BENCH_STEADY_SECONDS`).
//! 3. **Memory**: the `sluice controller` process's RSS idle (ready: connected, caches synced, the
//!    default plugin configuration, no Rollouts, so no plugin compiled yet), after one canary
//!    through the Gateway API router with a Prometheus analysis (those two built-ins compiled on
//!    their first use), and with 1,000 more Healthy Rollouts (`SLUICE_BENCH_ROLLOUTS`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sluice_api::analysis::{AnalysisRun, AnalysisTemplate};
use sluice_api::rollout::Rollout;
use sluice_controller::{ControllerOptions, SluiceController};
use sluice_localcluster::{LocalCluster, LocalPrometheus, TestNamespace};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn rollout(name: &str, image: &str, strategy: Value) -> anyhow::Result<Rollout> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": strategy,
        },
    }))?)
}

async fn create_rollouts(ns: &TestNamespace, count: usize) -> anyhow::Result<()> {
    let api = ns.api::<Rollout>();
    let names: Vec<String> = (0..count).map(|i| format!("app-{i}")).collect();
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                let object = rollout(
                    &name,
                    "example/app:1",
                    json!({"canary": {"steps": [{"setWeight": 50}]}}),
                )?;
                api.create(&Default::default(), &object).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

async fn wait_all_healthy(ns: &TestNamespace, count: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let api = ns.api::<Rollout>();
    loop {
        let healthy = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|r| {
                r.status.as_ref().and_then(|s| s.phase).map(|p| p.as_str()) == Some("Healthy")
            })
            .count();
        if healthy == count {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "only {healthy} of {count} Rollouts Healthy after 15 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn http_route_api(ns: &TestNamespace) -> Api<DynamicObject> {
    ns.dynamic_api(&ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    ))
}

/// A controller in this process; `stop` ends it.
struct InProcess {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<sluice_controller::Result<()>>,
}

impl InProcess {
    fn start(client: Client, namespace: &str) -> anyhow::Result<Self> {
        let options = ControllerOptions {
            namespace: Some(namespace.to_string()),
            builtins: sluice_builtins::components(),
            default_plugins: sluice_builtins::default_plugin_config(),
            ..ControllerOptions::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let controller = SluiceController::new(client, options, &mut registry)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(controller.run(async {
            stopped.await.ok();
        }));
        Ok(Self { stop, task })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.send(()).ok();
        self.task.await??;
        Ok(())
    }
}

/// In `ns`: the Services `web-stable` and `web-canary`, the HTTPRoute `web` sending all traffic
/// to stable, and the AnalysisTemplate `template`, one Prometheus metric (`vector(0)`) that
/// succeeds when `success_condition` holds.
async fn routed_web(
    ns: &TestNamespace,
    prometheus: &LocalPrometheus,
    template: &str,
    success_condition: &str,
) -> anyhow::Result<()> {
    for service in ["web-stable", "web-canary"] {
        let object: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": service},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))?;
        ns.api::<Service>()
            .create(&Default::default(), &object)
            .await?;
    }
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {"rules": [{"backendRefs": [
            {"name": "web-stable", "port": 80, "weight": 100},
            {"name": "web-canary", "port": 80, "weight": 0}]}]}}))?;
    http_route_api(ns)
        .create(&Default::default(), &route)
        .await?;
    let template: AnalysisTemplate = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": template},
        "spec": {"metrics": [{"name": "errors", "successCondition": success_condition,
            "provider": {"prometheus": {"address": prometheus.url(), "query": "vector(0)"}}}]}}))?;
    ns.api::<AnalysisTemplate>()
        .create(&Default::default(), &template)
        .await?;
    Ok(())
}

/// The strategy of the Rollout `web`: a canary through the Gateway API router (route `web`)
/// with an analysis step running `template`.
fn routed_strategy(template: &str) -> Value {
    json!({"canary": {
        "canaryService": "web-canary", "stableService": "web-stable",
        "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}},
        "steps": [{"setWeight": 50},
                  {"analysis": {"templates": [{"templateName": template}]}}]}})
}

/// Sets the image of the Rollout `web` in `ns`.
async fn set_web_image(ns: &TestNamespace, image: &str) -> anyhow::Result<()> {
    ns.api::<Rollout>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": image}]}}}})),
        )
        .await?;
    Ok(())
}

/// Failed AnalysisRun → route back to stable, `count` times.
async fn abort_latency(cluster: &LocalCluster, count: usize) -> anyhow::Result<Vec<Duration>> {
    cluster
        .install_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/crds"))
        .await?;
    let prometheus = LocalPrometheus::start(&[]).await?;
    let ns = cluster.namespace("bench-abort").await?;
    let client = ns.client();
    routed_web(&ns, &prometheus, "always-failing", "result[0] == 1").await?;

    // Watches: when each run is first seen Failed; when the route's canary weight changes.
    let failed_at: Arc<Mutex<BTreeMap<String, Instant>>> = Arc::default();
    let weight_zero_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let runs = watcher(ns.api::<AnalysisRun>(), watcher::Config::default()).applied_objects();
    let failed = failed_at.clone();
    let run_watch = tokio::spawn(async move {
        let mut runs = std::pin::pin!(runs);
        while let Some(Ok(run)) = runs.next().await {
            let phase = run
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map(|p| p.as_str());
            if phase == Some("Failed") {
                let now = Instant::now();
                let mut failed = failed.lock().expect("lock");
                failed.entry(run.name_any()).or_insert(now);
            }
        }
    });
    let routes = watcher(http_route_api(&ns), watcher::Config::default()).applied_objects();
    let zeroes = weight_zero_at.clone();
    let route_watch = tokio::spawn(async move {
        let mut routes = std::pin::pin!(routes);
        let mut last = None;
        while let Some(Ok(route)) = routes.next().await {
            let now = Instant::now();
            let weight = route
                .data
                .pointer("/spec/rules/0/backendRefs/1/weight")
                .and_then(Value::as_i64);
            if weight == Some(0) && last.is_some_and(|w| w != 0) {
                zeroes.lock().expect("lock").push(now);
            }
            last = weight;
        }
    });

    let controller = InProcess::start(client.clone(), ns.name())?;
    ns.api::<Rollout>()
        .create(
            &Default::default(),
            &rollout("web", "example/web:0", routed_strategy("always-failing"))?,
        )
        .await?;
    wait_all_healthy(&ns, 1).await?;
    let mut latencies = Vec::with_capacity(count);
    for iteration in 1..=count {
        let before = weight_zero_at.lock().expect("lock").len();
        set_web_image(&ns, &format!("example/web:{iteration}")).await?;
        let started = Instant::now();
        let (run, route_zero) = loop {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "canary {iteration} was not aborted within a minute"
            );
            let run = failed_at
                .lock()
                .expect("lock")
                .values()
                .filter(|at| **at >= started)
                .min()
                .copied();
            let zero = weight_zero_at.lock().expect("lock").get(before).copied();
            if let (Some(run), Some(zero)) = (run, zero) {
                break (run, zero);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        latencies.push(route_zero.saturating_duration_since(run));
    }
    controller.stop().await?;
    run_watch.abort();
    route_watch.abort();
    Ok(latencies)
}

/// Every HTTP request the controller's client makes during `window` once `count` Rollouts
/// are Healthy, by method and path.
async fn steady_state_requests(
    cluster: &LocalCluster,
    count: usize,
    window: Duration,
) -> anyhow::Result<(u64, BTreeMap<String, u64>)> {
    let ns = cluster.namespace("bench-steady").await?;
    create_rollouts(&ns, count).await?;
    let total = Arc::new(AtomicU64::new(0));
    let by_path: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let (counter, paths) = (total.clone(), by_path.clone());
    let counting =
        tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            counter.fetch_add(1, Ordering::Relaxed);
            let key = format!("{} {}", request.method(), request.uri().path());
            *paths.lock().expect("lock").entry(key).or_default() += 1;
            request
        });
    let client = kube::client::ClientBuilder::try_from(cluster.config().clone())?
        .with_layer(&counting)
        .build();
    let controller = InProcess::start(client, ns.name())?;
    wait_all_healthy(&ns, count).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    // The counter sees every request: the lists, watches and writes that brought the Rollouts
    // to Healthy.
    println!(
        "\n(requests while {count} Rollouts became Healthy: {})",
        total.load(Ordering::Relaxed)
    );
    total.store(0, Ordering::Relaxed);
    by_path.lock().expect("lock").clear();
    tokio::time::sleep(window).await;
    let requests = total.load(Ordering::Relaxed);
    let paths = by_path.lock().expect("lock").clone();
    controller.stop().await?;
    Ok((requests, paths))
}

fn rss_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{field} of process {pid}"))
}

/// GETs `path` from 127.0.0.1:`port` (the controller's minimal HTTP server closes each
/// connection after its response); the status code and the body.
async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no HTTP status in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Waits until the controller's `/readyz` answers 200 (connected, every cache synced).
async fn wait_ready(port: u16) -> anyhow::Result<()> {
    let started = Instant::now();
    while !matches!(http_get(port, "/readyz").await, Ok((200, _))) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the controller was not ready within a minute"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The plugins the controller compiled so far (its `sluice_plugin_compilations_total`).
async fn compiled_plugins(metrics_port: u16) -> anyhow::Result<Vec<String>> {
    let (_, body) = http_get(metrics_port, "/metrics").await?;
    Ok(body
        .lines()
        .filter_map(|line| line.strip_prefix("sluice_plugin_compilations_total{plugin=\""))
        .filter_map(|rest| rest.split_once("\"}"))
        .filter(|(_, count)| count.trim() != "0")
        .map(|(plugin, _)| plugin.to_owned())
        .collect())
}

/// The memory of the `sluice controller` process at three points.
struct Memory {
    /// RSS once ready with no Rollouts (KiB).
    idle: u64,
    /// RSS after one routed canary with a Prometheus analysis (KiB).
    plugins_in_use: u64,
    /// The plugins compiled by then.
    compiled: Vec<String>,
    /// RSS with the Rollouts Healthy (KiB).
    loaded: u64,
    /// Peak RSS (KiB).
    peak: u64,
    /// How long the Rollouts took to become Healthy.
    took: Duration,
}

/// Measures the `sluice controller` process idle, after one canary through the Gateway API
/// router with a passing Prometheus analysis, and with `count` more Healthy Rollouts.
async fn controller_memory(cluster: &LocalCluster, count: usize) -> anyhow::Result<Memory> {
    let prometheus = LocalPrometheus::start(&[]).await?;
    let ns = cluster.namespace("bench-memory").await?;
    routed_web(&ns, &prometheus, "passing", "result[0] == 0").await?;
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
    };
    let (metrics_port, healthz_port) = (free_port()?, free_port()?);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["controller", "--namespaced", "--namespace", ns.name()])
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["--leader-elect=false", "--loglevel", "warn"])
        .args(["--metrics-port", &metrics_port.to_string()])
        .args(["--healthz-port", &healthz_port.to_string()])
        .stdout(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let measured = async {
        wait_ready(healthz_port).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = rss_kib(pid, "VmRSS:")?;

        ns.api::<Rollout>()
            .create(
                &Default::default(),
                &rollout("web", "example/web:0", routed_strategy("passing"))?,
            )
            .await?;
        wait_all_healthy(&ns, 1).await?;
        set_web_image(&ns, "example/web:1").await?;
        let started = Instant::now();
        while compiled_plugins(metrics_port).await?.len() < 2 {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "the canary did not use the router and the provider within 2 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        wait_all_healthy(&ns, 1).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let plugins_in_use = rss_kib(pid, "VmRSS:")?;
        let compiled = compiled_plugins(metrics_port).await?;

        create_rollouts(&ns, count).await?;
        let took = wait_all_healthy(&ns, count + 1).await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        anyhow::Ok(Memory {
            idle,
            plugins_in_use,
            compiled,
            loaded: rss_kib(pid, "VmRSS:")?,
            peak: rss_kib(pid, "VmHWM:")?,
            took,
        })
    }
    .await;
    child.kill().ok();
    child.wait().ok();
    measured
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cluster = LocalCluster::shared();
    runtime.block_on(async {
        let aborts = env_count("SLUICE_BENCH_ABORTS", 20).max(1);
        let mut latencies = abort_latency(cluster, aborts).await?;
        latencies.sort();
        println!("\n== abort: failed AnalysisRun visible → route canary weight 0 visible ({aborts} canaries) ==");
        println!(
            "p50 {:.1} ms   p90 {:.1} ms   max {:.1} ms",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.9)),
            ms(percentile(&latencies, 1.0)),
        );

        let steady = env_count("SLUICE_BENCH_STEADY", 100);
        let seconds = env_count("SLUICE_BENCH_STEADY_SECONDS", 60);
        let (requests, paths) =
            steady_state_requests(cluster, steady, Duration::from_secs(seconds as u64)).await?;
        println!("\n== steady state: {steady} Healthy Rollouts for {seconds} s ==");
        println!("API requests: {requests}");
        for (path, count) in paths {
            println!("  {count:>5}  {path}");
        }

        let rollouts = env_count("SLUICE_BENCH_ROLLOUTS", 1000);
        let memory = controller_memory(cluster, rollouts).await?;
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!("\n== sluice controller process memory ==");
        println!(
            "idle RSS (ready, default plugin config, no Rollouts): {:.1} MiB",
            mib(memory.idle)
        );
        println!(
            "after one routed canary with analysis (compiled: {}): RSS {:.1} MiB",
            memory.compiled.join(", "),
            mib(memory.plugins_in_use)
        );
        println!(
            "{rollouts} more Healthy Rollouts: RSS {:.1} MiB (peak {:.1} MiB); all Healthy after {:.0} s",
            mib(memory.loaded),
            mib(memory.peak),
            memory.took.as_secs_f64()
        );
        anyhow::Ok(())
    })
}
