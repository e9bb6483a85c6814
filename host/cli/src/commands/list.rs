//! `list rollouts [-A]`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use kube::Api;
use sluice_api::rollout::Rollout;

use crate::kube_context::{ClusterArgs, connect};
use crate::list_view::render_rollout_list;
use crate::lookup;

/// Arguments of `list`.
#[derive(Args)]
pub struct ListArgs {
    #[command(subcommand)]
    target: ListTarget,
}

#[derive(Subcommand)]
enum ListTarget {
    /// List rollouts with their strategy, status, step, weight and replica counts.
    #[command(visible_aliases = ["rollout", "ro"])]
    Rollouts(ListRolloutsArgs),
}

/// Arguments of `list rollouts`.
#[derive(Args)]
pub struct ListRolloutsArgs {
    /// List the rollouts of every namespace (adds a NAMESPACE column).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Prints the table, or says there is no rollout (on standard error, as kubectl does).
pub async fn run(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let ListTarget::Rollouts(args) = &args.target;
    let cluster = connect(&args.cluster).await?;
    let api: Api<Rollout> = if args.all_namespaces {
        Api::all(cluster.client.clone())
    } else {
        Api::namespaced(cluster.client.clone(), &cluster.namespace)
    };
    let rollouts = lookup::list(&api).await?;
    if rollouts.is_empty() {
        if args.all_namespaces {
            eprintln!("No rollouts found.");
        } else {
            eprintln!("No rollouts found in namespace \"{}\".", cluster.namespace);
        }
    } else {
        print!("{}", render_rollout_list(&rollouts, args.all_namespaces));
    }
    Ok(ExitCode::SUCCESS)
}
