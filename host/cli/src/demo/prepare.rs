//! Preparing a fresh machine for the demo: the cached local control plane and Prometheus. Both
//! scripts are the repository's own (`tests/cluster/build.sh`, `scripts/install-prometheus.sh`),
//! embedded so the binary works outside a checkout.

use std::path::PathBuf;

use anyhow::Context as _;
use sluice_localcluster::Binaries;
use sluice_localcluster::prometheus::PROMETHEUS_ENV;

use super::view::View;

/// `tests/cluster/build.sh`: builds and caches kube-apiserver and kube-controller-manager, and
/// installs etcd.
const CONTROL_PLANE_SCRIPT: &str = include_str!("../../../../tests/cluster/build.sh");
/// `scripts/install-prometheus.sh`: Debian's prometheus package, no system service.
const PROMETHEUS_SCRIPT: &str = include_str!("../../../../scripts/install-prometheus.sh");

/// The control-plane binaries, built first if they are not cached yet.
pub async fn control_plane(view: &mut View) -> anyhow::Result<Binaries> {
    match Binaries::locate() {
        Ok(binaries) => {
            view.say(format!(
                "Local control plane: kube-apiserver and kube-controller-manager 1.20.2 cached in {}, etcd {}",
                binaries
                    .kube_apiserver
                    .parent()
                    .unwrap_or(&binaries.kube_apiserver)
                    .display(),
                binaries.etcd.display()
            ));
            Ok(binaries)
        }
        Err(missing) => {
            view.say(format!(
                "{missing}: building the local control plane once — kube-apiserver and \
kube-controller-manager 1.20.2 from Debian's source package, etcd from Debian \
(tests/cluster/build.sh; several minutes, cached in ~/.cache/sluice)"
            ));
            run_script("tests/cluster/build.sh", CONTROL_PLANE_SCRIPT).await?;
            Binaries::locate().context("the control plane is still missing after its build")
        }
    }
}

/// Makes sure the Prometheus binary exists, installing Debian's package if it is missing.
pub async fn prometheus(view: &mut View) -> anyhow::Result<()> {
    let binary = std::env::var_os(PROMETHEUS_ENV)
        .map_or_else(|| PathBuf::from("/usr/bin/prometheus"), PathBuf::from);
    if binary.exists() {
        view.say(format!("Prometheus: {}", binary.display()));
        return Ok(());
    }
    view.say(format!(
        "Prometheus is not installed ({} is missing): installing Debian's prometheus package \
(scripts/install-prometheus.sh; no system service is started)",
        binary.display()
    ));
    run_script("scripts/install-prometheus.sh", PROMETHEUS_SCRIPT).await?;
    anyhow::ensure!(
        binary.exists(),
        "{} is still missing after installing Debian's prometheus package; set {PROMETHEUS_ENV} to a Prometheus binary",
        binary.display()
    );
    Ok(())
}

/// Runs an embedded bash script with the terminal's output; it is killed if the demo stops.
async fn run_script(name: &str, script: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(name)
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("running {name} (is bash installed?)"))?;
    anyhow::ensure!(status.success(), "{name} failed ({status})");
    Ok(())
}
