//! Connecting to the cluster as kubectl does: the kubeconfig from `--kubeconfig` or
//! `KUBECONFIG` (else `~/.kube/config`, else the in-cluster service account), `--context`, and
//! the namespace from `-n` or the context.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

/// Flags choosing the cluster and namespace, shared by every command that talks to a cluster.
#[derive(Args, Clone, Debug, Default)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: `$KUBECONFIG`, else `~/.kube/config`).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, value_name = "NAME")]
    pub namespace: Option<String>,
}

/// A client and the namespace commands operate in.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    pub namespace: String,
}

/// Connects as kubectl would with the same flags and environment.
pub async fn connect(args: &ClusterArgs) -> anyhow::Result<Cluster> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        None => match Kubeconfig::read() {
            Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &options).await?,
            Err(read_error) if args.context.is_none() => Config::incluster().map_err(|_| {
                anyhow::anyhow!(
                    "no usable kubeconfig ({read_error}); set KUBECONFIG or pass --kubeconfig"
                )
            })?,
            Err(read_error) => return Err(read_error).context("reading the kubeconfig"),
        },
    };
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).context("creating the Kubernetes client")?;
    Ok(Cluster { client, namespace })
}
