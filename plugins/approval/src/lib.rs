//! Approval step plugin: a manual gate in a canary's steps.
//!
//! The step's first `run` (re)opens the gate: it writes `decision: pending` to a ConfigMap in
//! the Rollout's namespace (`<rollout>-approval` unless `configMap` is set), so an approval of an
//! earlier update never lets a new one through. The step then waits, polling every
//! `pollSeconds` (default 10), until someone sets `decision` to `approve` (the step succeeds)
//! or `reject` (the step fails and the Rollout is aborted; `reason` is shown):
//!
//! ```text
//! kubectl patch configmap demo-approval --type merge -p '{"data":{"decision":"approve"}}'
//! ```
//!
//! The plugin records where the gate stands in the ConfigMap's `state` (`waiting`, `approved`,
//! `rejected`, and `aborted` or `terminated` when the Rollout is aborted or fully promoted), so
//! an external approval system can watch it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::json;
use sluice_plugin_sdk::kube::{self, KubeError, PatchType};
use sluice_plugin_sdk::{PluginError, StepContext, StepPhase, StepPlugin, StepResult};

/// The plugin type the host checks at load.
pub const PLUGIN_TYPE: &str = "Approval";
/// ConfigMap key holding the decision: `approve`, `reject` or `pending`.
pub const DECISION_KEY: &str = "decision";
/// ConfigMap key with the reason for the decision, shown in the Rollout's status.
pub const REASON_KEY: &str = "reason";
/// ConfigMap key with who decided, shown in the Rollout's status.
pub const APPROVER_KEY: &str = "approver";
/// ConfigMap key where the plugin records where the gate stands.
pub const STATE_KEY: &str = "state";
/// Default seconds between polls of a pending decision.
pub const DEFAULT_POLL_SECONDS: u64 = 10;

/// The approval step plugin.
pub struct Approval;

/// The step's `plugin.config`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The ConfigMap holding the decision (default `<rollout>-approval`).
    #[serde(default)]
    pub config_map: Option<String>,
    /// Seconds between polls while the decision is pending.
    #[serde(default)]
    pub poll_seconds: Option<u64>,
}

/// What the ConfigMap says.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Approved, by whom if known.
    Approved(Option<String>),
    /// Rejected, with the reason if given.
    Rejected(Option<String>),
    /// Nobody decided yet.
    Pending,
}

/// Reads the decision from ConfigMap data.
pub fn decision(data: &BTreeMap<String, String>) -> Decision {
    let value = |key: &str| {
        data.get(key)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    match value(DECISION_KEY)
        .map(|d| d.to_ascii_lowercase())
        .as_deref()
    {
        Some("approve" | "approved") => Decision::Approved(value(APPROVER_KEY)),
        Some("reject" | "rejected") => Decision::Rejected(value(REASON_KEY)),
        _ => Decision::Pending,
    }
}

/// The result of a `run` that found `decision`.
pub fn run_result(decision: &Decision, config_map: &str, poll_seconds: u64) -> StepResult {
    let (phase, message) = match decision {
        Decision::Approved(by) => (
            StepPhase::Successful,
            match by {
                Some(by) => format!("approved by {by}"),
                None => "approved".to_owned(),
            },
        ),
        Decision::Rejected(reason) => (
            StepPhase::Failed,
            match reason {
                Some(reason) => format!("rejected: {reason}"),
                None => "rejected".to_owned(),
            },
        ),
        Decision::Pending => (
            StepPhase::Running,
            format!(
                "waiting for approval: set data.decision to approve or reject in ConfigMap {config_map}"
            ),
        ),
    };
    StepResult {
        phase,
        message,
        requeue_after_ms: poll_seconds.saturating_mul(1000),
        status: json!({"configMap": config_map}).to_string(),
    }
}

fn config(ctx: &StepContext) -> Result<(Config, String), PluginError> {
    let text = if ctx.plugin_config.trim() == "null" {
        ""
    } else {
        &ctx.plugin_config
    };
    let config: Config = PluginError::parse_config(text)?;
    let name = config
        .config_map
        .clone()
        .unwrap_or_else(|| format!("{}-approval", ctx.name));
    Ok((config, name))
}

/// Merges `data` into the ConfigMap, creating it when it does not exist.
fn write(ctx: &StepContext, name: &str, data: serde_json::Value) -> Result<ConfigMap, PluginError> {
    match kube::patch::<ConfigMap>(
        Some(&ctx.namespace),
        name,
        PatchType::Merge,
        &json!({"data": data}),
    ) {
        Err(KubeError::NotFound(_)) => {
            let data = data.as_object().cloned().unwrap_or_default();
            let object = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(ctx.namespace.clone()),
                    ..ObjectMeta::default()
                },
                data: Some(
                    data.into_iter()
                        .filter_map(|(key, value)| Some((key, value.as_str()?.to_owned())))
                        .collect(),
                ),
                ..ConfigMap::default()
            };
            Ok(kube::create(Some(&ctx.namespace), &object)?)
        }
        other => Ok(other?),
    }
}

/// Records `state` after an abort or termination; a missing ConfigMap has nothing to record.
fn close(ctx: &StepContext, state: &str) -> Result<StepResult, PluginError> {
    let (_, name) = config(ctx)?;
    match kube::patch::<ConfigMap>(
        Some(&ctx.namespace),
        &name,
        PatchType::Merge,
        &json!({"data": {STATE_KEY: state}}),
    ) {
        Ok(_) | Err(KubeError::NotFound(_)) => Ok(StepResult::done(&format!("approval {state}"))),
        Err(error) => Err(error.into()),
    }
}

impl StepPlugin for Approval {
    fn plugin_type() -> String {
        PLUGIN_TYPE.into()
    }

    fn run(ctx: StepContext) -> Result<StepResult, PluginError> {
        let (config, name) = config(&ctx)?;
        let poll_seconds = config.poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS).max(1);
        let step = (ctx.step_index + 1).to_string();
        if ctx.status.is_empty() {
            // First run of this step: open the gate, discarding any earlier decision.
            sluice_plugin_sdk::info!(
                "opening approval gate {name} for {}/{}",
                ctx.namespace,
                ctx.name
            );
            write(
                &ctx,
                &name,
                json!({DECISION_KEY: "pending", REASON_KEY: null, APPROVER_KEY: null,
                       STATE_KEY: "waiting", "rollout": ctx.name, "step": step}),
            )?;
            return Ok(run_result(&Decision::Pending, &name, poll_seconds));
        }
        let config_map = kube::get::<ConfigMap>(Some(&ctx.namespace), &name)?;
        let decision = decision(&config_map.data.unwrap_or_default());
        let state = match decision {
            Decision::Approved(_) => "approved",
            Decision::Rejected(_) => "rejected",
            Decision::Pending => "waiting",
        };
        if state != "waiting" {
            write(&ctx, &name, json!({STATE_KEY: state}))?;
        }
        Ok(run_result(&decision, &name, poll_seconds))
    }

    fn terminate(ctx: StepContext) -> Result<StepResult, PluginError> {
        close(&ctx, "terminated")
    }

    fn abort(ctx: StepContext) -> Result<StepResult, PluginError> {
        close(&ctx, "aborted")
    }
}

sluice_plugin_sdk::export_step_plugin!(Approval);

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn reads_decisions() {
        let cases = [
            (data(&[]), Decision::Pending),
            (data(&[("decision", "pending")]), Decision::Pending),
            (data(&[("decision", " Approve ")]), Decision::Approved(None)),
            (
                data(&[("decision", "approved"), ("approver", "ana")]),
                Decision::Approved(Some("ana".into())),
            ),
            (data(&[("decision", "reject")]), Decision::Rejected(None)),
            (
                data(&[("decision", "rejected"), ("reason", "p99 too high")]),
                Decision::Rejected(Some("p99 too high".into())),
            ),
            (data(&[("decision", "maybe")]), Decision::Pending),
        ];
        for (data, expected) in cases {
            assert_eq!(decision(&data), expected, "{data:?}");
        }
    }

    #[test]
    fn results_carry_phase_message_and_poll_interval() {
        let pending = run_result(&Decision::Pending, "demo-approval", 15);
        assert_eq!(pending.phase, StepPhase::Running);
        assert_eq!(pending.requeue_after_ms, 15_000);
        assert!(pending.message.contains("ConfigMap demo-approval"));
        let rejected = run_result(&Decision::Rejected(Some("no".into())), "x", 10);
        assert_eq!(rejected.phase, StepPhase::Failed);
        assert_eq!(rejected.message, "rejected: no");
        let approved = run_result(&Decision::Approved(Some("ana".into())), "x", 10);
        assert_eq!(approved.phase, StepPhase::Successful);
        assert_eq!(approved.message, "approved by ana");
    }
}
