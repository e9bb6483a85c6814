//! Step plugin calls of a plan: each goes to the plugin runtime, and its outcome is kept (as the
//! status of its operation) until the next plan writes it. A failing call never fails the
//! reconcile: it is recorded as an `Error` and retried after the backoff.

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use sluice_api::rollout::{Rollout, StepPluginOperation, StepPluginPhase};
use sluice_core::Timestamp;
use sluice_core::step_plugin::{StepPluginAnswer, StepPluginCall, StepPluginOutcome, record};
use sluice_runtime::{CallError, StepContext, StepPhase, StepResult};
use tracing::Instrument;

use crate::context::Context;

/// Calls the step plugin and keeps the outcome for the next plan.
pub(crate) async fn call_step_plugin(
    rollout: &Rollout,
    rollout_json: &str,
    call: &StepPluginCall,
    ctx: &Context,
) {
    let span = tracing::info_span!(
        "step_plugin",
        plugin = %call.name,
        step = call.step_index,
        operation = ?call.operation,
    );
    let outcome = outcome(rollout, rollout_json, call, ctx)
        .instrument(span.clone())
        .await;
    let report = record(call, outcome, Timestamp::now());
    span.in_scope(|| {
        tracing::info!(
            phase = report.phase.map(StepPluginPhase::as_str),
            message = report.message.as_deref().unwrap_or_default(),
            "step plugin answered"
        )
    });
    ctx.report_step_plugin(ObjectRef::from_obj(rollout), report);
}

async fn outcome(
    rollout: &Rollout,
    rollout_json: &str,
    call: &StepPluginCall,
    ctx: &Context,
) -> StepPluginOutcome {
    let plugin = match ctx.plugins.step_plugin(&call.name).await {
        Ok(plugin) => plugin,
        Err(CallError::Disabled { .. }) => return StepPluginOutcome::Disabled,
        Err(error) => return StepPluginOutcome::CallFailed(error.to_string()),
    };
    let context = StepContext {
        namespace: rollout.namespace().unwrap_or_default(),
        name: rollout.name_any(),
        uid: rollout.uid().unwrap_or_default(),
        plugin_name: call.name.clone(),
        step_index: u32::try_from(call.step_index).unwrap_or_default(),
        plugin_config: call
            .config
            .as_ref()
            .map_or_else(|| "null".to_owned(), ToString::to_string),
        status: call
            .plugin_state()
            .map(ToString::to_string)
            .unwrap_or_default(),
        rollout_json: rollout_json.to_owned(),
    };
    let result = match call.operation {
        StepPluginOperation::Run => plugin.run(&context).await,
        StepPluginOperation::Terminate => plugin.terminate(&context).await,
        StepPluginOperation::Abort => plugin.abort(&context).await,
    };
    match result {
        Ok(result) => StepPluginOutcome::Answered(answer(result)),
        Err(error) => StepPluginOutcome::CallFailed(error.to_string()),
    }
}

fn answer(result: StepResult) -> StepPluginAnswer {
    StepPluginAnswer {
        phase: match result.phase {
            StepPhase::Running => StepPluginPhase::Running,
            StepPhase::Successful => StepPluginPhase::Successful,
            StepPhase::Failed => StepPluginPhase::Failed,
        },
        message: result.message,
        requeue_after: Duration::from_millis(result.requeue_after_ms),
        // The runtime checked that a non-empty status is JSON.
        status: serde_json::from_str(&result.status).ok(),
    }
}
