//! Writes a Rollout's status through the status subresource, only when it changed.

use sluice_api::rollout::{Rollout, RolloutPhase, RolloutStatus};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::status_patch::{patch_status, status_json};

/// Merge-patches `status` over the cached status of `rollout`; no request when they are equal.
/// Returns whether a request was made.
pub(crate) async fn write_status(
    rollout: &Rollout,
    status: &RolloutStatus,
    ctx: &Context,
) -> Result<bool> {
    let old = status_json(rollout.status.as_ref(), "Rollout status")?;
    let new = status_json(Some(status), "Rollout status")?;
    patch_status(ctx, rollout, &old, &new, &ctx.stores.rollouts).await
}

/// The reason prefix of the message of a Rollout whose plugin failed (Argo's
/// `ReconciliationError`).
pub(crate) const RECONCILIATION_ERROR: &str = "ReconciliationError";

/// The longest error text written to the status message.
const MAX_ERROR_CHARS: usize = 1024;

/// Records a reconcile that failed in a plugin on the cached status: phase `Degraded` and the
/// message `ReconciliationError: <error>`, which names the plugin. The plan was not carried out,
/// so nothing else of it is written; the next successful reconcile writes the plan's phase and
/// message again. Returns whether a request was made.
pub(crate) async fn write_plugin_failure(
    rollout: &Rollout,
    error: &Error,
    ctx: &Context,
) -> Result<bool> {
    let mut status = rollout.status.clone().unwrap_or_default();
    status.phase = Some(RolloutPhase::Degraded);
    status.message = Some(format!(
        "{RECONCILIATION_ERROR}: {}",
        one_line(&error.to_string())
    ));
    write_status(rollout, &status, ctx).await
}

/// A multi-line error (a trap with its backtraces) as its first line and the last line before
/// any host stack backtrace (the trap's cause), capped at [`MAX_ERROR_CHARS`].
fn one_line(text: &str) -> String {
    let text = text.split("Stack backtrace:").next().unwrap_or_default();
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let first = lines.next().unwrap_or_default();
    let line = match lines.next_back() {
        Some(last) => format!("{first} … {last}"),
        None => first.to_string(),
    };
    line.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_backtrace_is_summarised_by_its_first_and_last_lines() {
        let trap = "plugin p trapped in set-weight: error while executing at wasm backtrace:\n    0: 0x1 - f\n    1: 0x2 - g\n\nCaused by:\n    wasm trap: wasm `unreachable` instruction executed\n\nStack backtrace:\n   0: std::backtrace\n   1: clone3\n";
        assert_eq!(
            one_line(trap),
            "plugin p trapped in set-weight: error while executing at wasm backtrace: … wasm trap: wasm `unreachable` instruction executed"
        );
        assert_eq!(one_line("not found"), "not found");
        assert_eq!(one_line(&"x".repeat(5000)).len(), 1024);
    }
}
