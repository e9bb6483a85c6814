//! The cluster itself: kubeconfig, simulated Node, and cleanup of a private cluster on drop.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use sluice_localcluster::{LocalCluster, Options};

use crate::support::cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_file_reaches_the_cluster_and_the_simulated_node_is_ready() -> anyhow::Result<()>
{
    let kubeconfig = Kubeconfig::read_from(cluster().kubeconfig_path())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    ensure!(
        config.cluster_url.host() == Some("127.0.0.1"),
        "{}",
        config.cluster_url
    );
    let client = kube::Client::try_from(config)?;
    let version = client.apiserver_version().await?;
    ensure!(version.git_version == "v1.20.2", "{version:?}");

    let nodes: Api<Node> = Api::all(client);
    let node_name = cluster().node_name().context("simulated kubelet runs")?;
    let node = nodes.get(node_name).await?;
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    ensure!(ready, "{:?}", node.status);
    ensure!(nodes.list(&ListParams::default()).await?.items.len() == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_cluster_stops_and_cleans_up_on_drop() -> anyhow::Result<()> {
    let private = LocalCluster::start_with(Options {
        crd_dirs: Vec::new(),
        kubelet: None,
        ..Options::default()
    })
    .await?;
    let client = private.client()?;
    ensure!(client.apiserver_version().await?.git_version == "v1.20.2");
    ensure!(
        private.server_url() != cluster().server_url(),
        "clusters are separate"
    );
    let dir = private.dir().to_path_buf();
    let port = private.config().cluster_url.port_u16().context("port")?;
    ensure!(dir.join("kubeconfig").is_file() && private.log_paths().iter().all(|p| p.is_file()));
    ensure!(private.log_tails(5).contains("kube-apiserver.log"));

    drop(client);
    drop(private);
    ensure!(!dir.exists(), "{} left behind", dir.display());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    ensure!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "kube-apiserver still listening on {addr}"
    );
    Ok(())
}
