//! Helpers shared by the tests.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;
use sluice_localcluster::LocalCluster;

/// Generous bound for anything the controllers or the simulated kubelet do.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster shared by this test binary.
pub fn cluster() -> &'static LocalCluster {
    LocalCluster::shared()
}

/// Polls `check` every 50 ms until it returns `Some`, failing after [`TIMEOUT`] with the last
/// description `check` gave.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Result<T, String>>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut last = String::from("never checked");
    while tokio::time::Instant::now() < deadline {
        match check().await? {
            Ok(value) => return Ok(value),
            Err(state) => last = state,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("timed out after {TIMEOUT:?} waiting for {what}; last state: {last}")
}
