//! `get rollout NAME [-w]` and `get experiment NAME [-w]`: the tree of a rollout or an
//! experiment, once or re-rendered on every change.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use sluice_api::analysis::AnalysisRun;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::Rollout;

use super::{output_style, rollouts};
use crate::kube_context::{Cluster, ClusterArgs};
use crate::lookup;
use crate::tree::{RolloutObjects, render_experiment, render_rollout};

/// Arguments of `get`.
#[derive(Args)]
pub struct GetArgs {
    #[command(subcommand)]
    target: GetTarget,
}

#[derive(Subcommand)]
enum GetTarget {
    /// Show a rollout: status, step, weights, images, replicas, and the tree revision →
    /// ReplicaSets → Pods, with its Experiments and AnalysisRuns.
    ///
    /// Icons: ⟳ Rollout, Σ Experiment, α AnalysisRun, ⊙ metric, # revision, ⧉ ReplicaSet, □ Pod,
    /// ⊞ Job.
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(GetRolloutArgs),
    /// Show an experiment: status, message, and the tree Experiment → ReplicaSets → Pods, with
    /// its AnalysisRuns.
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(GetExperimentArgs),
}

/// Arguments of `get experiment`.
#[derive(Args)]
pub struct GetExperimentArgs {
    /// The experiment.
    #[arg(value_name = "EXPERIMENT")]
    name: String,
    #[command(flatten)]
    tree: TreeArgs,
}

/// Arguments of `get rollout`.
#[derive(Args)]
pub struct GetRolloutArgs {
    /// The rollout.
    #[arg(value_name = "ROLLOUT")]
    name: String,
    #[command(flatten)]
    tree: TreeArgs,
}

/// How a tree is shown, for `get rollout` and `get experiment`.
#[derive(Args)]
struct TreeArgs {
    /// Re-render on every change until Ctrl-C.
    #[arg(short = 'w', long)]
    watch: bool,
    /// Never colour the output (it is coloured only on a terminal anyway).
    #[arg(long)]
    no_color: bool,
    /// With --watch, stop after this many seconds (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    timeout_seconds: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Prints the tree, or keeps re-printing it with `--watch`.
pub async fn run(args: &GetArgs) -> anyhow::Result<ExitCode> {
    match &args.target {
        GetTarget::Rollout(args) => get_rollout(args).await,
        GetTarget::Experiment(args) => get_experiment(args).await,
    }
}

async fn get_rollout(args: &GetRolloutArgs) -> anyhow::Result<ExitCode> {
    let style = output_style(args.tree.no_color);
    let (cluster, api) = rollouts(&args.tree.cluster).await?;
    let rollout = lookup::get(&api, &cluster.namespace, &args.name).await?;
    if !args.tree.watch {
        let objects = read_objects(&cluster, rollout).await?;
        print!("{}", render_rollout(&objects, Timestamp::now(), style));
        return Ok(ExitCode::SUCCESS);
    }
    let watching = watch(&cluster, &args.name, true, |rollout, objects| {
        let objects = RolloutObjects { rollout, ..objects };
        render_rollout(&objects, Timestamp::now(), style)
    });
    until_stopped(watching, args.tree.timeout_seconds).await
}

async fn get_experiment(args: &GetExperimentArgs) -> anyhow::Result<ExitCode> {
    let style = output_style(args.tree.no_color);
    let (cluster, _) = rollouts(&args.tree.cluster).await?;
    let api: Api<Experiment> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let experiment = lookup::get(&api, &cluster.namespace, &args.name).await?;
    let render = |experiment: Experiment, objects: RolloutObjects| {
        render_experiment(&experiment, &objects, Timestamp::now(), style)
    };
    if !args.tree.watch {
        let objects = RolloutObjects {
            rollout: Rollout::default(),
            replica_sets: list_all(&cluster).await?,
            pods: list_all(&cluster).await?,
            analysis_runs: list_all(&cluster).await?,
            experiments: Vec::new(),
        };
        print!("{}", render(experiment, objects));
        return Ok(ExitCode::SUCCESS);
    }
    until_stopped(
        watch(&cluster, &args.name, false, render),
        args.tree.timeout_seconds,
    )
    .await
}

/// Runs `watching` until it fails, Ctrl-C, or `timeout_seconds` (0: never).
async fn until_stopped(
    watching: impl Future<Output = anyhow::Result<()>>,
    timeout_seconds: u64,
) -> anyhow::Result<ExitCode> {
    let stop = tokio::signal::ctrl_c().map(|_| ());
    tokio::select! {
        result = watching => result?,
        () = stop => {}
        () = sleep_or_forever(timeout_seconds) => {}
    }
    Ok(ExitCode::SUCCESS)
}

async fn sleep_or_forever(seconds: u64) {
    if seconds == 0 {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }
}

async fn list_all<K>(cluster: &Cluster) -> anyhow::Result<Vec<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    api.list(&ListParams::default())
        .await
        .map(|list| list.items)
        .with_context(|| format!("listing {}s", K::kind(&())))
}

/// Reads the rollout's ReplicaSets, Pods, AnalysisRuns and Experiments (every one of its
/// namespace; the renderer picks the owned ones).
pub(crate) async fn read_objects(
    cluster: &Cluster,
    rollout: Rollout,
) -> anyhow::Result<RolloutObjects> {
    Ok(RolloutObjects {
        rollout,
        replica_sets: list_all(cluster).await?,
        pods: list_all(cluster).await?,
        analysis_runs: list_all(cluster).await?,
        experiments: list_all(cluster).await?,
    })
}

/// A reflector over one kind in the namespace, and its stream of changes.
fn reflect<K>(
    cluster: &Cluster,
    config: watcher::Config,
) -> (Store<K>, BoxStream<'static, anyhow::Result<()>>)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let (store, writer) = reflector::store();
    let changes = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .map_ok(|_| ())
        .map_err(|error| anyhow::Error::new(error).context(format!("watching {}s", K::kind(&()))))
        .boxed();
    (store, changes)
}

fn snapshot<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .iter()
        .map(|object| (**object).clone())
        .collect()
}

/// Watches the object `name` (a Rollout or an Experiment) and the ReplicaSets, Pods,
/// AnalysisRuns and, with `experiments`, Experiments of its namespace, re-rendering its tree
/// with `render` after every batch of changes. `render` gets the object and the other objects
/// (`rollout` left default).
async fn watch<K>(
    cluster: &Cluster,
    name: &str,
    experiments: bool,
    render: impl Fn(K, RolloutObjects) -> String,
) -> anyhow::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let (roots, root_changes) = reflect::<K>(cluster, by_name);
    let (replica_sets, rs_changes) = reflect::<ReplicaSet>(cluster, watcher::Config::default());
    let (pods, pod_changes) = reflect::<Pod>(cluster, watcher::Config::default());
    let (runs, run_changes) = reflect::<AnalysisRun>(cluster, watcher::Config::default());
    let (experiment_store, experiment_changes) = experiments
        .then(|| reflect::<Experiment>(cluster, watcher::Config::default()))
        .unzip();
    let mut streams = vec![root_changes, rs_changes, pod_changes, run_changes];
    streams.extend(experiment_changes);
    let mut stores = vec![
        roots.wait_until_ready().boxed(),
        replica_sets.wait_until_ready().boxed(),
        pods.wait_until_ready().boxed(),
        runs.wait_until_ready().boxed(),
    ];
    stores.extend(
        experiment_store
            .as_ref()
            .map(|store| store.wait_until_ready().boxed()),
    );
    let mut changes = stream::select_all(streams);
    for store in stores {
        // The stores fill while the change stream is polled.
        let mut store = store;
        loop {
            tokio::select! {
                ready = &mut store => { ready.context("the watch ended")?; break; }
                change = changes.next() => { change.context("the watch ended")??; }
            }
        }
    }
    let clear = std::io::stdout().is_terminal();
    let mut first = true;
    loop {
        let Some(root) = snapshot(&roots).into_iter().next() else {
            anyhow::bail!("{} \"{name}\" was deleted", K::kind(&()).to_lowercase());
        };
        let objects = RolloutObjects {
            rollout: Rollout::default(),
            replica_sets: snapshot(&replica_sets),
            pods: snapshot(&pods),
            analysis_runs: snapshot(&runs),
            experiments: experiment_store.as_ref().map(snapshot).unwrap_or_default(),
        };
        let mut out = std::io::stdout().lock();
        if clear {
            write!(out, "\x1b[H\x1b[2J")?;
        } else if !first {
            writeln!(out)?;
        }
        write!(out, "{}", render(root, objects))?;
        out.flush()?;
        drop(out);
        first = false;
        // Wait for a change, then take every change already queued before rendering again.
        changes.next().await.context("the watch ended")??;
        while let Some(Some(change)) = changes.next().now_or_never() {
            change?;
        }
    }
}
