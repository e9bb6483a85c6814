//! `list rollouts`: one line per Rollout, rendered by a pure function, with Argo's columns and
//! padding (`cmd/list/rollloutinfo.go`).

use sluice_api::rollout::Rollout;

use crate::rollout_info::{rollout_phase, set_weight, step_text};
use crate::text::align_columns;

/// Renders the table `NAME STRATEGY STATUS STEP SET-WEIGHT READY DESIRED UP-TO-DATE AVAILABLE`,
/// with a leading `NAMESPACE` column when `with_namespace` (for `-A`). Rows are sorted by
/// namespace and name.
pub fn render_rollout_list(rollouts: &[Rollout], with_namespace: bool) -> String {
    let mut sorted: Vec<&Rollout> = rollouts.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let mut header: Vec<String> = [
        "NAME",
        "STRATEGY",
        "STATUS",
        "STEP",
        "SET-WEIGHT",
        "READY",
        "DESIRED",
        "UP-TO-DATE",
        "AVAILABLE",
    ]
    .map(str::to_owned)
    .to_vec();
    if with_namespace {
        header.insert(0, "NAMESPACE".to_owned());
    }
    let mut rows = vec![header];
    for rollout in sorted {
        let status = rollout.status.clone().unwrap_or_default();
        let (strategy, step, weight) = if rollout.canary().is_some() {
            (
                "Canary",
                step_text(rollout).unwrap_or_else(|| "-".to_owned()),
                set_weight(rollout).to_string(),
            )
        } else if rollout.blue_green().is_some() {
            ("BlueGreen", "-".to_owned(), "-".to_owned())
        } else {
            ("unknown", "-".to_owned(), "-".to_owned())
        };
        let (phase, _) = rollout_phase(rollout);
        let mut row = vec![
            format!("{:<10}", rollout.metadata.name.as_deref().unwrap_or("")),
            format!("{strategy:<9}"),
            format!("{:<12}", phase.as_str()),
            format!("{step:<4}"),
            format!("{weight:<10}"),
            format!(
                "{:<5}",
                format!("{}/{}", status.ready_replicas, status.replicas)
            ),
            format!("{:<7}", rollout.replicas()),
            format!("{:<10}", status.updated_replicas),
            format!("{:<9}", status.available_replicas),
        ];
        if with_namespace {
            row.insert(
                0,
                format!("{:<9}", rollout.metadata.namespace.as_deref().unwrap_or("")),
            );
        }
        rows.push(row);
    }
    align_columns(&rows, 2)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::{blue_green_rollout, canary_rollout};

    fn rollouts() -> Vec<Rollout> {
        let paused = canary_rollout(
            json!({}),
            json!({"phase": "Paused", "message": "CanaryPauseStep", "currentStepIndex": 1,
                   "replicas": 5, "updatedReplicas": 1, "readyReplicas": 5, "availableReplicas": 5}),
        );
        let mut elsewhere = canary_rollout(
            json!({"replicas": 12}),
            json!({"phase": "Degraded", "message": "RolloutAborted", "abort": true, "currentStepIndex": 0,
                   "replicas": 12, "readyReplicas": 11, "availableReplicas": 11}),
        );
        elsewhere.metadata.name = Some("payments-api".to_owned());
        elsewhere.metadata.namespace = Some("billing".to_owned());
        let blue_green = blue_green_rollout(json!({"phase": "Healthy", "replicas": 2,
            "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}));
        vec![paused, blue_green, elsewhere]
    }

    #[test]
    fn the_list_has_argos_columns() {
        assert_eq!(
            render_rollout_list(&rollouts()[..2], false),
            r#"NAME        STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  AVAILABLE
checkout    BlueGreen  Healthy       -     -           2/2    2        2           2
guestbook   Canary     Paused        1/4   20          5/5    5        1           5
"#
        );
    }

    #[test]
    fn all_namespaces_adds_the_namespace_column() {
        assert_eq!(
            render_rollout_list(&rollouts(), true),
            r#"NAMESPACE  NAME          STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  AVAILABLE
billing    payments-api  Canary     Degraded      0/4   0           11/12  12       0           11
shop       checkout      BlueGreen  Healthy       -     -           2/2    2        2           2
shop       guestbook     Canary     Paused        1/4   20          5/5    5        1           5
"#
        );
    }
}
