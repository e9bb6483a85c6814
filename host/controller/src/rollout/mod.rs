//! The Rollout reconciler: observe (caches) → plan (`sluice-core`) → execute → record status.

mod execute;
mod observe;
pub(crate) use observe::{observe_analysis_run, service_names};
pub(crate) mod routers;
mod status;
mod step_plugins;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use sluice_api::rollout::Rollout;
use sluice_core::Timestamp;
use tracing::Instrument;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::metrics::{ObjectLabels, RolloutInfoLabels};

/// The shortest requeue: `Plan::requeue_after == 0` means "right after this plan", and the
/// caches already show this reconcile's writes.
const MIN_REQUEUE: Duration = Duration::from_millis(50);

/// How often a reconcile that came before the caches synced is retried.
const CACHE_SYNC_RETRY: Duration = Duration::from_millis(100);

/// The `action` of the Rollout's events.
const RECONCILE_ACTION: &str = "Reconcile";

/// How long to wait after a failed reconcile before trying again.
const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// Reconciles one Rollout.
pub(crate) async fn reconcile(rollout: Arc<Rollout>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let span = tracing::info_span!("reconcile_rollout", rollout = %name, namespace = %namespace);
    let started = Instant::now();
    let result = reconcile_inner(&rollout, &ctx).instrument(span).await;
    let labels = ObjectLabels { namespace, name };
    ctx.metrics
        .observe_rollout_reconcile(&labels, started.elapsed());
    if let Err(error) = &result {
        ctx.metrics.rollout_reconcile_failed(&labels, error);
    }
    result
}

async fn reconcile_inner(rollout: &Rollout, ctx: &Context) -> Result<Action> {
    if rollout.metadata.deletion_timestamp.is_some() {
        ctx.forget(&ObjectRef::from_obj(rollout));
        ctx.metrics.forget_rollout(&ObjectLabels {
            namespace: rollout.namespace().unwrap_or_default(),
            name: rollout.name_any(),
        });
        return Ok(Action::await_change());
    }
    // After a (re)start, plan only from complete caches. (Awaiting `Store::wait_until_ready`
    // here was seen to hang when a reconcile raced the initial lists.)
    if !ctx.caches_synced() {
        return Ok(Action::requeue(CACHE_SYNC_RETRY));
    }
    let now = Timestamp::now();
    let key = ObjectRef::from_obj(rollout);
    let mut observed = observe::observe(rollout, ctx);
    // Step plugin outcomes since the status was last written.
    let step_plugin_reports = ctx.pending_step_plugin_reports(&key);
    for report in &step_plugin_reports {
        sluice_core::step_plugin::merge(&mut observed.step_plugin_reports, report.clone());
    }
    if sluice_core::restart::restart_due(rollout, now).is_some() {
        observed.pods = Some(observe::list_pods(rollout, &observed.replica_sets, ctx).await?);
    }
    let plan = sluice_core::plan(&observed, now);
    if !plan.actions.is_empty() {
        tracing::info!(actions = plan.actions.len(), "executing plan");
    }
    if let Err(error) = execute::execute(rollout, &plan, ctx).await {
        if error.is_router_failure() {
            status::write_plugin_failure(rollout, &error, ctx).await?;
        }
        return Err(error);
    }
    let written = status::write_status(rollout, &plan.status, ctx).await?;
    ctx.settle_step_plugin_reports(&key, &step_plugin_reports);
    if written {
        tracing::info!(
            phase = ?plan.status.phase,
            step = ?plan.status.current_step_index,
            "status written"
        );
    }
    let events = sluice_core::events::rollout_events(&observed, &plan);
    crate::events::publish(ctx, rollout, RECONCILE_ACTION, &events).await;
    export_state(rollout, &plan.status, ctx);
    Ok(match plan.requeue_after {
        Some(delay) => Action::requeue(delay.max(MIN_REQUEUE)),
        None => Action::await_change(),
    })
}

fn export_state(rollout: &Rollout, status: &sluice_api::rollout::RolloutStatus, ctx: &Context) {
    let strategy = if rollout.blue_green().is_some() {
        "blueGreen"
    } else {
        "canary"
    };
    let traffic_router = routers::configured_routers(rollout)
        .map(|routers| {
            routers
                .iter()
                .map(|router| router.plugin.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    ctx.metrics.set_rollout_state(RolloutInfoLabels {
        namespace: rollout.namespace().unwrap_or_default(),
        name: rollout.name_any(),
        strategy: strategy.to_string(),
        traffic_router,
        phase: status
            .phase
            .map(|phase| phase.as_str().to_string())
            .unwrap_or_default(),
    });
}

/// Requeues a failed Rollout reconcile; the error is logged with the Rollout's name.
pub(crate) fn error_policy(rollout: Arc<Rollout>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        rollout = %rollout.name_any(),
        namespace = %rollout.namespace().unwrap_or_default(),
        error = %error,
        "reconcile failed"
    );
    Action::requeue(ERROR_REQUEUE)
}
