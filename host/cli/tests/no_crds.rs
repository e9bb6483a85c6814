//! Against a cluster without Sluice's CRDs, every command says how to install them.

use sluice_localcluster::{LocalCluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_the_crds_gets_the_install_command() {
    let cluster = LocalCluster::start_with(Options {
        crd_dirs: Vec::new(),
        kubelet: None,
        ..Options::default()
    })
    .await
    .expect("a cluster without CRDs");
    let expected_rollout = "error: the Rollout CRD is not installed: run `sluice crds | kubectl apply --server-side -f -`\n";
    let cases: [(&[&str], &str); 5] = [
        (&["list", "rollouts"], expected_rollout),
        (&["get", "rollout", "guestbook"], expected_rollout),
        (&["promote", "guestbook"], expected_rollout),
        (&["status", "guestbook"], expected_rollout),
        (
            &["terminate", "analysisrun", "guestbook-1"],
            "error: the AnalysisRun CRD is not installed: run `sluice crds | kubectl apply --server-side -f -`\n",
        ),
    ];
    for (args, expected) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .args(["-n", "default"])
            .env("KUBECONFIG", cluster.kubeconfig_path())
            .output()
            .expect("sluice runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "", "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            expected,
            "{args:?}"
        );
    }
}
