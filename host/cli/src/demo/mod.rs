//! `sluice demo`: a guided canary release on a local control plane, in about a minute.
//!
//! It prepares what is missing (the cached control plane, Prometheus), starts a local
//! kube-apiserver with a simulated kubelet, a Prometheus scraping the demo app's simulated
//! traffic, and the controller in this process; deploys a Rollout routed through the Gateway API
//! plugin with a Prometheus analysis step; then updates it to a good version (promoted to Healthy)
//! and to a bad one (aborted automatically, traffic back to stable), showing the `get rollout`
//! tree as it goes. Ctrl-C stops everything it started, at any point.

mod app;
mod prepare;
mod traffic;
mod view;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::{Client, ResourceExt};
use sluice_api::analysis::AnalysisRun;
use sluice_api::labels::POD_TEMPLATE_HASH;
use sluice_api::rollout::{Rollout, RolloutPhase};
use sluice_controller::{ControllerOptions, SluiceController};
use sluice_localcluster::{KubeletConfig, LocalCluster, LocalPrometheus, MetricsExporter, Options};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::commands::get::read_objects;
use crate::commands::output_style;
use crate::commands::set_image::update_image;
use crate::kube_context::Cluster;
use crate::rollout_info::{rollout_phase, set_weight, step_text};
use crate::text::Style;
use crate::tree::{RolloutObjects, render_rollout};
use app::{CONTAINER, NAMESPACE, ROLLOUT};
use traffic::{RouteWeights, Traffic, route_weights};
use view::View;

/// How long each phase of the walkthrough may take before the demo gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the tree is refreshed.
const REFRESH: Duration = Duration::from_millis(250);
/// How long the tree keeps updating after an outcome, to show the old ReplicaSet scale down.
const LINGER: Duration = Duration::from_secs(4);

/// Arguments of `demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Plain output: no screen redraws, no colours (for CI and scripts). Nothing is ever asked.
    #[arg(long, visible_alias = "yes")]
    non_interactive: bool,
    /// Leave the control plane, Prometheus and the controller running after the walkthrough,
    /// until Ctrl-C, to explore with `sluice get rollout demo -w` and friends.
    #[arg(long)]
    keep: bool,
}

/// Runs the demo; Ctrl-C or SIGTERM stops it and everything it started.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    if std::env::var_os("RUST_LOG").is_some() {
        let _already = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let interactive = !args.non_interactive && std::io::stdout().is_terminal();
    let style = if interactive {
        output_style(false)
    } else {
        Style::Plain
    };
    let walkthrough_done = AtomicBool::new(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = demo(args, View::new(interactive, style), &walkthrough_done) => Some(result),
            () = stop_signal() => None,
        }
        // Leaving the block dropped the demo: the controller, Prometheus and the control plane
        // are stopped and their directories removed.
    });
    drop(runtime);
    match outcome {
        Some(result) => {
            result?;
            println!("Stopped the controller, Prometheus and the local control plane.");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!(
                "\nStopped the controller, Prometheus and the local control plane; nothing is left running."
            );
            Ok(if walkthrough_done.load(Ordering::Acquire) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(130)
            })
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

async fn demo(
    args: &DemoArgs,
    mut view: View,
    walkthrough_done: &AtomicBool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    view.say(
        "Sluice demo: a canary release through the Gateway API, gated by a Prometheus analysis",
    );
    let binaries = prepare::control_plane(&mut view).await?;
    prepare::prometheus(&mut view).await?;

    view.say(
        "Starting a local Kubernetes control plane on 127.0.0.1 (etcd, kube-apiserver, \
kube-controller-manager) with a simulated kubelet that runs the demo's Pods",
    );
    let cluster = LocalCluster::start_with(Options {
        crd_dirs: Vec::new(),
        kubelet: Some(KubeletConfig {
            ready_delay: Duration::from_millis(500),
            ..KubeletConfig::default()
        }),
        binaries: Some(binaries),
        ..Options::default()
    })
    .await
    .context("starting the local control plane")?;
    let client = cluster.client()?;
    app::install_crds(&cluster).await?;

    view.say(
        "Starting the demo app's metrics endpoint and a Prometheus that scrapes it every second",
    );
    let exporter = Arc::new(MetricsExporter::start().await?);
    let prometheus = LocalPrometheus::start(&[exporter.address()])
        .await
        .context("starting Prometheus")?;

    view.say(
        "Starting the Sluice controller in this process, with the built-in Gateway API router and \
Prometheus provider (sandboxed WebAssembly plugins)",
    );
    let controller = RunningController::start(client.clone())?;
    controller.wait_ready().await?;

    view.say(format!(
        "Deploying the demo app v1: Rollout `{ROLLOUT}` (4 replicas; steps: 20% → pause 2s → \
analysis → 60% → pause 2s → 100%) routed by HTTPRoute `{}` between Services `{}` and `{}`, and \
AnalysisTemplate `{}` (Prometheus: share of HTTP 5xx of the canary ≤ {}%)",
        app::ROUTE,
        app::STABLE_SERVICE,
        app::CANARY_SERVICE,
        app::TEMPLATE,
        app::MAX_ERROR_RATIO * 100.0
    ));
    app::deploy(&client, &prometheus.url(), "v1").await?;
    let _traffic = Traffic::start(client.clone(), exporter.clone());
    view.say(format!(
        "Simulated traffic: 400 requests/s split by the HTTPRoute's weights; v1 and v2 answer {}% \
with HTTP 500, v3 answers {}% with HTTP 500. Only Prometheus tells the controller.",
        traffic::GOOD_ERROR_RATIO * 100.0,
        traffic::BAD_ERROR_RATIO * 100.0
    ));
    let watch = Watch {
        cluster: Cluster {
            client: client.clone(),
            namespace: NAMESPACE.to_owned(),
        },
        prometheus: &prometheus,
        style: view.style(),
    };
    let mut summary = Vec::new();

    let clock = Instant::now();
    let v1 = watch
        .follow(&mut view, Goal::Promoted { from: None })
        .await?;
    summary.push(format!(
        "v1  first deployment, straight to 100% (no canary without a stable version)   Healthy after {:.1}s",
        clock.elapsed().as_secs_f64()
    ));
    view.finish_live();
    view.say(format!(
        "v1 is Healthy: 4 Pods of ReplicaSet {ROLLOUT}-{} serve all traffic",
        v1.stable
    ));

    view.say("(a) Updating to v2, a good version: `sluice set image demo app=…:v2`");
    set_version(&client, "v2").await?;
    let clock = Instant::now();
    let v2 = watch
        .follow(
            &mut view,
            Goal::Promoted {
                from: Some(v1.stable.clone()),
            },
        )
        .await?;
    watch.linger(&mut view).await;
    view.finish_live();
    let analysis = describe_run(v2.run.as_ref());
    view.say(format!(
        "v2: Healthy — canary 20% → {analysis} → 60% → 100%; ReplicaSet {ROLLOUT}-{} is stable",
        v2.stable
    ));
    summary.push(format!(
        "v2  canary 20% → {analysis} → 60% → 100%   Healthy after {:.1}s",
        clock.elapsed().as_secs_f64()
    ));

    view.say("(b) Updating to v3, a bad version: `sluice set image demo app=…:v3`");
    set_version(&client, "v3").await?;
    let clock = Instant::now();
    let v3 = watch
        .follow(
            &mut view,
            Goal::Aborted {
                stable: v2.stable.clone(),
            },
        )
        .await?;
    let aborted_after = clock.elapsed().as_secs_f64();
    watch.linger(&mut view).await;
    view.finish_live();
    let analysis = describe_run(v3.run.as_ref());
    view.say(format!(
        "v3: aborted automatically — {analysis}; traffic back to stable: HTTPRoute `{}` weights \
{} {}, {} {}; v2 keeps serving",
        app::ROUTE,
        app::STABLE_SERVICE,
        v3.weights.stable,
        app::CANARY_SERVICE,
        v3.weights.canary
    ));
    view.say(format!("Rollout message: {}", v3.message));
    summary.push(format!(
        "v3  canary 20% → {analysis} → aborted, all traffic back to v2   after {aborted_after:.1}s"
    ));

    println!("\nWhat happened");
    for line in &summary {
        println!("  {line}");
    }
    println!("Demo finished in {}s.", started.elapsed().as_secs());
    walkthrough_done.store(true, Ordering::Release);

    let sluice = std::env::current_exe()
        .map_or_else(|_| "sluice".to_owned(), |path| path.display().to_string());
    let kubeconfig = cluster.kubeconfig_path().display().to_string();
    if args.keep {
        let query = format!(
            "sum by (version) (rate(http_requests_total{{code=\"500\"}}[{}]))",
            app::RATE_WINDOW
        );
        let commands = [
            (format!("export KUBECONFIG={kubeconfig}"), ""),
            (
                format!("{sluice} get rollout {ROLLOUT} -w"),
                "the live tree",
            ),
            (
                format!("{sluice} retry rollout {ROLLOUT}"),
                "try v3 again (it is aborted again)",
            ),
            (
                format!(
                    "{sluice} set image {ROLLOUT} {CONTAINER}={}",
                    app::image("v4")
                ),
                "every version but v3 is good",
            ),
            (
                format!("kubectl get httproute {} -o yaml", app::ROUTE),
                "the weights the router wrote",
            ),
        ];
        let width = commands
            .iter()
            .map(|(command, _)| command.len())
            .max()
            .unwrap_or(0);
        println!("\nEverything keeps running until Ctrl-C. Explore from another terminal:");
        for (command, comment) in &commands {
            if comment.is_empty() {
                println!("  {command}");
            } else {
                println!("  {command:<width$}   # {comment}");
            }
        }
        println!(
            "Prometheus: {}/graph?g0.expr={}",
            prometheus.url(),
            percent_encode(&query)
        );
        std::future::pending::<()>().await;
    } else {
        println!(
            "\nRun `{sluice} demo --keep` to leave it all running and explore, for example with \
`KUBECONFIG=<the demo's kubeconfig> {sluice} get rollout {ROLLOUT} -w`."
        );
    }
    controller.stop().await;
    Ok(())
}

/// Sets the demo app's version with the same update `sluice set image` sends.
async fn set_version(client: &Client, version: &str) -> anyhow::Result<()> {
    let rollouts: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &ApiResource::erase::<Rollout>(&()),
    );
    update_image(&rollouts, ROLLOUT, CONTAINER, &app::image(version)).await
}

/// Encodes a query for a URL.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The controller running in a task of the demo's runtime; aborted if dropped.
struct RunningController {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<sluice_controller::Result<()>>,
    ready: Arc<AtomicBool>,
}

impl RunningController {
    fn start(client: Client) -> anyhow::Result<Self> {
        // The built-ins with their default grants, no ConfigMap: the Prometheus provider may
        // reach the address each metric names (`httpFromConfig`).
        let options = ControllerOptions {
            builtins: sluice_builtins::components(),
            default_plugins: sluice_builtins::default_plugin_config(),
            ..ControllerOptions::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let controller = SluiceController::new(client, options, &mut registry)?;
        let ready = controller.readiness();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller.run(async {
            stopped.await.ok();
        }));
        Ok(Self {
            stop: Some(stop),
            task,
            ready,
        })
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        while !self.ready.load(Ordering::Acquire) {
            anyhow::ensure!(
                !self.task.is_finished(),
                "the controller stopped while starting"
            );
            anyhow::ensure!(
                Instant::now() < deadline,
                "the controller's caches did not sync within {PHASE_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Stops the controller gracefully (in-flight reconciles finish).
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        // Drop aborts whatever has not finished in time.
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a phase of the walkthrough waits for.
enum Goal {
    /// A new revision fully promoted: Healthy, stable on the current pod-template hash, which
    /// differs from `from`.
    Promoted { from: Option<String> },
    /// The update aborted: Degraded with `status.abort`, the route all on `stable`.
    Aborted { stable: String },
}

/// How a phase ended.
struct Outcome {
    /// The stable pod-template hash.
    stable: String,
    /// The newest AnalysisRun of the current revision.
    run: Option<AnalysisRun>,
    /// The route's weights.
    weights: RouteWeights,
    /// The rollout's phase message.
    message: String,
}

/// Follows the rollout, showing its tree.
struct Watch<'a> {
    cluster: Cluster,
    prometheus: &'a LocalPrometheus,
    style: Style,
}

impl Watch<'_> {
    /// Shows the tree until `goal` is reached; fails when the rollout ends the other way or
    /// [`PHASE_TIMEOUT`] passes.
    async fn follow(&self, view: &mut View, goal: Goal) -> anyhow::Result<Outcome> {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        loop {
            let (objects, weights) = self.show(view).await?;
            let rollout = &objects.rollout;
            let status = rollout.status.clone().unwrap_or_default();
            let (phase, message) = rollout_phase(rollout);
            let fully_promoted =
                status.stable_rs.is_some() && status.stable_rs == status.current_pod_hash;
            let outcome = || Outcome {
                stable: status.stable_rs.clone().unwrap_or_default(),
                run: newest_run(&objects, status.current_pod_hash.as_deref()),
                weights,
                message: message.clone(),
            };
            match &goal {
                Goal::Promoted { from } => {
                    if phase == RolloutPhase::Healthy && fully_promoted && status.stable_rs != *from
                    {
                        return Ok(outcome());
                    }
                    anyhow::ensure!(
                        phase != RolloutPhase::Degraded,
                        "the rollout is Degraded instead of promoted: {message}"
                    );
                }
                Goal::Aborted { stable } => {
                    if status.abort
                        && phase == RolloutPhase::Degraded
                        && weights.canary == 0
                        && status.stable_rs.as_ref() == Some(stable)
                    {
                        return Ok(outcome());
                    }
                    anyhow::ensure!(
                        !(fully_promoted && status.stable_rs.as_ref() != Some(stable)),
                        "the bad version was promoted instead of aborted"
                    );
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the rollout did not finish within {PHASE_TIMEOUT:?} (phase {}: {message})",
                phase.as_str()
            );
            tokio::time::sleep(REFRESH).await;
        }
    }

    /// Keeps the tree updating for a moment (the previous ReplicaSet scaling down).
    async fn linger(&self, view: &mut View) {
        let until = Instant::now() + LINGER;
        while Instant::now() < until {
            // Only for the show: a failed refresh changes nothing.
            let _ = self.show(view).await;
            tokio::time::sleep(REFRESH).await;
        }
    }

    /// Reads everything the tree shows, and shows it.
    async fn show(&self, view: &mut View) -> anyhow::Result<(RolloutObjects, RouteWeights)> {
        let rollout = Api::<Rollout>::namespaced(self.cluster.client.clone(), NAMESPACE)
            .get(ROLLOUT)
            .await?;
        let objects = read_objects(&self.cluster, rollout).await?;
        let weights = route_weights(&self.cluster.client).await?;
        let rates = self.error_rates().await;
        let mut tree = render_rollout(&objects, Timestamp::now(), self.style);
        tree.push_str(&format!(
            "\nHTTPRoute {}: {} weight {}, {} weight {}\n",
            app::ROUTE,
            app::STABLE_SERVICE,
            weights.stable,
            app::CANARY_SERVICE,
            weights.canary
        ));
        if !rates.is_empty() {
            tree.push_str(&format!(
                "HTTP 5xx share by version (Prometheus, last {}): {}\n",
                app::RATE_WINDOW,
                rates.join(", ")
            ));
        }
        let runs: Vec<String> = objects
            .analysis_runs
            .iter()
            .map(|run| {
                let phase = run.status.as_ref().and_then(|status| status.phase);
                format!("{}={phase:?}", run.name_any())
            })
            .collect();
        let replicas: Vec<String> = objects
            .replica_sets
            .iter()
            .map(|set| {
                let replicas = set.spec.as_ref().and_then(|spec| spec.replicas);
                format!("{}={replicas:?}", set.name_any())
            })
            .collect();
        let milestone = format!(
            "{:?}|{}|{}|{}/{}|{}|{}",
            rollout_phase(&objects.rollout).0,
            step_text(&objects.rollout).unwrap_or_default(),
            set_weight(&objects.rollout),
            weights.stable,
            weights.canary,
            runs.join(","),
            replicas.join(",")
        );
        view.tree(tree, milestone);
        Ok((objects, weights))
    }

    /// The HTTP 5xx share of each version that served requests lately, as Prometheus computes it.
    async fn error_rates(&self) -> Vec<String> {
        let series = format!("http_requests_total{{service=\"{ROLLOUT}\"");
        let query = format!(
            "sum by (version) (rate({series},code=~\"5..\"}}[{w}])) / sum by (version) (rate({series}}}[{w}]))",
            w = app::RATE_WINDOW
        );
        let Ok(response) = self.prometheus.query(&query).await else {
            return Vec::new();
        };
        let mut rates: Vec<(String, f64)> = response["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|sample| {
                let version = sample["metric"]["version"].as_str()?.to_owned();
                let value: f64 = sample["value"][1].as_str()?.parse().ok()?;
                value.is_finite().then_some((version, value))
            })
            .collect();
        rates.sort_by(|a, b| a.0.cmp(&b.0));
        rates
            .into_iter()
            .map(|(version, value)| format!("{version} {:.1}%", value * 100.0))
            .collect()
    }
}

/// The newest AnalysisRun of the revision with pod-template hash `hash`.
fn newest_run(objects: &RolloutObjects, hash: Option<&str>) -> Option<AnalysisRun> {
    objects
        .analysis_runs
        .iter()
        .filter(|run| run.labels().get(POD_TEMPLATE_HASH).map(String::as_str) == hash)
        .max_by_key(|run| run.metadata.creation_timestamp.clone())
        .cloned()
}

/// `analysis <run> Successful (5xx share 0.5%, 0.5%, 0.5% ≤ 5%)`.
fn describe_run(run: Option<&AnalysisRun>) -> String {
    let Some(run) = run else {
        return "no analysis run".to_owned();
    };
    let status = run.status.clone().unwrap_or_default();
    let phase = status.phase.map_or("Pending", |phase| phase.as_str());
    let values: Vec<String> = status
        .metric_results
        .iter()
        .flat_map(|result| &result.measurements)
        .filter_map(|measurement| measurement.value.as_deref())
        .map(|value| {
            value
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .next()
                .and_then(|first| first.trim().parse::<f64>().ok())
                .map_or_else(
                    || value.to_owned(),
                    |ratio| format!("{:.1}%", ratio * 100.0),
                )
        })
        .collect();
    format!(
        "analysis {} {phase} (5xx share measured by Prometheus: {}; limit {}%)",
        run.name_any(),
        values.join(", "),
        app::MAX_ERROR_RATIO * 100.0
    )
}
