//! Writes a Rollout's status through the status subresource, only when it changed.

use sluice_api::rollout::{Rollout, RolloutStatus};

use crate::context::Context;
use crate::error::Result;
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
