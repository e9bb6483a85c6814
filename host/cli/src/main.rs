//! `sluice`: the command line of the Sluice progressive-delivery controller.

mod crds;
mod lint;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice runs canary and blue-green releases on Kubernetes, with metric-gated promotion and
/// automatic rollback. It serves Argo Rollouts' API (argoproj.io/v1alpha1), so existing Rollout,
/// AnalysisTemplate and Experiment manifests work unchanged.
#[derive(Parser)]
#[command(name = "sluice", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun and Experiment
    /// manifests without a cluster.
    ///
    /// Prints one line per problem as `FILE: Kind/name: field.path: message` and exits 1 when
    /// there is any; exits 0 when every file is valid. Other kinds (Services, Ingresses, ...) in
    /// the same files are accepted as they are.
    Lint(lint::LintArgs),
    /// Print the CustomResourceDefinitions Sluice serves (or write them to a directory).
    ///
    /// `kubectl apply -f` the output to install the API into a cluster:
    /// `sluice crds | kubectl apply --server-side -f -`.
    Crds(crds::CrdsArgs),
    /// Print the version of Sluice and of the APIs it serves.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lint(args) => lint::run(&args),
        Command::Crds(args) => crds::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Version => {
            println!("sluice {}", env!("CARGO_PKG_VERSION"));
            println!("api: {}", sluice_api::API_VERSION);
            Ok(ExitCode::SUCCESS)
        }
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::from(2)
    })
}
