//! `status ROLLOUT [-w] [-t TIMEOUT]`: the phase and message, with an exit code meant for CI.

use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgAction, Args};
use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use sluice_api::duration::parse_go_duration;
use sluice_api::rollout::{Rollout, RolloutPhase};

use super::rollouts;
use crate::kube_context::ClusterArgs;
use crate::lookup;
use crate::rollout_info::{is_paused_by_user, rollout_phase};

/// Exit code: the rollout is Healthy.
pub const EXIT_HEALTHY: u8 = 0;
/// Exit code: the rollout is Degraded (aborted, invalid, or past its progress deadline).
pub const EXIT_DEGRADED: u8 = 1;
/// Exit code: `--timeout` passed first (also the code of every other error, such as a rollout
/// that does not exist).
pub const EXIT_TIMEOUT: u8 = 2;
/// Exit code: the rollout is paused by the user (it waits for `promote`), or, without watching, it
/// is still Progressing or Paused.
pub const EXIT_NOT_DONE: u8 = 3;

/// Arguments of `status`.
#[derive(Args)]
#[command(
    after_help = "Exit codes: 0 Healthy, 1 Degraded, 2 timeout (or any other error), \
3 paused by the user (with --watch) or not finished yet (with --watch=false)."
)]
pub struct StatusArgs {
    /// The rollout.
    #[arg(value_name = "ROLLOUT")]
    name: String,
    /// Wait until the rollout is Healthy, Degraded or paused by the user (the default, as with
    /// Argo's CLI); `--watch=false` prints the current status once.
    #[arg(
        short = 'w',
        long,
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true"
    )]
    watch: bool,
    /// Give up waiting after this long (a Go duration: `90s`, `5m`); 0 waits forever.
    #[arg(short = 't', long, value_name = "DURATION", default_value = "0s")]
    timeout: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// What a status line says, and whether watching is over.
fn describe(rollout: &Rollout) -> (String, Option<u8>) {
    let (phase, message) = rollout_phase(rollout);
    let line = if message.is_empty() {
        phase.as_str().to_owned()
    } else {
        format!("{} - {message}", phase.as_str())
    };
    let outcome = match phase {
        RolloutPhase::Healthy => Some(EXIT_HEALTHY),
        RolloutPhase::Degraded => Some(EXIT_DEGRADED),
        _ if is_paused_by_user(rollout) => Some(EXIT_NOT_DONE),
        _ => None,
    };
    (line, outcome)
}

fn finish(name: &str, rollout: &Rollout, code: u8) -> ExitCode {
    match code {
        EXIT_DEGRADED => eprintln!(
            "error: the rollout is in a degraded state with message: {}",
            rollout_phase(rollout).1
        ),
        EXIT_NOT_DONE if is_paused_by_user(rollout) => {
            eprintln!("rollout '{name}' is paused by the user: `sluice promote {name}` resumes it")
        }
        _ => {}
    }
    ExitCode::from(code)
}

/// Prints the status once, or every change until the rollout is Healthy, Degraded, paused by the
/// user, or the timeout passes.
pub async fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let timeout = parse_go_duration(&args.timeout).with_context(|| {
        format!(
            "--timeout {:?}: expected a duration such as 90s or 5m",
            args.timeout
        )
    })?;
    let (cluster, api) = rollouts(&args.cluster).await?;
    let rollout = lookup::get(&api, &cluster.namespace, &args.name).await?;
    let (line, outcome) = describe(&rollout);
    println!("{line}");
    if !args.watch {
        return Ok(finish(
            &args.name,
            &rollout,
            outcome.unwrap_or(EXIT_NOT_DONE),
        ));
    }
    if let Some(code) = outcome {
        return Ok(finish(&args.name, &rollout, code));
    }
    let config = watcher::Config::default().fields(&format!("metadata.name={}", args.name));
    let mut updates = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let mut previous = line;
    let watch = async {
        while let Some(update) = updates.next().await {
            let rollout = update.context("watching the rollout")?;
            let (line, outcome) = describe(&rollout);
            if line != previous {
                println!("{line}");
                previous = line;
            }
            if let Some(code) = outcome {
                return Ok(finish(&args.name, &rollout, code));
            }
        }
        anyhow::bail!("the watch on rollout \"{}\" ended", args.name)
    };
    if timeout.is_zero() {
        return watch.await;
    }
    match tokio::time::timeout(timeout, watch).await {
        Ok(result) => result,
        Err(_) => {
            eprintln!(
                "error: rollout status watch exceeded timeout ({})",
                args.timeout
            );
            Ok(ExitCode::from(EXIT_TIMEOUT))
        }
    }
}
