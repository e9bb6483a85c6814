//! promote, abort, retry, pause, restart, undo, set image and terminate.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::support::{Env, merged, stable_fields};

const PAUSE_STEP: &str = r#"{"reason": "CanaryPauseStep", "startTime": "2025-03-01T11:58:00Z"}"#;

fn pause_conditions(reason: &str) -> Value {
    let mut condition: Value = serde_json::from_str(PAUSE_STEP).expect("json");
    condition["reason"] = json!(reason);
    json!([condition])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_clears_the_pause_conditions_of_a_pause_step() {
    let env = Env::new("promote-b").await;
    let before = env
        .canary(
            "guestbook",
            json!({}),
            json!({"currentStepIndex": 1, "controllerPause": true,
            "pauseConditions": pause_conditions("CanaryPauseStep")}),
        )
        .await;
    let run = env.sluice(&["promote", "guestbook"]);
    assert_eq!(run.success(), "rollout 'guestbook' promoted\n");
    let after = env.read(&env.rollouts(), "guestbook").await;
    assert_eq!(
        after,
        merged(&before, json!({"status": {"pauseConditions": null}}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_resumes_a_user_pause_and_skips_a_running_analysis_step() {
    let env = Env::new("promote-c").await;
    let before = env
        .canary(
            "guestbook",
            json!({"paused": true}),
            json!({"currentStepIndex": 2}),
        )
        .await;
    let run = env.sluice(&["promote", "guestbook"]);
    assert_eq!(run.success(), "rollout 'guestbook' promoted\n");
    let after = env.read(&env.rollouts(), "guestbook").await;
    assert_eq!(
        after,
        merged(
            &before,
            json!({"spec": {"paused": null}, "status": {"currentStepIndex": 3}})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_moves_past_an_inconclusive_analysis() {
    let env = Env::new("promote-a").await;
    let before = env
        .canary("guestbook", json!({}), json!({
            "currentStepIndex": 2, "controllerPause": true,
            "pauseConditions": pause_conditions("InconclusiveAnalysisRun"),
            "canary": {"currentStepAnalysisRunStatus": {"name": "guestbook-2", "status": "Inconclusive"}}
        }))
        .await;
    env.sluice(&["promote", "guestbook"]).success();
    let after = env.read(&env.rollouts(), "guestbook").await;
    assert_eq!(
        after,
        merged(
            &before,
            json!({"status": {"pauseConditions": null, "controllerPause": null, "currentStepIndex": 3}})
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_full_sets_promote_full_unless_already_promoted() {
    let env = Env::new("promote-full").await;
    let updating = env
        .canary(
            "updating",
            json!({}),
            json!({"currentPodHash": "def456", "stableRS": "abc123"}),
        )
        .await;
    let promoted = env
        .canary(
            "promoted",
            json!({}),
            json!({"currentPodHash": "abc123", "stableRS": "abc123"}),
        )
        .await;
    let run = env.sluice(&["promote", "updating", "--full"]);
    assert_eq!(run.success(), "rollout 'updating' fully promoted\n");
    assert_eq!(
        env.read(&env.rollouts(), "updating").await,
        merged(&updating, json!({"status": {"promoteFull": true}}))
    );
    let run = env.sluice(&["promote", "promoted", "--full"]);
    assert_eq!(
        run.success(),
        "rollout 'promoted' is already fully promoted (its desired revision is the stable one); nothing sent\n"
    );
    assert_eq!(env.read(&env.rollouts(), "promoted").await, promoted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_then_retry_toggle_status_abort() {
    let env = Env::new("abort-retry").await;
    let before = env
        .canary("guestbook", json!({}), json!({"currentStepIndex": 1}))
        .await;
    assert_eq!(
        env.sluice(&["abort", "guestbook"]).success(),
        "rollout 'guestbook' aborted\n"
    );
    let aborted = env.read(&env.rollouts(), "guestbook").await;
    assert_eq!(aborted, merged(&before, json!({"status": {"abort": true}})));
    assert_eq!(
        env.sluice(&["retry", "rollout", "guestbook"]).success(),
        "rollout 'guestbook' retried\n"
    );
    assert_eq!(env.read(&env.rollouts(), "guestbook").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_restart_patch_the_spec() {
    let env = Env::new("pause-restart").await;
    let before = env
        .canary("guestbook", json!({}), json!({"currentStepIndex": 1}))
        .await;
    assert_eq!(
        env.sluice(&["pause", "guestbook"]).success(),
        "rollout 'guestbook' paused\n"
    );
    let paused = env.read(&env.rollouts(), "guestbook").await;
    assert_eq!(paused, merged(&before, json!({"spec": {"paused": true}})));

    let earliest = Timestamp::now().as_second() + 3600;
    assert_eq!(
        env.sluice(&["restart", "guestbook", "--in", "1h"])
            .success(),
        "rollout 'guestbook' restarts in 1h\n"
    );
    let latest = Timestamp::now().as_second() + 3600;
    let restarted = env.read(&env.rollouts(), "guestbook").await;
    let restart_at = restarted["spec"]["restartAt"]
        .as_str()
        .expect("restartAt is set");
    let at: Timestamp = restart_at.parse().expect("RFC 3339");
    assert!(
        (earliest..=latest).contains(&at.as_second()),
        "{restart_at}"
    );
    assert!(
        restart_at.ends_with('Z') && !restart_at.contains('.'),
        "{restart_at}"
    );
    assert_eq!(
        restarted,
        merged(&paused, json!({"spec": {"restartAt": restart_at}}))
    );
}

fn replica_set(rollout: &Value, hash: &str, revision: i64, image: &str) -> Value {
    let name = rollout["metadata"]["name"].as_str().expect("named");
    let labels = json!({"app": name, "rollouts-pod-template-hash": hash});
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{name}-{hash}"),
            "labels": labels,
            "annotations": {"rollout.argoproj.io/revision": revision.to_string()},
            "ownerReferences": [{
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": name,
                "uid": rollout["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": image}, {"name": "proxy", "image": "proxy:1"}]}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_restores_the_previous_revisions_template() {
    let env = Env::new("undo").await;
    let before = env.canary("guestbook", json!({}), Value::Null).await;
    for (hash, revision, image) in [("h1", 1, "web:0"), ("h2", 2, "web:0.5"), ("h3", 3, "web:1")] {
        env.create_with_status(
            &env.replica_sets(),
            replica_set(&before, hash, revision, image),
            Value::Null,
        )
        .await;
    }
    let run = env.sluice(&["undo", "guestbook"]);
    assert_eq!(
        run.success(),
        "rollout 'guestbook' undo (template of revision 2 restored)\n"
    );
    // The template as the API server stored it in ReplicaSet revision 2 (with its defaults),
    // without the pod-template-hash label.
    let mut template =
        env.read(&env.replica_sets(), "guestbook-h2").await["spec"]["template"].clone();
    template["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("rollouts-pod-template-hash");
    assert_eq!(template["spec"]["containers"][0]["image"], "web:0.5");
    let after = env.read(&env.rollouts(), "guestbook").await;
    let mut expected = before.clone();
    expected["spec"]["template"] = template;
    assert_eq!(after["spec"], expected["spec"]);
    assert_eq!(after, expected);

    let run = env.sluice(&["undo", "guestbook", "--to-revision", "2"]);
    assert_eq!(
        run.success(),
        "skipped rollback (current template already matches revision 2)\n"
    );
    let run = env.sluice(&["undo", "guestbook", "--to-revision", "7"]);
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr,
        "error: unable to find specified revision 7 in history; `sluice get rollout` lists the revisions\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_updates_one_or_all_containers() {
    let env = Env::new("set-image").await;
    let before = env
        .canary("guestbook", json!({}), json!({"currentStepIndex": 1}))
        .await;
    let run = env.sluice(&["set", "image", "guestbook", "web=web:2"]);
    assert_eq!(run.success(), "rollout \"guestbook\" image updated\n");
    let after = env.read(&env.rollouts(), "guestbook").await;
    let mut expected = before.clone();
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    assert_eq!(after, expected);

    env.sluice(&["set", "image", "guestbook", "*=debug:1"])
        .success();
    let after = env.read(&env.rollouts(), "guestbook").await;
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("debug:1");
    expected["spec"]["template"]["spec"]["containers"][1]["image"] = json!("debug:1");
    assert_eq!(after, expected);

    let run = env.sluice(&["set", "image", "guestbook", "wbe=web:3"]);
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr,
        "error: unable to find container named \"wbe\"; the containers are web, proxy, or use `*` for all of them\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_and_retry_analysis_runs_and_experiments() {
    let env = Env::new("terminate").await;
    let run_object = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "guestbook-2-success-rate"},
        "spec": {"metrics": [{"name": "success-rate", "provider": {"web": {"url": "http://127.0.0.1:1/"}}}]}
    });
    let analysis = env
        .create_with_status(
            &env.analysis_runs(),
            run_object,
            json!({"phase": "Running"}),
        )
        .await;
    let experiment_object = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "guestbook-exp"},
        "spec": {"templates": [{"name": "baseline", "selector": {"matchLabels": {"app": "exp"}},
            "template": {"metadata": {"labels": {"app": "exp"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}]}
    });
    let experiment = env
        .create_with_status(
            &env.experiments(),
            experiment_object,
            json!({"phase": "Failed", "message": "baseline failed"}),
        )
        .await;

    let run = env.sluice(&["terminate", "analysisrun", "guestbook-2-success-rate"]);
    assert_eq!(
        run.success(),
        "analysisRun 'guestbook-2-success-rate' terminated\n"
    );
    assert_eq!(
        env.read(&env.analysis_runs(), "guestbook-2-success-rate")
            .await,
        merged(&analysis, json!({"spec": {"terminate": true}}))
    );

    let run = env.sluice(&["retry", "experiment", "guestbook-exp"]);
    assert_eq!(run.success(), "experiment 'guestbook-exp' retried\n");
    let retried = env.read(&env.experiments(), "guestbook-exp").await;
    assert_eq!(retried, merged(&experiment, json!({"status": null})));

    let run = env.sluice(&["terminate", "experiment", "guestbook-exp"]);
    assert_eq!(run.success(), "experiment 'guestbook-exp' terminated\n");
    assert_eq!(
        env.read(&env.experiments(), "guestbook-exp").await,
        merged(&retried, json!({"spec": {"terminate": true}}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_rollout_gets_a_suggestion_and_nothing_is_written() {
    let env = Env::new("not-found").await;
    let before = env
        .canary("guestbook", json!({}), json!({"currentStepIndex": 1}))
        .await;
    for command in [
        vec!["promote", "guestbok"],
        vec!["abort", "guestbok"],
        vec!["get", "rollout", "guestbok"],
        vec!["status", "guestbok"],
    ] {
        let run = env.sluice(&command);
        assert_eq!(run.code, Some(2), "{command:?}: {run:#?}");
        assert_eq!(run.stdout, "", "{command:?}");
        assert_eq!(
            run.stderr,
            format!(
                "error: rollout \"guestbok\" not found in namespace \"{}\"; did you mean \"guestbook\"?\n",
                env.ns.name()
            ),
            "{command:?}"
        );
    }
    let run = env.sluice(&["terminate", "analysisrun", "nothing-here"]);
    assert_eq!(
        run.stderr,
        format!(
            "error: analysisrun \"nothing-here\" not found in namespace \"{}\" (there is no AnalysisRun in it; use -n to pick another namespace)\n",
            env.ns.name()
        )
    );
    assert_eq!(
        stable_fields(env.read(&env.rollouts(), "guestbook").await),
        before
    );
}
