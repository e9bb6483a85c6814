//! Locating the control-plane binaries.

use std::path::{Path, PathBuf};

use crate::Error;

/// Environment variable naming the directory that holds `kube-apiserver` and
/// `kube-controller-manager` (default: [`default_bin_dir`]).
pub const BIN_DIR_ENV: &str = "SLUICE_K8S_BIN_DIR";

/// Environment variable naming the `etcd` binary (default: `/usr/bin/etcd`, then `etcd` on `PATH`).
pub const ETCD_ENV: &str = "SLUICE_ETCD";

/// Where `tests/cluster/build.sh` caches the binaries: `~/.cache/sluice/k8s-1.20.2/bin`.
pub fn default_bin_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/sluice/k8s-1.20.2/bin")
}

/// The binaries a [`LocalCluster`](crate::LocalCluster) runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// `kube-apiserver` 1.20.2.
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager` 1.20.2.
    pub kube_controller_manager: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
}

impl Binaries {
    /// Finds the binaries, honouring [`BIN_DIR_ENV`] and [`ETCD_ENV`]; the error names the build
    /// script to run when one is missing.
    pub fn locate() -> Result<Self, Error> {
        let dir = std::env::var_os(BIN_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(default_bin_dir, PathBuf::from);
        let etcd = match std::env::var_os(ETCD_ENV).filter(|v| !v.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => find_etcd(),
        };
        Ok(Self {
            kube_apiserver: executable("kube-apiserver", dir.join("kube-apiserver"))?,
            kube_controller_manager: executable(
                "kube-controller-manager",
                dir.join("kube-controller-manager"),
            )?,
            etcd: executable("etcd", etcd)?,
        })
    }
}

fn find_etcd() -> PathBuf {
    let debian = PathBuf::from("/usr/bin/etcd");
    if debian.is_file() {
        return debian;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
        .unwrap_or(debian)
}

fn executable(name: &'static str, path: PathBuf) -> Result<PathBuf, Error> {
    if is_executable(&path) {
        Ok(path)
    } else {
        Err(Error::BinaryMissing { name, path })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
