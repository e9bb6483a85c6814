//! Starting, sharing and stopping a local control plane.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, GetParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::kubelet::{self, KubeletConfig};
use crate::process::{Supervised, Watchdog};
use crate::{Binaries, Error, crds, logs, pki};

/// Environment variable: when set to `1`, a cluster's directory (logs, etcd data, PKI,
/// kubeconfig) is kept after the cluster stops, and its path is logged.
pub const KEEP_DIR_ENV: &str = "SLUICE_LOCALCLUSTER_KEEP";

/// Lines of each log included in start-up errors.
const ERROR_TAIL_LINES: usize = 40;
/// Start-up attempts when a just-picked free port was taken by someone else meanwhile.
const START_ATTEMPTS: u32 = 3;
/// kube-controller-manager controllers that run: everything workloads, Services and garbage
/// collection need, and not the node-lifecycle controller (the simulated Node sends no heartbeats).
const CONTROLLERS: &str = "deployment,replicaset,replicationcontroller,statefulset,daemonset,job,\
cronjob,garbagecollector,endpoint,endpointslice,endpointslicemirroring,serviceaccount,\
serviceaccount-token,namespace,disruption,podgc,resourcequota,clusterrole-aggregation,\
root-ca-cert-publisher";

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static NAMESPACE_COUNTER: AtomicU64 = AtomicU64::new(0);
static SHARED: OnceLock<Result<LocalCluster, String>> = OnceLock::new();

/// How to start a [`LocalCluster`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Directories whose `*.yaml` CRDs are installed (and awaited) during start-up. Default:
    /// [`workspace_crd_dirs`](crate::workspace_crd_dirs) (`crds/` and `tests/crds/`).
    pub crd_dirs: Vec<PathBuf>,
    /// The simulated kubelet and scheduler; `None` runs none (Pods then stay Pending).
    pub kubelet: Option<KubeletConfig>,
    /// How long each start-up phase (etcd, apiserver, controller-manager) may take.
    pub startup_timeout: Duration,
    /// The binaries to run; `None` locates them with [`Binaries::locate`].
    pub binaries: Option<Binaries>,
    /// Keep the cluster directory after stopping (default: [`KEEP_DIR_ENV`] is `1`).
    pub keep_dir: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            crd_dirs: crds::workspace_crd_dirs(),
            kubelet: Some(KubeletConfig::default()),
            startup_timeout: Duration::from_secs(90),
            binaries: None,
            keep_dir: std::env::var(KEEP_DIR_ENV).is_ok_and(|v| v == "1"),
        }
    }
}

/// A running etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, plus the simulated
/// kubelet and scheduler. Everything is stopped when it is dropped (also while unwinding from a
/// panic); if the process dies without dropping it (a `static`, a kill), a watchdog process stops
/// the control plane and removes its directory.
pub struct LocalCluster {
    id: u64,
    config: kube::Config,
    kubeconfig: PathBuf,
    dir: PathBuf,
    logs: Vec<PathBuf>,
    node_name: Option<String>,
    /// Runs the simulated kubelet; shut down first on drop.
    runtime: Option<tokio::runtime::Runtime>,
    /// In stopping order: controller-manager, apiserver, etcd.
    processes: Vec<Supervised>,
    /// Held for its drop: disarmed after the processes are stopped.
    _watchdog: Watchdog,
    /// Held for its drop, which removes the directory; `None` when it is kept.
    _tempdir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("server", &self.config.cluster_url.to_string())
            .field("kubeconfig", &self.kubeconfig)
            .field("dir", &self.dir)
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl LocalCluster {
    /// Starts a cluster with default [`Options`]: the workspace's CRDs installed, the simulated
    /// kubelet running. Takes a few seconds.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Options::default()).await
    }

    /// Starts a cluster with the given options.
    pub async fn start_with(options: Options) -> Result<Self, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("sluice-localcluster-start".to_owned())
            .spawn(move || {
                // The receiver is gone only if the caller stopped waiting: the cluster is dropped.
                let _ = tx.send(Self::start_blocking(options));
            })
            .map_err(Error::io("spawning the start-up thread"))?;
        rx.await.map_err(|_| Error::Startup {
            message: "the start-up thread panicked".to_owned(),
            logs: String::new(),
        })?
    }

    /// Starts a cluster, blocking the calling thread; usable inside or outside a Tokio runtime.
    pub fn start_blocking(options: Options) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sluice-localcluster")
            .enable_all()
            .build()
            .map_err(Error::io("building the cluster's Tokio runtime"))?;
        // block_on must not run on a thread that is already inside a runtime.
        let result = std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(Self::boot(options)))
                .join()
                .unwrap_or_else(|_| {
                    Err(Error::Startup {
                        message: "the start-up thread panicked".to_owned(),
                        logs: String::new(),
                    })
                })
        });
        match result {
            Ok(mut cluster) => {
                cluster.runtime = Some(runtime);
                Ok(cluster)
            }
            Err(e) => {
                runtime.shutdown_background();
                Err(e)
            }
        }
    }

    /// The cluster shared by every test of this process, started on first use with default
    /// [`Options`] and stopped by the watchdog when the process exits.
    ///
    /// # Panics
    ///
    /// If the cluster cannot be started (for example because `tests/cluster/build.sh` has not been
    /// run); every caller gets the same message.
    pub fn shared() -> &'static LocalCluster {
        let cluster = SHARED
            .get_or_init(|| Self::start_blocking(Options::default()).map_err(|e| e.to_string()));
        match cluster {
            Ok(cluster) => cluster,
            Err(message) => panic!("starting the local Kubernetes cluster failed: {message}"),
        }
    }

    async fn boot(options: Options) -> Result<Self, Error> {
        let binaries = match options.binaries.clone() {
            Some(binaries) => binaries,
            None => Binaries::locate()?,
        };
        let tempdir = tempfile::Builder::new()
            .prefix("sluice-localcluster-")
            .tempdir_in(scratch_root())
            .map_err(Error::io("creating the cluster directory"))?;
        let dir = tempdir.path().to_path_buf();
        let mut watchdog = Watchdog::start((!options.keep_dir).then_some(dir.as_path()))?;
        let tempdir = if options.keep_dir {
            tracing::info!(dir = %dir.display(), "keeping the local cluster directory");
            // Kept on purpose: the directory outlives the cluster.
            let _kept = tempdir.keep();
            None
        } else {
            Some(tempdir)
        };
        let pki = pki::generate(&dir)?;
        let logs = vec![
            dir.join("etcd.log"),
            dir.join("kube-apiserver.log"),
            dir.join("kube-controller-manager.log"),
        ];

        let mut attempt = 1;
        let (processes, port) = loop {
            match start_control_plane(
                &binaries,
                &dir,
                &pki,
                &logs,
                &mut watchdog,
                &options,
                attempt,
            )
            .await
            {
                Ok(started) => break started,
                Err(e) if attempt < START_ATTEMPTS && logs_mention_port_clash(&logs) => {
                    tracing::warn!(error = %e, attempt, "a port was taken meanwhile; retrying");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };

        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        logs::register(id, logs.clone());
        let kubeconfig = dir.join("kubeconfig");
        let config = load_config(&kubeconfig).await?;
        let mut cluster = Self {
            id,
            config,
            kubeconfig,
            dir,
            logs,
            node_name: options.kubelet.as_ref().map(|k| k.node_name.clone()),
            runtime: None,
            processes,
            _watchdog: watchdog,
            _tempdir: tempdir,
        };
        let client = cluster.client()?;
        cluster
            .wait_controller_manager(&client, options.startup_timeout)
            .await?;
        for dir in &options.crd_dirs {
            crds::install_crds_from_dir(&client, dir).await?;
        }
        if let Some(config) = options.kubelet {
            kubelet::register_node(&client, &config).await?;
            tokio::spawn(kubelet::simulate(client, config));
        }
        tracing::info!(server = %cluster.server_url(), kubeconfig = %cluster.kubeconfig.display(), port, "local cluster ready");
        Ok(cluster)
    }

    async fn wait_controller_manager(
        &mut self,
        client: &Client,
        timeout: Duration,
    ) -> Result<(), Error> {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.processes.iter_mut().find_map(Supervised::exited) {
                return Err(self.startup_error(exit));
            }
            if let Ok(Some(_)) = accounts.get_opt("default").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.startup_error(format!(
                    "kube-controller-manager did not create the default ServiceAccount within {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn startup_error(&self, message: String) -> Error {
        Error::Startup {
            message,
            logs: logs::tails(&self.logs, ERROR_TAIL_LINES),
        }
    }

    /// A new client for the cluster (admin, `system:masters`). A kube client belongs to the Tokio
    /// runtime it is created on, so call this from the runtime that will use the client (each
    /// `#[tokio::test]` has its own); it panics outside a runtime.
    pub fn client(&self) -> Result<Client, Error> {
        Client::try_from(self.config.clone()).map_err(Error::kube("creating a client"))
    }

    /// The client configuration (server URL, CA, admin certificate).
    pub fn config(&self) -> &kube::Config {
        &self.config
    }

    /// Path of a kubeconfig for the cluster, for `kubectl --kubeconfig` and other tools.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        self.config.cluster_url.to_string()
    }

    /// The cluster's directory (PKI, kubeconfig, logs, etcd data).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log files of etcd, kube-apiserver and kube-controller-manager.
    pub fn log_paths(&self) -> &[PathBuf] {
        &self.logs
    }

    /// The last `lines` lines of each control-plane log.
    pub fn log_tails(&self, lines: usize) -> String {
        logs::tails(&self.logs, lines)
    }

    /// The simulated Node's name, if the simulated kubelet runs.
    pub fn node_name(&self) -> Option<&str> {
        self.node_name.as_deref()
    }

    /// Installs the CRDs of a directory's `*.yaml` files and waits until they are served.
    pub async fn install_crds(&self, dir: &Path) -> Result<Vec<String>, Error> {
        crds::install_crds_from_dir(&self.client()?, dir).await
    }

    /// Installs the CRDs of a YAML string and waits until they are served.
    pub async fn install_crd_yaml(&self, yaml: &str) -> Result<Vec<String>, Error> {
        crds::install_crd_yaml(&self.client()?, yaml).await
    }

    /// Creates a fresh namespace named `<prefix>-<n>-<suffix>` for one test.
    pub async fn namespace(&self, prefix: &str) -> Result<TestNamespace, Error> {
        let client = self.client()?;
        let name = namespace_name(prefix);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("sluice.dev/test-namespace".to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(Error::kube(format!("creating namespace {name}")))?;
        Ok(TestNamespace { name, client })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        logs::unregister(self.id);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        // Controller-manager first, etcd last; each is killed and reaped.
        self.processes.clear();
        // The watchdog is disarmed and the directory removed by their own drops, in field order.
    }
}

/// A namespace created for one test, with a client bound to the test's runtime.
#[derive(Clone)]
pub struct TestNamespace {
    name: String,
    client: Client,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client the namespace was created with.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An API for a namespaced resource in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// An API for a dynamically typed namespaced resource (for example a custom resource) in
    /// this namespace.
    pub fn dynamic_api(&self, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.name, resource)
    }
}

/// A DNS-1123 label: the sanitised prefix, a process-wide counter and a time-based suffix.
fn namespace_name(prefix: &str) -> String {
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    clean.truncate(40);
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "test" } else { clean };
    let n = NAMESPACE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{clean}-{n}-{:04x}", (nanos ^ std::process::id()) & 0xffff)
}

/// Where cluster directories go: `/dev/shm` when writable (etcd's fsyncs are then free), else the
/// system temp directory.
fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && tempfile::Builder::new()
            .prefix(".sluice-probe-")
            .tempfile_in(shm)
            .is_ok()
    {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A free TCP port on 127.0.0.1.
pub(crate) fn free_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(Error::io("finding a free loopback port"))
}

fn logs_mention_port_clash(logs: &[PathBuf]) -> bool {
    logs.iter().any(|log| {
        std::fs::read_to_string(log).is_ok_and(|text| text.contains("address already in use"))
    })
}

async fn load_config(kubeconfig: &Path) -> Result<kube::Config, Error> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
}

/// Starts etcd, kube-apiserver (waiting for `/readyz`) and kube-controller-manager; returns them
/// in stopping order, and the apiserver port.
async fn start_control_plane(
    binaries: &Binaries,
    dir: &Path,
    pki: &pki::Pki,
    logs: &[PathBuf],
    watchdog: &mut Watchdog,
    options: &Options,
    attempt: u32,
) -> Result<(Vec<Supervised>, u16), Error> {
    let fail = |message: String| Error::Startup {
        message,
        logs: logs::tails(logs, ERROR_TAIL_LINES),
    };
    let (etcd_client, etcd_peer, apiserver_port) = (free_port()?, free_port()?, free_port()?);
    let etcd_url = format!("http://127.0.0.1:{etcd_client}");
    let peer_url = format!("http://127.0.0.1:{etcd_peer}");
    let mut etcd = Command::new(&binaries.etcd);
    etcd.arg("--name=sluice")
        .arg(format!(
            "--data-dir={}",
            dir.join(format!("etcd-{attempt}")).display()
        ))
        .arg(format!("--listen-client-urls={etcd_url}"))
        .arg(format!("--advertise-client-urls={etcd_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=sluice={peer_url}"))
        .arg("--initial-cluster-state=new")
        .arg("--logger=zap")
        .arg("--log-level=warn");
    let mut etcd = Supervised::spawn("etcd", etcd, logs[0].clone(), watchdog)?;

    let deadline = Instant::now() + options.startup_timeout;
    let etcd_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, etcd_client));
    while TcpStream::connect_timeout(&etcd_addr, Duration::from_millis(200)).is_err() {
        if let Some(exit) = etcd.exited() {
            return Err(fail(exit));
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "etcd did not listen on {etcd_addr} within {:?}",
                options.startup_timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let issuer = "https://kubernetes.default.svc.cluster.local";
    let mut apiserver = Command::new(&binaries.kube_apiserver);
    apiserver
        .arg(format!("--etcd-servers={etcd_url}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--secure-port={apiserver_port}"))
        .arg("--insecure-port=0")
        .arg(format!(
            "--cert-dir={}",
            dir.join("apiserver-certs").display()
        ))
        .arg(format!("--tls-cert-file={}", pki.serving_cert.display()))
        .arg(format!(
            "--tls-private-key-file={}",
            pki.serving_key.display()
        ))
        .arg(format!("--client-ca-file={}", pki.ca_cert.display()))
        .arg(format!(
            "--service-account-key-file={}",
            pki.service_account_public_key.display()
        ))
        .arg(format!(
            "--service-account-signing-key-file={}",
            pki.service_account_key.display()
        ))
        .arg(format!("--service-account-issuer={issuer}"))
        .arg(format!("--api-audiences={issuer}"))
        .arg("--service-cluster-ip-range=10.96.0.0/16")
        .arg("--authorization-mode=RBAC")
        // Pods need no ServiceAccount to exist first: a fresh test namespace is usable at once.
        .arg("--disable-admission-plugins=ServiceAccount")
        // The `kubernetes` Service cannot point at a loopback address.
        .arg("--endpoint-reconciler-type=none")
        .arg("--enable-priority-and-fairness=false")
        .arg("--allow-privileged=true")
        .arg("--profiling=false")
        .arg("--logtostderr=true");
    let apiserver = Supervised::spawn("kube-apiserver", apiserver, logs[1].clone(), watchdog)?;
    let mut processes = vec![apiserver, etcd];

    write_kubeconfig(dir, pki, apiserver_port)?;
    let config = load_config(&dir.join("kubeconfig")).await?;
    let client = Client::try_from(config).map_err(Error::kube("creating a client"))?;
    loop {
        if let Some(exit) = processes.iter_mut().find_map(Supervised::exited) {
            return Err(fail(exit));
        }
        // `GET /readyz`: the empty base path plus the "name" readyz.
        let readyz = kube::core::Request::new("")
            .get("readyz", &GetParams::default())
            .map_err(|e| fail(format!("building the /readyz request: {e}")))?;
        let probe = tokio::time::timeout(Duration::from_secs(2), client.request_text(readyz)).await;
        if let Ok(Ok(body)) = &probe
            && body.trim() == "ok"
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "kube-apiserver was not ready within {:?} (last probe: {probe:?})",
                options.startup_timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut controller_manager = Command::new(&binaries.kube_controller_manager);
    controller_manager
        .arg(format!("--kubeconfig={}", dir.join("kubeconfig").display()))
        .arg("--port=0")
        .arg("--secure-port=0")
        .arg("--bind-address=127.0.0.1")
        .arg("--leader-elect=false")
        .arg(format!("--controllers={CONTROLLERS}"))
        .arg(format!(
            "--service-account-private-key-file={}",
            pki.service_account_key.display()
        ))
        .arg(format!("--root-ca-file={}", pki.ca_cert.display()))
        .arg("--use-service-account-credentials=false")
        .arg("--kube-api-qps=200")
        .arg("--kube-api-burst=400")
        .arg("--logtostderr=true");
    let controller_manager = Supervised::spawn(
        "kube-controller-manager",
        controller_manager,
        logs[2].clone(),
        watchdog,
    )?;
    processes.insert(0, controller_manager);
    Ok((processes, apiserver_port))
}

fn write_kubeconfig(dir: &Path, pki: &pki::Pki, port: u16) -> Result<(), Error> {
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sluice-local
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {ca}
users:
- name: sluice-admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: sluice-local
  context:
    cluster: sluice-local
    user: sluice-admin
    namespace: default
current-context: sluice-local
",
        ca = pki.ca_cert.display(),
        cert = pki.admin_cert.display(),
        key = pki.admin_key.display(),
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig).map_err(Error::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_labels() {
        let name = namespace_name("Rollout_Abort::Canary Test With A Very Long Name Indeed");
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        assert!(name.starts_with("rollout-abort--canary-test"), "{name}");
        assert!(namespace_name("---").starts_with("test-"));
        assert_ne!(namespace_name("a"), namespace_name("a"));
    }
}
