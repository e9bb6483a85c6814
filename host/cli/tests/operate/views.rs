//! `get rollout`, `list rollouts` and the kubectl plugin name.

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::{Env, Run, eventually, sluice_command};

/// The tree lines as ` | `-separated cells (cut at the header's column positions), with the AGE
/// column and the random pod-name suffixes masked.
fn masked_tree(output: &str) -> Vec<String> {
    let tree = output
        .split("\n\n")
        .nth(1)
        .expect("a tree after the header");
    let header = tree.lines().next().expect("a header line");
    let starts: Vec<usize> = ["KIND", "STATUS", "AGE", "INFO"]
        .iter()
        .map(|title| header.find(title).expect("a column title"))
        .collect();
    tree.lines()
        .map(|line| {
            let chars: Vec<char> = line.chars().collect();
            let cut = |from: usize, to: usize| -> String {
                let from = from.min(chars.len());
                chars[from..to.min(chars.len())]
                    .iter()
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            };
            let mut cells = vec![cut(0, starts[0])];
            for (index, start) in starts.iter().enumerate() {
                cells.push(cut(
                    *start,
                    starts.get(index + 1).copied().unwrap_or(usize::MAX),
                ));
            }
            if cells[1] != "KIND" && !cells[3].is_empty() {
                cells[3] = "<age>".to_owned();
            }
            if cells[1] == "Pod" {
                let name = cells[0]
                    .rsplit_once('-')
                    .map_or(cells[0].clone(), |(rs, _)| rs.to_owned());
                cells[0] = format!("{name}-<pod>");
            }
            while cells.last().is_some_and(String::is_empty) {
                cells.pop();
            }
            cells.join(" | ")
        })
        .collect()
}

fn replica_set(rollout: &Value, hash: &str, revision: i64, replicas: i32, image: &str) -> Value {
    let labels = json!({"app": "guestbook", "rollouts-pod-template-hash": hash});
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("guestbook-{hash}"), "labels": labels,
            "annotations": {"rollout.argoproj.io/revision": revision.to_string()},
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "guestbook",
                "uid": rollout["metadata"]["uid"], "controller": true}]
        },
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": image}]}}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_rollout_shows_the_header_and_the_tree() {
    let env = Env::new("get").await;
    let rollout = env
        .canary("guestbook", json!({"replicas": 2}), json!({
            "phase": "Paused", "message": "CanaryPauseStep", "observedGeneration": "1",
            "currentStepIndex": 1, "currentPodHash": "c2", "stableRS": "s1", "controllerPause": true,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2025-03-01T11:58:00Z"}],
            "replicas": 2, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2
        }))
        .await;
    env.create_with_status(
        &env.replica_sets(),
        replica_set(&rollout, "s1", 1, 1, "web:1"),
        Value::Null,
    )
    .await;
    env.create_with_status(
        &env.replica_sets(),
        replica_set(&rollout, "c2", 2, 1, "web:2"),
        Value::Null,
    )
    .await;
    let pods: kube::Api<Pod> = env.ns.api();
    eventually("both pods are ready", || async {
        let Ok(list) = pods.list(&ListParams::default()).await else {
            return false;
        };
        list.items.len() == 2
            && list.items.iter().all(|pod| {
                pod.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|statuses| statuses.iter().all(|c| c.ready))
            })
    })
    .await;
    eventually("the ReplicaSets report available pods", || async {
        let Ok(list) = env.replica_sets().list(&ListParams::default()).await else {
            return false;
        };
        list.items
            .iter()
            .all(|rs| rs.status.as_ref().and_then(|s| s.available_replicas) == Some(1))
    })
    .await;

    let run = env.sluice(&["get", "rollout", "guestbook"]);
    let output = run.success();
    let header = output.split("\n\n").next().expect("a header");
    assert_eq!(
        header,
        format!(
            "Name:            guestbook\n\
             Namespace:       {}\n\
             Status:          ॥ Paused\n\
             Message:         CanaryPauseStep\n\
             Strategy:        Canary\n  \
               Step:          1/4\n  \
               SetWeight:     20\n  \
               ActualWeight:  50\n\
             Images:          web:1 (stable)\n                 \
                              web:2 (canary)\n\
             Replicas:\n  \
               Desired:       2\n  \
               Current:       2\n  \
               Updated:       1\n  \
               Ready:         2\n  \
               Available:     2",
            env.ns.name()
        )
    );
    assert_eq!(
        masked_tree(output),
        [
            "NAME | KIND | STATUS | AGE | INFO",
            "⟳ guestbook | Rollout | ॥ Paused | <age>",
            "├──# revision:2",
            "│  └──⧉ guestbook-c2 | ReplicaSet | ✔ Healthy | <age> | canary",
            "│     └──□ guestbook-c2-<pod> | Pod | ✔ Running | <age> | ready:1/1",
            "└──# revision:1",
            "   └──⧉ guestbook-s1 | ReplicaSet | ✔ Healthy | <age> | stable",
            "      └──□ guestbook-s1-<pod> | Pod | ✔ Running | <age> | ready:1/1",
        ]
    );
}

/// Runs `sluice get KIND NAME -w` for 6 s, makes `change` 2 s in, and returns the run.
async fn watched(
    env: &Env,
    kind: &str,
    name: &str,
    change: impl std::future::Future<Output = ()>,
) -> Run {
    let child = sluice_command(&[
        "get",
        kind,
        name,
        "-w",
        "--timeout-seconds",
        "6",
        "-n",
        env.ns.name(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("sluice starts");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    change.await;
    Run::from(
        tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("joined")
            .expect("sluice ran"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_rollout_watch_renders_again_on_changes() {
    let env = Env::new("get-watch").await;
    env.canary(
        "guestbook",
        json!({}),
        json!({"phase": "Progressing", "observedGeneration": "1",
        "message": "more replicas need to be updated"}),
    )
    .await;
    let run = watched(&env, "rollout", "guestbook", async {
        env.rollouts()
            .patch_status(
                "guestbook",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Healthy", "message": ""}})),
            )
            .await
            .expect("status written");
    })
    .await;
    let output = run.success();
    let first = output
        .find("Status:          ◌ Progressing")
        .expect("first render");
    let later = output
        .find("Status:          ✔ Healthy")
        .expect("render after the change");
    assert!(first < later, "{output}");
    assert!(
        output.matches("Name:            guestbook").count() >= 2,
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_experiment_watch_renders_again_on_changes() {
    let env = Env::new("get-exp-watch").await;
    let experiment = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "trial"},
        "spec": {"templates": [{"name": "baseline", "selector": {"matchLabels": {"app": "trial"}},
            "template": {"metadata": {"labels": {"app": "trial"}},
                         "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}]}
    });
    env.create_with_status(&env.experiments(), experiment, json!({"phase": "Running"}))
        .await;
    let run = watched(&env, "experiment", "trial", async {
        env.experiments()
            .patch_status(
                "trial",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Failed", "message": "baseline failed"}})),
            )
            .await
            .expect("status written");
    })
    .await;
    let output = run.success();
    let first = output
        .find("Status:          ◌ Running")
        .expect("first render");
    let later = output
        .find("Status:          ✖ Failed\nMessage:         baseline failed")
        .expect("render after the change");
    assert!(first < later, "{output}");
    assert!(
        output.matches("Name:            trial").count() >= 2,
        "{output}"
    );
    assert!(
        output.contains("Σ trial") && output.contains("Experiment"),
        "the tree below the header: {output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_rollouts_prints_argos_table() {
    let env = Env::new("list").await;
    env.canary("guestbook", json!({"replicas": 3}), json!({"phase": "Paused", "observedGeneration": "1",
        "currentStepIndex": 1, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3})).await;
    env.canary(
        "api",
        json!({}),
        json!({"phase": "Healthy", "observedGeneration": "1", "currentStepIndex": 4,
        "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}),
    )
    .await;
    let run = env.sluice(&["list", "rollouts"]);
    assert_eq!(
        run.success(),
        "NAME        STRATEGY   STATUS        STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  AVAILABLE\n\
         api         Canary     Healthy       4/4   100         1/1    1        1           1\n\
         guestbook   Canary     Paused        1/4   20          3/3    3        1           3\n"
    );
    let run = env.sluice(&["list", "rollouts", "-A"]);
    let output = run.success();
    let header: Vec<&str> = output
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header[..2], ["NAMESPACE", "NAME"], "{output}");
    let namespace = env.ns.name();
    assert!(
        output
            .lines()
            .any(|line| line.starts_with(namespace) && line.contains("  guestbook  ")),
        "{output}"
    );

    let empty = Env::new("list-empty").await;
    let run = empty.sluice(&["list", "rollouts"]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!("No rollouts found in namespace \"{}\".\n", empty.ns.name())
    );
}

#[test]
fn as_kubectl_sluice_the_help_says_kubectl_sluice() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let plugin = dir.path().join("kubectl-sluice");
    std::fs::copy(env!("CARGO_BIN_EXE_sluice"), &plugin).expect("copied");
    let output = std::process::Command::new(&plugin)
        .args(["promote", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("Usage: kubectl sluice promote [OPTIONS] <ROLLOUT>"),
        "{help}"
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["promote", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("Usage: sluice promote [OPTIONS] <ROLLOUT>"),
        "{help}"
    );
}
