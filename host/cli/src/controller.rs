//! `sluice controller`: runs the Rollout and AnalysisRun reconcilers, with `/metrics` and
//! `/healthz`/`/readyz` served over plain HTTP, until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use prometheus_client::registry::Registry;
use sluice_controller::{
    ControllerOptions, LeaderElection, PluginConfigMap, RateLimitLayer, SluiceController,
    rate_limit,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Flags named as Argo Rollouts' controller names them.
#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// Watch only the controller's own namespace (`--namespace`, else `POD_NAMESPACE`, else the
    /// kubeconfig's namespace) instead of every namespace.
    #[arg(long)]
    namespaced: bool,
    /// The controller's namespace: where the plugin ConfigMap lives, and the only namespace
    /// watched with `--namespaced`.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// Only handle objects labelled `argo-rollouts.argoproj.io/controller-instance-id=<id>`.
    #[arg(long)]
    instance_id: Option<String>,
    /// Kubeconfig file (default: in-cluster configuration, else `KUBECONFIG`/`~/.kube/config`).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Maximum queries per second to the Kubernetes API server, on average (client-side rate
    /// limit; every request and every watch opened takes a token).
    #[arg(long, default_value_t = rate_limit::DEFAULT_QPS)]
    qps: f32,
    /// Maximum burst of requests to the Kubernetes API server above `--qps`.
    #[arg(long, default_value_t = rate_limit::DEFAULT_BURST)]
    burst: u32,
    /// Port of `/metrics`.
    #[arg(
        long = "metrics-port",
        alias = "metricsPort",
        alias = "metricsport",
        default_value_t = 8090
    )]
    metrics_port: u16,
    /// Port of `/healthz` and `/readyz`.
    #[arg(long = "healthz-port", alias = "healthzPort", default_value_t = 8080)]
    healthz_port: u16,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`) or a tracing filter.
    #[arg(long, default_value = "info")]
    loglevel: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    logformat: LogFormat,
    /// Name of the plugin ConfigMap in the controller's namespace, re-read on every change.
    #[arg(long, default_value = "argo-rollouts-config")]
    plugin_configmap: String,
    /// Elect a leader among replicas on the Lease `argo-rollouts-controller-lock` in the
    /// controller's namespace; only the leader reconciles.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// How long a lease that is not renewed keeps other replicas out.
    #[arg(long, default_value = "15s", value_parser = go_duration)]
    leader_election_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    #[arg(long, default_value = "10s", value_parser = go_duration)]
    leader_election_renew_deadline: Duration,
    /// How often replicas retry to take the lease and the leader renews it.
    #[arg(long, default_value = "2s", value_parser = go_duration)]
    leader_election_retry_period: Duration,
}

fn go_duration(text: &str) -> Result<Duration, String> {
    sluice_api::duration::parse_go_duration(text).map_err(|error| error.to_string())
}

/// This replica's identity in the leader election: the host (pod) name and the process id.
fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "sluice".to_string());
    format!("{host}_{}", std::process::id())
}

/// How logs are written.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub fn run(args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    init_logging(args)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

fn init_logging(args: &ControllerArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.loglevel)
        .with_context(|| format!("invalid --loglevel {:?}", args.loglevel))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match args.logformat {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("installing the logger: {error}"))
}

async fn client_config(args: &ControllerArgs) -> anyhow::Result<kube::Config> {
    match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?)
        }
        None => Ok(kube::Config::infer().await?),
    }
}

async fn serve(args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    let config = client_config(args).await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let rate_limit = RateLimitLayer::new(args.qps, args.burst).context("--qps/--burst")?;
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&rate_limit)
        .build();
    let options = ControllerOptions {
        namespace: args.namespaced.then(|| namespace.clone()),
        instance_id: args.instance_id.clone(),
        plugin_config: Some(PluginConfigMap {
            namespace: namespace.clone(),
            name: args.plugin_configmap.clone(),
        }),
        builtins: sluice_builtins::components(),
        default_plugins: sluice_builtins::default_plugin_config(),
        leader_election: args.leader_elect.then(|| LeaderElection {
            lease_duration: args.leader_election_lease_duration,
            renew_deadline: args.leader_election_renew_deadline,
            retry_period: args.leader_election_retry_period,
            ..LeaderElection::new(namespace.clone(), identity())
        }),
        ..ControllerOptions::default()
    };
    let mut registry = Registry::default();
    let controller = SluiceController::new(client, options, &mut registry)?;
    let ready = controller.readiness();
    let registry = Arc::new(registry);

    let metrics = TcpListener::bind(("0.0.0.0", args.metrics_port))
        .await
        .with_context(|| format!("listening on port {}", args.metrics_port))?;
    let health = TcpListener::bind(("0.0.0.0", args.healthz_port))
        .await
        .with_context(|| format!("listening on port {}", args.healthz_port))?;
    let metrics_server = tokio::spawn(serve_http(metrics, registry.clone(), ready.clone()));
    let health_server = tokio::spawn(serve_http(health, registry, ready));
    tracing::info!(
        metrics_port = args.metrics_port,
        healthz_port = args.healthz_port,
        namespaced = args.namespaced,
        qps = args.qps,
        burst = args.burst,
        %namespace,
        "sluice controller starting"
    );
    controller.run(shutdown_signal()).await?;
    metrics_server.abort();
    health_server.abort();
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        () = terminate => tracing::info!("SIGTERM; shutting down"),
    }
}

/// A minimal HTTP/1.1 server for three read-only endpoints: `/metrics` (OpenMetrics text),
/// `/healthz` (always 200 while the process serves) and `/readyz` (200 once the caches synced).
async fn serve_http(listener: TcpListener, registry: Arc<Registry>, ready: Arc<AtomicBool>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let registry = registry.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let mut request = Vec::with_capacity(1024);
            let mut buffer = [0_u8; 1024];
            while !request.windows(4).any(|window| window == b"\r\n\r\n")
                && request.len() < 16 * 1024
            {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            let request = String::from_utf8_lossy(&request);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, content_type, body) = respond(path, &registry, &ready);
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _closed = stream.write_all(response.as_bytes()).await;
        });
    }
}

fn respond(
    path: &str,
    registry: &Registry,
    ready: &AtomicBool,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        "/metrics" => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(error) => ("500 Internal Server Error", TEXT, error.to_string()),
            }
        }
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" if ready.load(Ordering::Acquire) => ("200 OK", TEXT, "ready\n".into()),
        "/readyz" => (
            "503 Service Unavailable",
            TEXT,
            "caches not synced\n".into(),
        ),
        _ => ("404 Not Found", TEXT, "not found\n".into()),
    }
}
