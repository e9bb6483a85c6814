//! The demo app's traffic, simulated: every tick a batch of requests is split between the stable
//! and the canary ReplicaSet exactly as the HTTPRoute's backend weights say (the Services'
//! `rollouts-pod-template-hash` selectors tell which ReplicaSet each backend reaches), and each
//! ReplicaSet answers a share of them with HTTP 500 that depends on its version. The counters go
//! to a [`MetricsExporter`] that Prometheus scrapes; the analysis reads them back from Prometheus
//! only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use serde_json::Value;
use sluice_api::labels::POD_TEMPLATE_HASH;
use sluice_localcluster::MetricsExporter;
use tokio::task::JoinHandle;

use super::app::{
    CANARY_SERVICE, NAMESPACE, ROLLOUT, ROUTE, STABLE_SERVICE, http_route_resource, version_of,
};

/// Versions of the demo app that answer many requests with HTTP 500.
pub const BAD_VERSIONS: [&str; 1] = ["v3"];
/// The share of requests a bad version answers with HTTP 500.
pub const BAD_ERROR_RATIO: f64 = 0.30;
/// The share of requests a good version answers with HTTP 500.
pub const GOOD_ERROR_RATIO: f64 = 0.005;
/// Requests per tick (every [`TICK`]).
const REQUESTS_PER_TICK: u64 = 100;
/// How often a batch of requests is sent.
const TICK: Duration = Duration::from_millis(250);

/// The share of requests `version` answers with HTTP 500.
pub fn error_ratio(version: &str) -> f64 {
    if BAD_VERSIONS.contains(&version) {
        BAD_ERROR_RATIO
    } else {
        GOOD_ERROR_RATIO
    }
}

/// The HTTPRoute's backend weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteWeights {
    /// Weight of the stable Service.
    pub stable: i64,
    /// Weight of the canary Service.
    pub canary: i64,
}

/// Reads the backend weights of the HTTPRoute's first rule.
pub async fn route_weights(client: &Client) -> anyhow::Result<RouteWeights> {
    let route =
        Api::<DynamicObject>::namespaced_with(client.clone(), NAMESPACE, &http_route_resource())
            .get(ROUTE)
            .await?;
    let backends = route
        .data
        .pointer("/spec/rules/0/backendRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let weight = |service: &str| {
        backends
            .iter()
            .find(|backend| backend["name"] == service)
            .and_then(|backend| backend["weight"].as_i64())
            .unwrap_or(1)
    };
    Ok(RouteWeights {
        stable: weight(STABLE_SERVICE),
        canary: weight(CANARY_SERVICE),
    })
}

/// The simulated traffic, stopped when dropped.
pub struct Traffic {
    task: JoinHandle<()>,
}

impl Traffic {
    /// Starts sending batches of requests, counted in `exporter`.
    pub fn start(client: Client, exporter: Arc<MetricsExporter>) -> Self {
        let task = tokio::spawn(async move {
            let mut carry = BTreeMap::new();
            let mut ticks = tokio::time::interval(TICK);
            loop {
                ticks.tick().await;
                if let Err(error) = send_batch(&client, &exporter, &mut carry).await {
                    tracing::debug!(%error, "simulated traffic: batch skipped");
                }
            }
        });
        Self { task }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The pod-template hash a Service selects, once the controller pinned it.
async fn selected_hash(services: &Api<Service>, name: &str) -> anyhow::Result<Option<String>> {
    Ok(services
        .get(name)
        .await?
        .spec
        .and_then(|spec| spec.selector)
        .and_then(|selector| selector.get(POD_TEMPLATE_HASH).cloned()))
}

/// The version (image tag) of each of the app's ReplicaSets, by pod-template hash.
async fn versions(client: &Client) -> anyhow::Result<BTreeMap<String, String>> {
    let sets = Api::<ReplicaSet>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels(&format!("app={ROLLOUT}")))
        .await?;
    Ok(sets
        .items
        .iter()
        .filter_map(|set| {
            let hash = set.labels().get(POD_TEMPLATE_HASH)?.clone();
            let image = set
                .spec
                .as_ref()?
                .template
                .as_ref()?
                .spec
                .as_ref()?
                .containers
                .first()?
                .image
                .clone()?;
            Some((hash, version_of(&image).to_owned()))
        })
        .collect())
}

/// Sends one batch: splits it by the route's weights and counts each ReplicaSet's answers.
/// `carry` keeps each ReplicaSet's fractional errors so the counted ratio is exact over time.
async fn send_batch(
    client: &Client,
    exporter: &MetricsExporter,
    carry: &mut BTreeMap<String, f64>,
) -> anyhow::Result<()> {
    let services = Api::<Service>::namespaced(client.clone(), NAMESPACE);
    let Some(stable) = selected_hash(&services, STABLE_SERVICE).await? else {
        return Ok(());
    };
    let canary = selected_hash(&services, CANARY_SERVICE)
        .await?
        .unwrap_or_else(|| stable.clone());
    let weights = route_weights(client).await?;
    let versions = versions(client).await?;
    let total_weight = u64::try_from(weights.stable + weights.canary).unwrap_or(0);
    let to_canary = if canary == stable || total_weight == 0 {
        0
    } else {
        REQUESTS_PER_TICK * u64::try_from(weights.canary).unwrap_or(0) / total_weight
    };
    for (hash, requests) in [(stable, REQUESTS_PER_TICK - to_canary), (canary, to_canary)] {
        let Some(version) = versions.get(&hash) else {
            continue;
        };
        let owed = carry.entry(hash.clone()).or_default();
        let expected = *owed + requests as f64 * error_ratio(version);
        let errors = (expected.floor() as u64).min(requests);
        *owed = expected - errors as f64;
        let labels = |code| {
            [
                ("service", ROLLOUT),
                ("version", version.as_str()),
                (POD_TEMPLATE_HASH_LABEL, hash.as_str()),
                ("code", code),
            ]
        };
        exporter.record_requests(&labels("200"), requests - errors);
        exporter.record_requests(&labels("500"), errors);
    }
    Ok(())
}

/// The pod-template hash as a Prometheus label name.
const POD_TEMPLATE_HASH_LABEL: &str = "rollouts_pod_template_hash";
