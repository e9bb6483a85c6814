//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while starting or using a [`LocalCluster`](crate::LocalCluster).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A control-plane binary is not where it is expected.
    #[error(
        "{name} not found at {}: run `bash tests/cluster/build.sh` to build and cache the local \
         control plane (or set {} to a directory holding kube-apiserver and \
         kube-controller-manager)",
        path.display(),
        crate::BIN_DIR_ENV
    )]
    BinaryMissing {
        /// The binary's name.
        name: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },

    /// A helper program (such as Prometheus) is not installed.
    #[error("{name} not found at {}: {hint}", path.display())]
    ToolMissing {
        /// The program's name.
        name: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// How to install it.
        hint: &'static str,
    },

    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Generating the cluster's certificates or keys failed.
    #[error("generating the cluster PKI: {0}")]
    Pki(#[from] rcgen::Error),

    /// A control-plane process exited or did not become ready.
    #[error("{message}\n{logs}")]
    Startup {
        /// What went wrong.
        message: String,
        /// The tails of the control-plane logs.
        logs: String,
    },

    /// Loading the generated kubeconfig failed.
    #[error("loading the generated kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),

    /// A Kubernetes API call failed.
    #[error("{context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: kube::Error,
    },

    /// A manifest could not be parsed or is not what was expected.
    #[error("{context}: {message}")]
    Manifest {
        /// Which manifest.
        context: String,
        /// What is wrong with it.
        message: String,
    },

    /// Waiting for a condition timed out.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let context = context.into();
        move |source| Self::Kube { context, source }
    }
}
