//! The patches the operator commands send, built by pure functions from the objects they change.
//!
//! Every body here is byte-for-byte what Argo Rollouts' `kubectl argo rollouts` plugin sends
//! (`pkg/kubectl-argo-rollouts/cmd/*`), so that `sluice` and `kubectl argo rollouts` are
//! interchangeable against either controller. Merge patches on status fields go to the `status`
//! subresource; merge patches on spec fields go to the main resource; `undo` is a JSON patch.

use std::fmt;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use sluice_api::analysis::AnalysisPhase;
use sluice_api::labels;
use sluice_api::rollout::Rollout;

use crate::rollout_info::current_step_index;

/// The merge patches one command sends to a Rollout: the main resource's and the `status`
/// subresource's. Argo sends the status patch first, then the spec patch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Patches {
    /// The merge patch for the main resource (`{"spec":{...}}`), if any.
    pub spec: Option<Value>,
    /// The merge patch for the `status` subresource (`{"status":{...}}`), if any.
    pub status: Option<Value>,
}

impl Patches {
    /// True when the command has nothing to send.
    pub fn is_empty(&self) -> bool {
        self.spec.is_none() && self.status.is_none()
    }
}

/// `promote` and `promote --full` (Argo's `getPatches` in `cmd/promote/promote.go`).
///
/// Without `--full`, `{"spec":{"paused":false}}` is sent when the rollout is paused by the user,
/// and the status patch is the first that applies of:
/// - (a) a canary whose current step's AnalysisRun is Inconclusive, with pause conditions and
///   `controllerPause`: clear the pause conditions and `controllerPause`, and go to the next step;
/// - (b) any pause condition: clear the pause conditions;
/// - (c) a canary with steps and no pause condition: clear the pause conditions and go to the next
///   step (this skips a running analysis or experiment step).
///
/// With `--full`, `{"status":{"promoteFull":true}}` is sent only while the desired revision is not
/// the stable one; Argo sends no spec patch in that case, so a user-paused rollout stays paused.
pub fn promote_patches(rollout: &Rollout, full: bool) -> Patches {
    let status = rollout.status.clone().unwrap_or_default();
    if full {
        let fully_promoted = status.current_pod_hash.as_deref().unwrap_or("")
            == status.stable_rs.as_deref().unwrap_or("");
        return Patches {
            spec: None,
            status: (!fully_promoted).then(|| json!({"status": {"promoteFull": true}})),
        };
    }
    let spec = rollout
        .spec
        .paused
        .then(|| json!({"spec": {"paused": false}}));
    let inconclusive_step = rollout.canary().is_some()
        && status
            .canary
            .current_step_analysis_run_status
            .as_ref()
            .is_some_and(|run| run.status == Some(AnalysisPhase::Inconclusive));
    let paused_by_controller = !status.pause_conditions.is_empty();
    let next_step = next_step_index(rollout);
    let status_patch = if inconclusive_step && paused_by_controller && status.controller_pause {
        next_step.map(|index| {
            json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": index}})
        })
    } else if paused_by_controller {
        Some(json!({"status": {"pauseConditions": null}}))
    } else if rollout.canary().is_some() {
        next_step
            .map(|index| json!({"status": {"pauseConditions": null, "currentStepIndex": index}}))
    } else {
        None
    };
    Patches {
        spec,
        status: status_patch,
    }
}

/// The step index after the current one, capped at the number of steps; `None` without steps.
fn next_step_index(rollout: &Rollout) -> Option<i32> {
    let steps = rollout.canary()?.steps.len();
    let index = current_step_index(rollout)?;
    let steps = i32::try_from(steps).unwrap_or(i32::MAX);
    Some(if index < steps { index + 1 } else { index })
}

/// `abort`: `{"status":{"abort":true}}` on the status subresource.
pub fn abort_patch() -> Value {
    json!({"status": {"abort": true}})
}

/// `retry rollout`: `{"status":{"abort":false}}` on the status subresource.
pub fn retry_rollout_patch() -> Value {
    json!({"status": {"abort": false}})
}

/// `retry experiment`: `{"status":null}`. Argo sends it to the main resource, where an API server
/// with the status subresource enabled (every Argo release since v0.10) drops it; Sluice sends the
/// same body to the `status` subresource so that the experiment actually restarts.
pub fn retry_experiment_patch() -> Value {
    json!({"status": null})
}

/// `pause`: `{"spec":{"paused":true}}` on the main resource.
pub fn pause_patch() -> Value {
    json!({"spec": {"paused": true}})
}

/// `restart [--in d]`: `{"spec":{"restartAt":"<RFC 3339, whole seconds, UTC>"}}` on the main
/// resource, `restart_at` being now plus the delay.
pub fn restart_patch(restart_at: Timestamp) -> Value {
    let whole_seconds = Timestamp::from_second(restart_at.as_second()).unwrap_or(restart_at);
    json!({"spec": {"restartAt": whole_seconds.to_string()}})
}

/// `terminate analysisrun|experiment`: `{"spec":{"terminate":true}}` on the main resource.
pub fn terminate_patch() -> Value {
    json!({"spec": {"terminate": true}})
}

/// What `undo` does.
#[derive(Clone, Debug, PartialEq)]
pub enum UndoPlan {
    /// The rollout's template already matches the revision: nothing is sent.
    AlreadyAtRevision {
        /// The revision whose template matches.
        revision: i64,
    },
    /// Send `patch` (a JSON patch) to restore `revision`'s template.
    Restore {
        /// The revision restored.
        revision: i64,
        /// `[{"op":"replace","path":"/spec/template","value":<template>}]` (the path is
        /// `/template` for a `workloadRef` to a PodTemplate).
        patch: Value,
    },
}

/// Why `undo` cannot find a revision to go back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UndoError {
    /// `--to-revision N` names a revision none of the rollout's ReplicaSets has.
    RevisionNotFound(i64),
    /// There is no revision before the current one.
    NoPreviousRevision(String),
}

impl fmt::Display for UndoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RevisionNotFound(revision) => write!(
                f,
                "unable to find specified revision {revision} in history; `sluice get rollout` lists the revisions"
            ),
            Self::NoPreviousRevision(name) => {
                write!(f, "no revision found for rollout \"{name}\" to go back to")
            }
        }
    }
}

impl std::error::Error for UndoError {}

/// `undo [--to-revision N]` (Argo's `RunUndoRollout` in `cmd/undo/undo.go`): the template of the
/// ReplicaSet (controlled by `rollout`) whose `rollout.argoproj.io/revision` annotation is N, or
/// by default the second-highest revision, without the `rollouts-pod-template-hash` label, as a
/// JSON patch replacing the template at `template_path` (`/spec/template` in a Rollout,
/// Deployment or ReplicaSet). `current_template` is the template the patch would replace (the
/// rollout's, or its `workloadRef`'s); when it already matches, nothing is sent.
pub fn undo_plan(
    rollout: &Rollout,
    template_path: &str,
    current_template: Option<&Value>,
    replica_sets: &[ReplicaSet],
    to_revision: Option<i64>,
) -> Result<UndoPlan, UndoError> {
    let uid = rollout.metadata.uid.as_deref().unwrap_or_default();
    let mut owned: Vec<(i64, &ReplicaSet)> = replica_sets
        .iter()
        .filter(|rs| is_controlled_by(rs, uid))
        .filter_map(|rs| replica_set_revision(rs).map(|revision| (revision, rs)))
        .collect();
    owned.sort_by_key(|(revision, _)| std::cmp::Reverse(*revision));
    let (revision, replica_set) = match to_revision {
        Some(wanted) => owned
            .into_iter()
            .find(|(revision, _)| *revision == wanted)
            .ok_or(UndoError::RevisionNotFound(wanted))?,
        None => owned.into_iter().nth(1).ok_or_else(|| {
            UndoError::NoPreviousRevision(rollout.metadata.name.clone().unwrap_or_default())
        })?,
    };
    let mut template = replica_set
        .spec
        .as_ref()
        .and_then(|spec| spec.template.as_ref())
        .map(|template| serde_json::to_value(template).unwrap_or(Value::Null))
        .unwrap_or_else(|| json!({}));
    remove_hash_label(&mut template);
    if let Some(current) = current_template {
        let mut current = current.clone();
        remove_hash_label(&mut current);
        if is_derivative(&current, &template) {
            return Ok(UndoPlan::AlreadyAtRevision { revision });
        }
    }
    Ok(UndoPlan::Restore {
        revision,
        patch: json!([{"op": "replace", "path": template_path, "value": template}]),
    })
}

/// The `rollout.argoproj.io/revision` annotation of a ReplicaSet; absent counts as 0, as in
/// Argo; an unparsable value excludes the ReplicaSet.
pub fn replica_set_revision(replica_set: &ReplicaSet) -> Option<i64> {
    match replica_set
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(labels::REVISION))
    {
        None => Some(0),
        Some(text) => text.parse().ok(),
    }
}

fn is_controlled_by(replica_set: &ReplicaSet, owner_uid: &str) -> bool {
    replica_set
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.uid == owner_uid && owner.controller == Some(true))
}

fn remove_hash_label(template: &mut Value) {
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(labels::POD_TEMPLATE_HASH);
    }
}

/// Argo's `apiequality.Semantic.DeepDerivative(current, candidate)`: every field set in
/// `current` equals the same field in `candidate`; unset fields of `current` (null, empty
/// strings, lists and maps) are ignored.
fn is_derivative(current: &Value, candidate: &Value) -> bool {
    match (current, candidate) {
        (Value::Null, _) => true,
        (Value::String(text), _) if text.is_empty() => true,
        (Value::Array(items), _) if items.is_empty() => true,
        (Value::Object(fields), _) if fields.is_empty() => true,
        (Value::Object(fields), Value::Object(other)) => fields
            .iter()
            .all(|(key, value)| is_derivative(value, other.get(key).unwrap_or(&Value::Null))),
        (Value::Array(items), Value::Array(other)) => {
            items.len() == other.len() && items.iter().zip(other).all(|(a, b)| is_derivative(a, b))
        }
        _ => current == candidate,
    }
}

/// Why `set image` cannot apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerNotFound {
    /// The container name asked for.
    pub container: String,
    /// The containers that exist.
    pub existing: Vec<String>,
}

impl fmt::Display for ContainerNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unable to find container named \"{}\"", self.container)?;
        if !self.existing.is_empty() {
            write!(
                f,
                "; the containers are {}, or use `*` for all of them",
                self.existing.join(", ")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ContainerNotFound {}

/// `set image ROLLOUT CONTAINER=IMAGE` (Argo's `newRolloutSetImage` in `cmd/set/set_image.go`):
/// the object (a Rollout, or the Deployment its `workloadRef` names) with the image of every
/// init, regular and ephemeral container named `container` (`*`: all of them) replaced. Argo
/// sends the result as an update (PUT, guarded by the resourceVersion it read).
pub fn set_image(object: &Value, container: &str, image: &str) -> Result<Value, ContainerNotFound> {
    let mut updated = object.clone();
    let mut found = false;
    let mut existing = Vec::new();
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        let pointer = format!("/spec/template/spec/{field}");
        let Some(containers) = updated.pointer_mut(&pointer).and_then(Value::as_array_mut) else {
            continue;
        };
        for entry in containers.iter_mut().filter_map(Value::as_object_mut) {
            let name = entry.get("name").and_then(Value::as_str).unwrap_or("");
            existing.push(name.to_owned());
            if container == "*" || name == container {
                entry.insert("image".to_owned(), Value::String(image.to_owned()));
                found = true;
            }
        }
    }
    if found {
        Ok(updated)
    } else {
        Err(ContainerNotFound {
            container: container.to_owned(),
            existing,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::fixtures::{blue_green_rollout, canary_rollout, replica_set};

    /// Parses one of Argo's patch constants (`cmd/*/*.go`), verbatim.
    fn argo(text: &str) -> Value {
        serde_json::from_str(text).expect("Argo's patch is JSON")
    }

    fn inconclusive_status(step: i32) -> Value {
        json!({
            "currentStepIndex": step,
            "controllerPause": true,
            "pauseConditions": [{"reason": "InconclusiveAnalysisRun", "startTime": "2025-03-01T11:00:00Z"}],
            "canary": {"currentStepAnalysisRunStatus": {"name": "guestbook-2-2", "status": "Inconclusive"}}
        })
    }

    #[test]
    fn promote_a_inconclusive_step_clears_the_controller_pause_and_moves_on() {
        let rollout = canary_rollout(json!({}), inconclusive_status(2));
        assert_eq!(
            promote_patches(&rollout, false),
            Patches {
                spec: None,
                status: Some(argo(
                    r#"{"status":{"pauseConditions":null, "controllerPause":false, "currentStepIndex":3}}"#
                )),
            }
        );
        let paused = canary_rollout(json!({"paused": true}), inconclusive_status(2));
        assert_eq!(
            promote_patches(&paused, false).spec,
            Some(argo(r#"{"spec":{"paused":false}}"#))
        );
    }

    #[test]
    fn promote_a_needs_the_controller_pause_else_it_is_b() {
        let mut status = inconclusive_status(2);
        status["controllerPause"] = json!(false);
        let rollout = canary_rollout(json!({}), status);
        assert_eq!(
            promote_patches(&rollout, false).status,
            Some(argo(r#"{"status":{"pauseConditions":null}}"#))
        );
    }

    #[test]
    fn promote_b_clears_pause_conditions() {
        let canary = canary_rollout(
            json!({}),
            json!({"currentStepIndex": 1, "controllerPause": true,
                   "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2025-03-01T11:00:00Z"}]}),
        );
        assert_eq!(
            promote_patches(&canary, false),
            Patches {
                spec: None,
                status: Some(argo(r#"{"status":{"pauseConditions":null}}"#)),
            }
        );
        let blue_green = blue_green_rollout(json!({
            "controllerPause": true,
            "pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2025-03-01T11:00:00Z"}]
        }));
        assert_eq!(
            promote_patches(&blue_green, false).status,
            Some(argo(r#"{"status":{"pauseConditions":null}}"#))
        );
    }

    #[test]
    fn promote_c_skips_the_current_step() {
        let running_analysis = canary_rollout(json!({}), json!({"currentStepIndex": 2}));
        assert_eq!(
            promote_patches(&running_analysis, false),
            Patches {
                spec: None,
                status: Some(argo(
                    r#"{"status":{"pauseConditions":null, "currentStepIndex":3}}"#
                )),
            }
        );
        let no_index_yet = canary_rollout(json!({}), json!({}));
        assert_eq!(
            promote_patches(&no_index_yet, false).status,
            Some(argo(
                r#"{"status":{"pauseConditions":null, "currentStepIndex":1}}"#
            ))
        );
        let all_steps_done = canary_rollout(json!({}), json!({"currentStepIndex": 4}));
        assert_eq!(
            promote_patches(&all_steps_done, false).status,
            Some(argo(
                r#"{"status":{"pauseConditions":null, "currentStepIndex":4}}"#
            ))
        );
    }

    #[test]
    fn promote_resumes_a_user_pause_and_sends_nothing_when_there_is_nothing_to_do() {
        let no_steps = canary_rollout(json!({"strategy": {"canary": {"steps": []}}}), json!({}));
        assert!(
            no_steps
                .canary()
                .is_some_and(|canary| canary.steps.is_empty())
        );
        assert!(promote_patches(&no_steps, false).is_empty());
        let paused = canary_rollout(
            json!({"paused": true, "strategy": {"canary": {"steps": []}}}),
            json!({}),
        );
        assert_eq!(
            promote_patches(&paused, false),
            Patches {
                spec: Some(argo(r#"{"spec":{"paused":false}}"#)),
                status: None,
            }
        );
        assert!(promote_patches(&blue_green_rollout(json!({})), false).is_empty());
    }

    #[test]
    fn promote_full_requests_a_full_promotion_only_when_not_fully_promoted() {
        let updating = canary_rollout(
            json!({"paused": true}),
            json!({"currentPodHash": "def456", "stableRS": "abc123", "currentStepIndex": 1}),
        );
        assert_eq!(
            promote_patches(&updating, true),
            Patches {
                spec: None,
                status: Some(argo(r#"{"status":{"promoteFull":true}}"#)),
            }
        );
        let promoted = canary_rollout(
            json!({}),
            json!({"currentPodHash": "abc123", "stableRS": "abc123"}),
        );
        assert!(promote_patches(&promoted, true).is_empty());
    }

    #[test]
    fn the_other_merge_patches_are_argos() {
        assert_eq!(abort_patch(), argo(r#"{"status":{"abort":true}}"#));
        assert_eq!(retry_rollout_patch(), argo(r#"{"status":{"abort":false}}"#));
        assert_eq!(retry_experiment_patch(), argo(r#"{"status":null}"#));
        assert_eq!(pause_patch(), argo(r#"{"spec":{"paused":true}}"#));
        assert_eq!(terminate_patch(), argo(r#"{"spec":{"terminate":true}}"#));
        let at: Timestamp = "2025-03-01T12:00:10.750Z".parse().expect("timestamp");
        assert_eq!(
            restart_patch(at),
            argo("{\n\t\"spec\": {\n\t\t\"restartAt\": \"2025-03-01T12:00:10Z\"\n\t}\n}")
        );
    }

    fn history() -> Vec<ReplicaSet> {
        let foreign = replica_set("other-uid", "other-9", "h9", 9, "other:9", (1, 1), 60);
        vec![
            replica_set(
                "ro-uid",
                "guestbook-h1",
                "h1",
                1,
                "guestbook:blue",
                (0, 0),
                7200,
            ),
            replica_set(
                "ro-uid",
                "guestbook-h3",
                "h3",
                3,
                "guestbook:yellow",
                (5, 5),
                600,
            ),
            replica_set(
                "ro-uid",
                "guestbook-h2",
                "h2",
                2,
                "guestbook:green",
                (0, 0),
                3600,
            ),
            foreign,
        ]
    }

    fn template(image: &str) -> Value {
        json!({
            "metadata": {"labels": {"app": "guestbook"}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        })
    }

    #[test]
    fn undo_restores_the_previous_revision_without_the_hash_label() {
        let rollout = canary_rollout(json!({}), json!({}));
        let current = template("guestbook:yellow");
        assert_eq!(
            undo_plan(&rollout, "/spec/template", Some(&current), &history(), None),
            Ok(UndoPlan::Restore {
                revision: 2,
                patch: json!([{"op": "replace", "path": "/spec/template", "value": template("guestbook:green")}]),
            })
        );
        assert_eq!(
            undo_plan(
                &rollout,
                "/spec/template",
                Some(&current),
                &history(),
                Some(1)
            ),
            Ok(UndoPlan::Restore {
                revision: 1,
                patch: json!([{"op": "replace", "path": "/spec/template", "value": template("guestbook:blue")}]),
            })
        );
    }

    #[test]
    fn undo_skips_a_revision_the_template_already_matches() {
        let rollout = canary_rollout(json!({}), json!({}));
        let current = template("guestbook:yellow");
        assert_eq!(
            undo_plan(
                &rollout,
                "/spec/template",
                Some(&current),
                &history(),
                Some(3)
            ),
            Ok(UndoPlan::AlreadyAtRevision { revision: 3 })
        );
    }

    #[test]
    fn undo_reports_missing_revisions() {
        let rollout = canary_rollout(json!({}), json!({}));
        assert_eq!(
            undo_plan(&rollout, "/spec/template", None, &history(), Some(9)),
            Err(UndoError::RevisionNotFound(9))
        );
        assert_eq!(
            undo_plan(&rollout, "/spec/template", None, &history()[1..2], None),
            Err(UndoError::NoPreviousRevision("guestbook".to_owned()))
        );
    }

    #[test]
    fn set_image_updates_named_or_all_containers() {
        let object = json!({
            "kind": "Rollout",
            "spec": {"template": {"spec": {
                "initContainers": [{"name": "init", "image": "busybox:1"}],
                "containers": [{"name": "web", "image": "web:1"}, {"name": "sidecar", "image": "proxy:1"}]
            }}}
        });
        let web = set_image(&object, "web", "web:2").expect("web exists");
        assert_eq!(
            web["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:2"
        );
        assert_eq!(
            web["spec"]["template"]["spec"]["containers"][1]["image"],
            "proxy:1"
        );
        assert_eq!(
            web["spec"]["template"]["spec"]["initContainers"][0]["image"],
            "busybox:1"
        );
        let all = set_image(&object, "*", "debug:1").expect("there are containers");
        for pointer in [
            "/spec/template/spec/initContainers/0/image",
            "/spec/template/spec/containers/0/image",
            "/spec/template/spec/containers/1/image",
        ] {
            assert_eq!(all.pointer(pointer), Some(&json!("debug:1")), "{pointer}");
        }
        let missing = set_image(&object, "wbe", "web:2").expect_err("no such container");
        assert_eq!(
            missing.to_string(),
            "unable to find container named \"wbe\"; the containers are init, web, sidecar, or use `*` for all of them"
        );
    }
}
