//! A metrics endpoint whose counters a test (or the demo) controls, for Prometheus to scrape.
//!
//! It serves `/metrics` in the Prometheus text format on 127.0.0.1:
//! - `http_requests_total{service, code, ...}`: a counter per label set;
//! - `http_request_duration_seconds{service, ...}`: a histogram with the usual latency buckets.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Error, http};

/// Label pairs of a series, e.g. `[("service", "web"), ("code", "200")]`.
pub type Labels = Vec<(String, String)>;

/// Latency buckets of `http_request_duration_seconds`, in seconds.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// A running metrics endpoint; stops when dropped.
pub struct MetricsExporter {
    address: SocketAddr,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    server: JoinHandle<()>,
}

impl MetricsExporter {
    /// Starts serving on a free loopback port.
    pub async fn start() -> Result<Self, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::io("binding the metrics exporter"))?;
        let address = listener
            .local_addr()
            .map_err(Error::io("reading the metrics exporter address"))?;
        let requests = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let mut registry = Registry::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        let registry = Arc::new(Mutex::new(registry));
        let server = tokio::spawn(http::serve(listener, move |path| {
            if path != "/metrics" {
                return (404, "text/plain", "not found\n".to_string());
            }
            let mut body = String::new();
            let registry = registry.lock().unwrap_or_else(|poison| poison.into_inner());
            match encode(&mut body, &registry) {
                Ok(()) => (
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(error) => (500, "text/plain", format!("encoding failed: {error}\n")),
            }
        }));
        Ok(Self {
            address,
            requests,
            latency,
            server,
        })
    }

    /// Where Prometheus scrapes it (`/metrics`).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Counts `count` requests with the given labels (typically `service` and `code`).
    pub fn record_requests(&self, labels: &[(&str, &str)], count: u64) {
        self.requests.get_or_create(&owned(labels)).inc_by(count);
    }

    /// Observes `count` requests that took `seconds`.
    pub fn observe_latency(&self, labels: &[(&str, &str)], seconds: f64, count: u64) {
        let histogram = self.latency.get_or_create(&owned(labels));
        for _ in 0..count {
            histogram.observe(seconds);
        }
    }
}

impl Drop for MetricsExporter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn owned(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(key, value)| ((*key).to_string(), (*value).to_string()))
        .collect()
}
