//! Fixture objects for the unit tests of the patch builders and renderers.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use sluice_api::analysis::AnalysisRun;
use sluice_api::experiment::Experiment;
use sluice_api::rollout::Rollout;

/// The instant the renderers are asked to render at.
pub fn now() -> Timestamp {
    "2025-03-01T12:00:00Z".parse().expect("a valid timestamp")
}

/// `now` minus `seconds`, as an RFC 3339 string.
pub fn ago(seconds: i64) -> String {
    now()
        .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(seconds))
        .expect("in range")
        .to_string()
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid fixture")
}

fn owner(kind: &str, name: &str, uid: &str) -> Value {
    json!([{
        "apiVersion": if kind == "ReplicaSet" { "apps/v1" } else { "argoproj.io/v1alpha1" },
        "kind": kind, "name": name, "uid": uid, "controller": true
    }])
}

/// A canary rollout `guestbook` (uid `ro-uid`) with steps setWeight 20, pause, analysis,
/// setWeight 60, merged with `spec` and `status` (JSON merge).
pub fn canary_rollout(spec: Value, status: Value) -> Rollout {
    let mut rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": "guestbook", "namespace": "shop", "uid": "ro-uid", "generation": 3,
            "creationTimestamp": ago(3 * 3600)
        },
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "guestbook"}},
            "template": {
                "metadata": {"labels": {"app": "guestbook"}},
                "spec": {"containers": [{"name": "web", "image": "guestbook:yellow"}]}
            },
            "strategy": {"canary": {"steps": [
                {"setWeight": 20},
                {"pause": {}},
                {"analysis": {"templates": [{"templateName": "success-rate"}]}},
                {"setWeight": 60}
            ]}}
        },
        "status": {}
    });
    merge(&mut rollout["spec"], spec);
    merge(&mut rollout["status"], status);
    from_json(rollout)
}

/// A blue-green rollout `checkout` (uid `bg-uid`), merged with `status`.
pub fn blue_green_rollout(status: Value) -> Rollout {
    from_json(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "checkout", "namespace": "shop", "uid": "bg-uid", "creationTimestamp": ago(86400)},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {
                "metadata": {"labels": {"app": "checkout"}},
                "spec": {"containers": [{"name": "app", "image": "checkout:2"}]}
            },
            "strategy": {"blueGreen": {"activeService": "checkout", "previewService": "checkout-preview"}}
        },
        "status": status
    }))
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch,
    }
}

/// A ReplicaSet of `owner_uid` with the given hash, revision, image and replica counts.
pub fn replica_set(
    owner_uid: &str,
    name: &str,
    hash: &str,
    revision: i64,
    image: &str,
    (desired, available): (i32, i32),
    age_seconds: i64,
) -> ReplicaSet {
    from_json(json!({
        "metadata": {
            "name": name, "namespace": "shop", "uid": format!("{name}-uid"), "generation": 1,
            "creationTimestamp": ago(age_seconds),
            "labels": {"app": "guestbook", "rollouts-pod-template-hash": hash},
            "annotations": {"rollout.argoproj.io/revision": revision.to_string()},
            "ownerReferences": owner("Rollout", "guestbook", owner_uid)
        },
        "spec": {
            "replicas": desired,
            "selector": {"matchLabels": {"app": "guestbook", "rollouts-pod-template-hash": hash}},
            "template": {
                "metadata": {"labels": {"app": "guestbook", "rollouts-pod-template-hash": hash}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            }
        },
        "status": {"replicas": desired, "readyReplicas": available, "availableReplicas": available, "observedGeneration": 1}
    }))
}

/// A Pod of the ReplicaSet `replica_set` (its uid is `<name>-uid`): Running and ready, or
/// waiting with `waiting_reason`.
pub fn pod(replica_set: &str, suffix: &str, waiting_reason: Option<&str>, age_seconds: i64) -> Pod {
    let state = match waiting_reason {
        Some(reason) => json!({"waiting": {"reason": reason}}),
        None => json!({"running": {"startedAt": ago(age_seconds)}}),
    };
    from_json(json!({
        "metadata": {
            "name": format!("{replica_set}-{suffix}"), "namespace": "shop",
            "creationTimestamp": ago(age_seconds),
            "ownerReferences": owner("ReplicaSet", replica_set, &format!("{replica_set}-uid"))
        },
        "spec": {"containers": [{"name": "web", "image": "x"}]},
        "status": {
            "phase": if waiting_reason.is_some() { "Pending" } else { "Running" },
            "containerStatuses": [{
                "name": "web", "image": "x", "imageID": "", "restartCount": if waiting_reason.is_some() { 3 } else { 0 },
                "ready": waiting_reason.is_none(), "state": state
            }]
        }
    }))
}

/// An AnalysisRun of `owner_uid` for `revision`, with `status`.
pub fn analysis_run(owner_uid: &str, name: &str, revision: i64, status: Value) -> AnalysisRun {
    from_json(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name, "namespace": "shop", "uid": format!("{name}-uid"),
            "creationTimestamp": ago(300),
            "annotations": {"rollout.argoproj.io/revision": revision.to_string()},
            "ownerReferences": owner("Rollout", "guestbook", owner_uid)
        },
        "spec": {"metrics": [{"name": "success-rate", "provider": {"web": {"url": "http://x"}}}]},
        "status": status
    }))
}

/// An Experiment of `owner_uid` for `revision`, in `phase`.
pub fn experiment(owner_uid: &str, name: &str, revision: i64, phase: &str) -> Experiment {
    from_json(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {
            "name": name, "namespace": "shop", "uid": format!("{name}-uid"),
            "creationTimestamp": ago(120),
            "annotations": {"rollout.argoproj.io/revision": revision.to_string()},
            "ownerReferences": owner("Rollout", "guestbook", owner_uid)
        },
        "spec": {"templates": []},
        "status": {"phase": phase}
    }))
}
