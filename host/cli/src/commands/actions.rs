//! `promote`, `abort`, `retry`, `pause`, `restart` and `terminate`: merge patches, exactly Argo's.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{Patch, PatchParams};
use sluice_api::analysis::AnalysisRun;
use sluice_api::duration::parse_go_duration;
use sluice_api::experiment::Experiment;

use super::{apply_patches, rollouts};
use crate::kube_context::{ClusterArgs, connect};
use crate::lookup;
use crate::patches::{
    Patches, abort_patch, pause_patch, promote_patches, restart_patch, retry_experiment_patch,
    retry_rollout_patch, terminate_patch,
};

/// Arguments of `promote`.
#[derive(Args)]
pub struct PromoteArgs {
    /// The rollout.
    #[arg(value_name = "ROLLOUT")]
    name: String,
    /// Skip the remaining steps, pauses and analysis: go straight to the desired revision.
    #[arg(long)]
    full: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Promotes a rollout paused at a canary step or a blue-green pre-promotion pause (resuming a
/// user pause too), or fully promotes it with `--full`.
pub async fn promote(args: &PromoteArgs) -> anyhow::Result<ExitCode> {
    let (cluster, api) = rollouts(&args.cluster).await?;
    let rollout = lookup::get(&api, &cluster.namespace, &args.name).await?;
    let patches = promote_patches(&rollout, args.full);
    let name = &args.name;
    if patches.is_empty() {
        if args.full {
            println!(
                "rollout '{name}' is already fully promoted (its desired revision is the stable one); nothing sent"
            );
        } else {
            println!(
                "rollout '{name}' has nothing to promote (it is not paused and has no step to skip); nothing sent"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    apply_patches(&api, name, &patches).await?;
    if args.full {
        println!("rollout '{name}' fully promoted");
    } else {
        println!("rollout '{name}' promoted");
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of commands taking one or more rollout names.
#[derive(Args)]
pub struct RolloutNamesArgs {
    /// The rollouts.
    #[arg(value_name = "ROLLOUT", required = true)]
    names: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Sets `status.abort`: traffic and replicas go back to the stable revision.
pub async fn abort(args: &RolloutNamesArgs) -> anyhow::Result<ExitCode> {
    patch_rollouts(
        args,
        &Patches {
            spec: None,
            status: Some(abort_patch()),
        },
        "aborted",
    )
    .await
}

/// Sets `spec.paused`.
pub async fn pause(args: &RolloutNamesArgs) -> anyhow::Result<ExitCode> {
    patch_rollouts(
        args,
        &Patches {
            spec: Some(pause_patch()),
            status: None,
        },
        "paused",
    )
    .await
}

async fn patch_rollouts(
    args: &RolloutNamesArgs,
    patches: &Patches,
    done: &str,
) -> anyhow::Result<ExitCode> {
    let (cluster, api) = rollouts(&args.cluster).await?;
    for name in &args.names {
        lookup::get(&api, &cluster.namespace, name).await?;
        apply_patches(&api, name, patches).await?;
        println!("rollout '{name}' {done}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `retry`.
#[derive(Args)]
pub struct RetryArgs {
    #[command(subcommand)]
    target: RetryTarget,
}

#[derive(Subcommand)]
enum RetryTarget {
    /// Retry an aborted rollout: clears `status.abort`, and the controller restarts the steps.
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(RolloutNamesArgs),
    /// Retry a failed experiment: clears its status, and the controller runs it again.
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(ExperimentNamesArgs),
}

/// Arguments of commands taking one or more experiment names.
#[derive(Args)]
pub struct ExperimentNamesArgs {
    /// The experiments.
    #[arg(value_name = "EXPERIMENT", required = true)]
    names: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `retry rollout` or `retry experiment`.
pub async fn retry(args: &RetryArgs) -> anyhow::Result<ExitCode> {
    match &args.target {
        RetryTarget::Rollout(args) => {
            let patches = Patches {
                spec: None,
                status: Some(retry_rollout_patch()),
            };
            patch_rollouts(args, &patches, "retried").await
        }
        RetryTarget::Experiment(args) => {
            let cluster = connect(&args.cluster).await?;
            let api: Api<Experiment> = Api::namespaced(cluster.client, &cluster.namespace);
            for name in &args.names {
                lookup::get(&api, &cluster.namespace, name).await?;
                api.patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(retry_experiment_patch()),
                )
                .await?;
                println!("experiment '{name}' retried");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Arguments of `restart`.
#[derive(Args)]
pub struct RestartArgs {
    /// The rollout.
    #[arg(value_name = "ROLLOUT")]
    name: String,
    /// Restart after this long (a Go duration: `30s`, `5m`, `1h`).
    #[arg(short = 'i', long = "in", value_name = "DURATION")]
    delay: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Sets `spec.restartAt` to now plus the delay: the controller then replaces every pod created
/// before that time.
pub async fn restart(args: &RestartArgs) -> anyhow::Result<ExitCode> {
    let delay_text = args.delay.as_deref().unwrap_or("0s");
    let delay = parse_go_duration(delay_text).with_context(|| {
        format!("--in {delay_text:?}: expected a duration such as 30s, 5m or 1h")
    })?;
    let delay = SignedDuration::try_from(delay).context("--in is too long")?;
    let restart_at = Timestamp::now()
        .checked_add(delay)
        .context("--in is too long")?;
    let (cluster, api) = rollouts(&args.cluster).await?;
    lookup::get(&api, &cluster.namespace, &args.name).await?;
    let patches = Patches {
        spec: Some(restart_patch(restart_at)),
        status: None,
    };
    apply_patches(&api, &args.name, &patches).await?;
    println!("rollout '{}' restarts in {delay_text}", args.name);
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `terminate`.
#[derive(Args)]
pub struct TerminateArgs {
    #[command(subcommand)]
    target: TerminateTarget,
}

#[derive(Subcommand)]
enum TerminateTarget {
    /// Stop an AnalysisRun: it takes no more measurements and completes.
    #[command(visible_aliases = ["ar", "analysisruns"])]
    Analysisrun(AnalysisRunNamesArgs),
    /// Stop an Experiment.
    #[command(visible_aliases = ["exp", "experiments"])]
    Experiment(ExperimentNamesArgs),
}

/// Arguments of commands taking one or more AnalysisRun names.
#[derive(Args)]
pub struct AnalysisRunNamesArgs {
    /// The AnalysisRuns.
    #[arg(value_name = "ANALYSISRUN", required = true)]
    names: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `terminate analysisrun` or `terminate experiment`: sets `spec.terminate`.
pub async fn terminate(args: &TerminateArgs) -> anyhow::Result<ExitCode> {
    let params = PatchParams::default();
    let patch = Patch::Merge(terminate_patch());
    match &args.target {
        TerminateTarget::Analysisrun(args) => {
            let cluster = connect(&args.cluster).await?;
            let api: Api<AnalysisRun> = Api::namespaced(cluster.client, &cluster.namespace);
            for name in &args.names {
                lookup::get(&api, &cluster.namespace, name).await?;
                api.patch(name, &params, &patch).await?;
                println!("analysisRun '{name}' terminated");
            }
        }
        TerminateTarget::Experiment(args) => {
            let cluster = connect(&args.cluster).await?;
            let api: Api<Experiment> = Api::namespaced(cluster.client, &cluster.namespace);
            for name in &args.names {
                lookup::get(&api, &cluster.namespace, name).await?;
                api.patch(name, &params, &patch).await?;
                println!("experiment '{name}' terminated");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
