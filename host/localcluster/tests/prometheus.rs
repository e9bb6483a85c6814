//! A real Prometheus scrapes the test exporter: the values a test sets are what PromQL returns.

use std::time::Duration;

use sluice_localcluster::{LocalPrometheus, MetricsExporter};

const SUCCESS_RATE: &str = r#"sum(http_requests_total{service="checkout",code!~"5.."}) / sum(http_requests_total{service="checkout"})"#;
const P99: &str = r#"histogram_quantile(0.99, sum by (le) (http_request_duration_seconds_bucket{service="checkout"}))"#;

#[tokio::test]
async fn prometheus_returns_the_ratios_the_test_controls() -> anyhow::Result<()> {
    let exporter = MetricsExporter::start().await?;
    exporter.record_requests(&[("service", "checkout"), ("code", "200")], 95);
    exporter.record_requests(&[("service", "checkout"), ("code", "500")], 5);
    exporter.observe_latency(&[("service", "checkout")], 0.02, 99);
    exporter.observe_latency(&[("service", "checkout")], 3.0, 1);
    let prometheus = LocalPrometheus::start(&[exporter.address()]).await?;
    assert!(prometheus.url().starts_with("http://127.0.0.1:"));

    let rate = prometheus
        .wait_for_value(SUCCESS_RATE, Duration::from_secs(20), |_| true)
        .await?;
    assert!((rate - 0.95).abs() < 1e-9, "success rate {rate}");
    let p99 = prometheus
        .wait_for_value(P99, Duration::from_secs(20), |_| true)
        .await?;
    assert!(
        p99 > 0.01 && p99 <= 0.025,
        "p99 {p99} lies in the 10-25 ms bucket"
    );

    // Raise the error ratio: the next scrape shows it.
    exporter.record_requests(&[("service", "checkout"), ("code", "500")], 100);
    let rate = prometheus
        .wait_for_value(SUCCESS_RATE, Duration::from_secs(20), |rate| rate < 0.9)
        .await?;
    assert!((rate - 95.0 / 200.0).abs() < 1e-9, "success rate {rate}");
    Ok(())
}

#[tokio::test]
async fn an_empty_result_is_an_empty_vector() -> anyhow::Result<()> {
    let exporter = MetricsExporter::start().await?;
    let prometheus = LocalPrometheus::start(&[exporter.address()]).await?;
    let response = prometheus
        .query(r#"http_requests_total{service="absent"}"#)
        .await?;
    assert_eq!(response["status"], "success");
    assert_eq!(response["data"]["resultType"], "vector");
    assert_eq!(response["data"]["result"], serde_json::json!([]));
    Ok(())
}
