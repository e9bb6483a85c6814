//! `sluice controller` as a process against the local control plane: it becomes ready, brings a
//! Rollout to Healthy, serves its metrics, and exits 0 on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use sluice_api::rollout::Rollout;
use sluice_localcluster::LocalCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Kills the controller process if the test fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _already_exited = self.0.kill();
        let _reaped = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// `GET path` on 127.0.0.1:port: (status line, body); `None` while nothing listens.
async fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_process_reconciles_serves_metrics_and_stops_on_sigterm()
-> anyhow::Result<()> {
    let cluster = LocalCluster::shared();
    let ns = cluster.namespace("cli-controller").await?;
    let namespace = ns.name().to_string();
    let (metrics_port, health_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "controller",
            "--namespaced",
            "--namespace",
            &namespace,
            "--kubeconfig",
        ])
        .arg(cluster.kubeconfig_path())
        .args(["--metrics-port", &metrics_port.to_string()])
        .args(["--healthz-port", &health_port.to_string()])
        .args(["--loglevel", "warn"])
        // below the defaults (40/80): the start-up lists and watches already wait for tokens
        .args(["--qps", "5", "--burst", "4"])
        .stdout(Stdio::null())
        .spawn()?;
    let mut child = KillOnDrop(child);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the controller never became ready"
        );
        if let Some((status, _)) = get(health_port, "/readyz").await
            && status.contains("200")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = get(health_port, "/healthz").await.expect("healthz answers");
    assert!(status.contains("200"), "{status}");

    // An empty plugin ConfigMap is picked up without a restart; a Rollout reaches Healthy.
    let config_map: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argo-rollouts-config"}, "data": {},
    }))?;
    Api::<ConfigMap>::namespaced(ns.client(), &namespace)
        .create(&PostParams::default(), &config_map)
        .await?;
    let rollout: Rollout = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        },
    }))?;
    let rollouts = Api::<Rollout>::namespaced(ns.client(), &namespace);
    rollouts.create(&PostParams::default(), &rollout).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the Rollout never became Healthy"
        );
        let status = rollouts.get("web").await?.status.unwrap_or_default();
        if status.phase.map(|phase| phase.as_str()) == Some("Healthy") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, body) = get(metrics_port, "/metrics").await.expect("metrics answer");
    assert!(status.contains("200"), "{status}");
    let info = format!(
        "rollout_info{{namespace=\"{namespace}\",name=\"web\",strategy=\"canary\",traffic_router=\"\",phase=\"Healthy\"}} 1"
    );
    assert!(
        body.contains(&info),
        "rollout_info for the Rollout in:\n{body}"
    );
    assert!(
        body.contains("rollout_reconcile_bucket"),
        "reconcile histogram in:\n{body}"
    );

    let terminated = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()?;
    assert!(terminated.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.0.try_wait()? {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the controller did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit}");

    // It led through the Lease (leader election is on by default) and released it on SIGTERM.
    let lease = Api::<Lease>::namespaced(ns.client(), &namespace)
        .get("argo-rollouts-controller-lock")
        .await?;
    let spec = lease.spec.unwrap_or_default();
    assert_eq!(spec.holder_identity, None, "{spec:?}");
    assert_eq!(spec.lease_transitions, Some(0), "{spec:?}");
    Ok(())
}
