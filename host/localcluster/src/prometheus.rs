//! A real Prometheus server on loopback with a temporary TSDB, scraping targets a test names.
//!
//! The binary comes from Debian's `prometheus` package (installed by `scripts/setup.sh`); set
//! [`PROMETHEUS_ENV`] to use another one.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::free_port;
use crate::process::{Supervised, Watchdog};
use crate::{Error, http, logs};

/// Environment variable naming the Prometheus binary (default `/usr/bin/prometheus`).
pub const PROMETHEUS_ENV: &str = "SLUICE_PROMETHEUS";

/// How often targets are scraped.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// A running Prometheus; stopped and its data removed when dropped.
pub struct LocalPrometheus {
    address: SocketAddr,
    log: PathBuf,
    // Field order is drop order: the process stops before the watchdog is disarmed and the
    // directory is removed.
    _process: Supervised,
    _watchdog: Watchdog,
    _dir: tempfile::TempDir,
}

impl LocalPrometheus {
    /// Starts Prometheus scraping `targets` (each serving `/metrics`) every second, and waits
    /// until it is ready.
    pub async fn start(targets: &[SocketAddr]) -> Result<Self, Error> {
        let binary = std::env::var_os(PROMETHEUS_ENV)
            .map_or_else(|| PathBuf::from("/usr/bin/prometheus"), PathBuf::from);
        if !binary.exists() {
            return Err(Error::ToolMissing {
                name: "prometheus",
                path: binary,
                hint: "run `bash scripts/setup.sh` to install Debian's prometheus package",
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("sluice-prometheus-")
            .tempdir()
            .map_err(Error::io("creating the Prometheus directory"))?;
        let targets: Vec<String> = targets
            .iter()
            .map(|target| format!("\"{target}\""))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: {interval}s\n  evaluation_interval: {interval}s\nscrape_configs:\n  - job_name: sluice-test\n    static_configs:\n      - targets: [{targets}]\n",
            interval = SCRAPE_INTERVAL.as_secs(),
            targets = targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).map_err(Error::io("writing prometheus.yml"))?;
        let port = free_port()?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = dir.path().join("prometheus.log");
        let mut watchdog = Watchdog::start(None)?;
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--log.level=warn");
        let mut process = Supervised::spawn("prometheus", command, log.clone(), &mut watchdog)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = process.exited() {
                return Err(Error::Startup {
                    message: exit,
                    logs: logs::tail(&log, 30),
                });
            }
            if let Ok((200, _)) = http::get(address, "/-/ready").await {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Startup {
                    message: "Prometheus did not become ready within 30s".to_string(),
                    logs: logs::tail(&log, 30),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            address,
            log,
            _process: process,
            _watchdog: watchdog,
            _dir: dir,
        })
    }

    /// The server's URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The server's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        logs::tail(&self.log, lines)
    }

    /// Runs an instant query and returns the API's JSON response.
    pub async fn query(&self, promql: &str) -> Result<serde_json::Value, Error> {
        let path = format!("/api/v1/query?query={}", http::encode_query_value(promql));
        let (status, body) = http::get(self.address, &path).await?;
        serde_json::from_str(&body).map_err(|error| Error::Manifest {
            context: format!("Prometheus query {promql:?} (HTTP {status})"),
            message: error.to_string(),
        })
    }

    /// Waits until an instant query returns a non-empty result whose first sample satisfies
    /// `accept`, and returns that sample's value.
    pub async fn wait_for_value(
        &self,
        promql: &str,
        timeout: Duration,
        accept: impl Fn(f64) -> bool,
    ) -> Result<f64, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let response = self.query(promql).await?;
            let value = response["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|value| value.parse::<f64>().ok());
            if let Some(value) = value.filter(|value| accept(*value)) {
                return Ok(value);
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "Prometheus query {promql:?} to satisfy the condition (last response: {response})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
