//! A real local Kubernetes control plane (kube-apiserver, kube-controller-manager, etcd) with a
//! simulated kubelet, for Sluice's integration tests, end-to-end tests and demo.
//!
//! The control-plane binaries are Kubernetes 1.20.2 built from Debian's source package by
//! `tests/cluster/build.sh` and cached under `~/.cache/sluice/k8s-1.20.2/bin` (override with
//! [`BIN_DIR_ENV`]). etcd comes from Debian's `etcd-server` package.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sluice_localcluster::Error> {
//! use sluice_localcluster::LocalCluster;
//!
//! // One cluster per test binary, started on first use and torn down when the process exits.
//! let cluster = LocalCluster::shared();
//! let ns = cluster.namespace("my-test").await?;
//! let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = ns.api();
//! # let _ = pods;
//! # Ok(())
//! # }
//! ```
//!
//! Everything listens on 127.0.0.1 only. The simulated kubelet and scheduler ([`kubelet`]) bind
//! Pending Pods to a fake Node and report them Running and Ready; they never dial the fake Pod IPs.

mod binaries;
mod cluster;
mod crds;
mod error;
pub mod exporter;
mod http;
pub mod kubelet;
mod logs;
mod pki;
mod process;
pub mod prometheus;

pub use binaries::{BIN_DIR_ENV, Binaries, ETCD_ENV, default_bin_dir};
pub use cluster::{KEEP_DIR_ENV, LocalCluster, Options, TestNamespace};
pub use crds::{install_crd_yaml, install_crds_from_dir, workspace_crd_dirs};
pub use error::Error;
pub use exporter::MetricsExporter;
pub use kubelet::{KubeletConfig, Simulation};
pub use prometheus::LocalPrometheus;
