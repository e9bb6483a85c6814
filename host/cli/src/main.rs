//! `sluice`: the command line of the Sluice progressive-delivery controller.
//!
//! Installed as `kubectl-sluice` (the same binary under that name) it is the kubectl plugin
//! `kubectl sluice`, and its help says so.

mod commands;
mod controller;
mod crds;
mod demo;
#[cfg(test)]
mod fixtures;
mod kube_context;
mod lint;
mod list_view;
mod lookup;
mod patches;
mod plugin;
mod rollout_info;
mod text;
mod tree;

use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use commands::{actions, get, list, set_image, status, undo};

/// Sluice runs canary and blue-green releases on Kubernetes, with metric-gated promotion and
/// automatic rollback. It serves Argo Rollouts' API (argoproj.io/v1alpha1), so existing Rollout,
/// AnalysisTemplate and Experiment manifests work unchanged, and its commands are those of
/// `kubectl argo rollouts`.
#[derive(Parser)]
#[command(name = "sluice", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller: reconcile Rollouts and AnalysisRuns until SIGTERM or Ctrl-C.
    Controller(controller::ControllerArgs),
    /// Show a rollout as a tree of revisions, ReplicaSets, Pods, Experiments and AnalysisRuns.
    Get(get::GetArgs),
    /// List rollouts.
    List(list::ListArgs),
    /// Print a rollout's status; wait until it is Healthy or Degraded (for CI).
    Status(status::StatusArgs),
    /// Promote a rollout paused at a step (or by the user); `--full` skips all remaining steps.
    Promote(actions::PromoteArgs),
    /// Abort a rollout: traffic and replicas go back to the stable revision.
    Abort(actions::RolloutNamesArgs),
    /// Retry an aborted rollout or a failed experiment.
    Retry(actions::RetryArgs),
    /// Pause a rollout (`promote` resumes it).
    Pause(actions::RolloutNamesArgs),
    /// Restart the pods of a rollout, now or after a delay.
    Restart(actions::RestartArgs),
    /// Roll back to the previous revision's pod template (or `--to-revision N`).
    Undo(undo::UndoArgs),
    /// Update a rollout: `set image ROLLOUT CONTAINER=IMAGE`.
    Set(set_image::SetArgs),
    /// Terminate an AnalysisRun or Experiment.
    Terminate(actions::TerminateArgs),
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
    /// Plugins: list the configured ones, test one on the mock host, inspect a component.
    Plugin(plugin::PluginArgs),
    /// Print the version of Sluice and of the APIs it serves.
    Version,
    /// A guided canary release on a local control plane, in about a minute: a good version is
    /// promoted through the Gateway API with a Prometheus analysis, a bad one is aborted
    /// automatically.
    ///
    /// Prepares what is missing (the cached local Kubernetes control plane, Prometheus), starts
    /// them on 127.0.0.1 with the controller, and stops everything on exit or Ctrl-C.
    Demo(demo::DemoArgs),
}

/// The name to show in usage and help: `kubectl sluice` when run as the kubectl plugin
/// `kubectl-sluice`, else `sluice`.
fn display_name(argv0: Option<&str>) -> &'static str {
    let file = argv0
        .map(Path::new)
        .and_then(Path::file_stem)
        .and_then(|stem| stem.to_str());
    if file == Some("kubectl-sluice") {
        "kubectl sluice"
    } else {
        "sluice"
    }
}

fn parse_cli() -> Cli {
    let argv0 = std::env::args_os().next();
    let name = display_name(argv0.as_deref().and_then(|arg| arg.to_str()));
    let matches = Cli::command().bin_name(name).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// Runs a command that talks to the cluster on a single-threaded Tokio runtime.
fn block_on(
    future: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

fn main() -> ExitCode {
    let cli = parse_cli();
    let result = match cli.command {
        Command::Controller(args) => controller::run(&args),
        Command::Get(args) => block_on(get::run(&args)),
        Command::List(args) => block_on(list::run(&args)),
        Command::Status(args) => block_on(status::run(&args)),
        Command::Promote(args) => block_on(actions::promote(&args)),
        Command::Abort(args) => block_on(actions::abort(&args)),
        Command::Retry(args) => block_on(actions::retry(&args)),
        Command::Pause(args) => block_on(actions::pause(&args)),
        Command::Restart(args) => block_on(actions::restart(&args)),
        Command::Undo(args) => block_on(undo::run(&args)),
        Command::Set(args) => block_on(set_image::run(&args)),
        Command::Terminate(args) => block_on(actions::terminate(&args)),
        Command::Lint(args) => lint::run(&args),
        Command::Crds(args) => crds::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Plugin(args) => plugin::run(&args),
        Command::Demo(args) => demo::run(&args),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubectl_plugin_name_is_detected() {
        assert_eq!(
            display_name(Some("/usr/local/bin/kubectl-sluice")),
            "kubectl sluice"
        );
        assert_eq!(display_name(Some("kubectl-sluice.exe")), "kubectl sluice");
        assert_eq!(display_name(Some("/usr/bin/sluice")), "sluice");
        assert_eq!(display_name(None), "sluice");
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
