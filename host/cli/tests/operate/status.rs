//! `status`: exit codes for Healthy, Degraded, paused by the user, not finished, and timeout.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support::{Env, Run, sluice_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exit_codes_follow_the_phase() {
    let env = Env::new("status-codes").await;
    env.canary(
        "healthy",
        json!({}),
        json!({"phase": "Healthy", "observedGeneration": "1"}),
    )
    .await;
    env.canary(
        "degraded",
        json!({}),
        json!({"phase": "Degraded", "observedGeneration": "1",
        "message": "RolloutAborted: Rollout aborted update to revision 2"}),
    )
    .await;
    env.canary(
        "paused",
        json!({"paused": true}),
        json!({"phase": "Paused", "observedGeneration": "1",
        "message": "manually paused"}),
    )
    .await;
    env.canary(
        "progressing",
        json!({}),
        json!({"phase": "Progressing", "observedGeneration": "1",
        "message": "more replicas need to be updated"}),
    )
    .await;

    let run = env.sluice(&["status", "healthy"]);
    assert_eq!(run.success(), "Healthy\n");

    let run = env.sluice(&["status", "degraded"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(
        run.stdout,
        "Degraded - RolloutAborted: Rollout aborted update to revision 2\n"
    );
    assert_eq!(
        run.stderr,
        "error: the rollout is in a degraded state with message: RolloutAborted: Rollout aborted update to revision 2\n"
    );

    let run = env.sluice(&["status", "paused", "-t", "30s"]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert_eq!(run.stdout, "Paused - manually paused\n");
    assert_eq!(
        run.stderr,
        "rollout 'paused' is paused by the user: `sluice promote paused` resumes it\n"
    );

    let run = env.sluice(&["status", "progressing", "--watch=false"]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert_eq!(
        run.stdout,
        "Progressing - more replicas need to be updated\n"
    );

    let run = env.sluice(&["status", "progressing", "--timeout", "2s"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert_eq!(
        run.stdout,
        "Progressing - more replicas need to be updated\n"
    );
    assert_eq!(
        run.stderr,
        "error: rollout status watch exceeded timeout (2s)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watches_until_healthy() {
    let env = Env::new("status-watch").await;
    env.canary(
        "guestbook",
        json!({}),
        json!({"phase": "Progressing", "observedGeneration": "1",
        "message": "more replicas need to be updated"}),
    )
    .await;
    let mut command = sluice_command(&[
        "status",
        "guestbook",
        "-w",
        "-t",
        "60s",
        "-n",
        env.ns.name(),
    ]);
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sluice starts");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rollouts = env.rollouts();
    for (phase, message) in [
        (
            "Progressing",
            "updated replicas are still becoming available",
        ),
        ("Healthy", ""),
    ] {
        rollouts
            .patch_status(
                "guestbook",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": phase, "message": message}})),
            )
            .await
            .expect("status written");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let run = Run::from(
        tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("joined")
            .expect("sluice ran"),
    );
    assert_eq!(
        run.success(),
        "Progressing - more replicas need to be updated\n\
         Progressing - updated replicas are still becoming available\n\
         Healthy\n"
    );
}
