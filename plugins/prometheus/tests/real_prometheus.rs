//! The Prometheus provider against a real Prometheus scraping an exporter whose error ratio and
//! latency the test controls, run through the production runtime with real outbound HTTP and an
//! allow-list of exactly the Prometheus origin. The returned values go through Sluice's condition
//! evaluation, as the controller will do.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_core::condition::{Evaluation, MetricValue, evaluate_measurement};
use sluice_localcluster::{LocalPrometheus, MetricsExporter};
use sluice_runtime::{
    AnalysisPhase, EngineOptions, GrantsSpec, HostServices, Limits, Measurement, MetricProvider,
    Plugin, PluginEngine, PluginKind, PluginMetrics, PluginSpec, ReqwestHttpBackend,
};
use sluice_testkit::{InMemoryKube, analysis_context};

const SUCCESS_RATE: &str = r#"sum(http_requests_total{code!~"5.."}) / sum(http_requests_total)"#;
const P99: &str = "histogram_quantile(0.99, sum by (le) (http_request_duration_seconds_bucket))";
const SUCCESS_CONDITION: &str = "result[0] >= 0.9";

/// Builds the plugin and loads it with real HTTP, allowed to reach `origins` only.
async fn load_provider(origins: &[String]) -> anyhow::Result<MetricProvider> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let wasm = sluice_plugin_build::build_plugin(root, "sluice-plugin-prometheus")?;
    let engine = PluginEngine::new(EngineOptions::default())?;
    let compiled = engine
        .compile_component(std::fs::read(wasm)?.into())
        .await?;
    let grants: GrantsSpec = serde_json::from_value(json!({"http": origins}))?;
    let spec = PluginSpec {
        name: "prometheus".into(),
        kind: PluginKind::MetricProvider,
        grants: grants.validate()?,
        limits: Limits::default(),
        args: Vec::new(),
        expected_type: Some("Prometheus".into()),
    };
    let services = HostServices {
        kube: Arc::new(InMemoryKube::new()),
        http: Arc::new(ReqwestHttpBackend::new()?),
        observer: None,
    };
    let metrics = PluginMetrics::register(&mut prometheus_client::registry::Registry::default());
    match engine
        .load_plugin(spec, &compiled, services, metrics)
        .await?
    {
        Plugin::MetricProvider(provider) => Ok(provider),
        other => anyhow::bail!("loaded as another kind: {other:?}"),
    }
}

async fn measure(
    provider: &MetricProvider,
    config: serde_json::Value,
) -> anyhow::Result<Measurement> {
    Ok(provider
        .run(&analysis_context(
            "shop",
            "checkout-1",
            "success-rate",
            &config.to_string(),
        ))
        .await?)
}

fn instant(address: &str, query: &str) -> serde_json::Value {
    json!({"address": address, "query": query})
}

/// The single sample of a one-element vector value such as `[0.95]`.
fn single_sample(measurement: &Measurement) -> f64 {
    assert_eq!(
        measurement.phase,
        AnalysisPhase::Successful,
        "{measurement:?}"
    );
    let value = measurement.value.as_deref().unwrap_or_default();
    match MetricValue::from_measurement_value(value) {
        MetricValue::Array(samples) => match samples.as_slice() {
            [MetricValue::Number(sample)] => *sample,
            other => panic!("expected one sample, got {other:?}"),
        },
        other => panic!("expected a vector, got {other:?}"),
    }
}

fn evaluate(measurement: &Measurement, condition: &str) -> Evaluation {
    let value =
        MetricValue::from_measurement_value(measurement.value.as_deref().unwrap_or_default());
    evaluate_measurement(Some(condition), None, &value)
}

#[tokio::test]
async fn success_rate_and_latency_from_a_real_prometheus_pass_then_fail() -> anyhow::Result<()> {
    let exporter = MetricsExporter::start().await?;
    exporter.record_requests(&[("service", "checkout"), ("code", "200")], 95);
    exporter.record_requests(&[("service", "checkout"), ("code", "500")], 5);
    exporter.observe_latency(&[("service", "checkout")], 0.02, 99);
    exporter.observe_latency(&[("service", "checkout")], 3.0, 1);
    let prometheus = LocalPrometheus::start(&[exporter.address()]).await?;
    let address = prometheus.url();
    let provider = load_provider(std::slice::from_ref(&address)).await?;
    prometheus
        .wait_for_value(SUCCESS_RATE, Duration::from_secs(20), |_| true)
        .await?;

    let healthy = measure(&provider, instant(&address, SUCCESS_RATE)).await?;
    assert_eq!(healthy.value.as_deref(), Some("[0.95]"));
    assert!(
        healthy
            .metadata
            .contains(&("ResolvedPrometheusQuery".into(), SUCCESS_RATE.into()))
    );
    assert_eq!(
        evaluate(&healthy, SUCCESS_CONDITION),
        Evaluation::Successful
    );

    let p99 = single_sample(&measure(&provider, instant(&address, P99)).await?);
    assert!(
        p99 > 0.01 && p99 <= 0.025,
        "p99 {p99} lies in the 10-25 ms bucket"
    );

    // Per-call cost through the runtime: fresh instance, real HTTP round trip, real PromQL.
    let calls = 20;
    let started = Instant::now();
    for _ in 0..calls {
        assert_eq!(
            single_sample(&measure(&provider, instant(&address, SUCCESS_RATE)).await?),
            0.95
        );
    }
    let per_call = started.elapsed() / calls;
    println!(
        "prometheus provider: {per_call:?} per run() through the runtime against a real Prometheus"
    );
    assert!(per_call < Duration::from_secs(1), "{per_call:?} per call");

    // Raise the error ratio: 95 good of 200.
    exporter.record_requests(&[("service", "checkout"), ("code", "500")], 100);
    prometheus
        .wait_for_value(SUCCESS_RATE, Duration::from_secs(20), |rate| rate < 0.9)
        .await?;
    let degraded = measure(&provider, instant(&address, SUCCESS_RATE)).await?;
    assert_eq!(degraded.value.as_deref(), Some("[0.475]"));
    assert_eq!(evaluate(&degraded, SUCCESS_CONDITION), Evaluation::Failed);

    // A range query over the last 30 s returns every sample of the window, one per second.
    let range = json!({
        "address": address,
        "query": SUCCESS_RATE,
        "rangeQuery": {"start": r#"now() - duration("30s")"#, "end": "now()", "step": "1s"},
    });
    let window = measure(&provider, range).await?;
    assert_eq!(window.phase, AnalysisPhase::Successful, "{window:?}");
    let MetricValue::Array(samples) =
        MetricValue::from_measurement_value(window.value.as_deref().unwrap_or_default())
    else {
        panic!("range query value {window:?}")
    };
    assert!(samples.len() >= 2, "{window:?}");
    assert!(samples.contains(&MetricValue::Number(0.475)), "{window:?}");
    assert_eq!(
        evaluate(&window, "all(result, {# >= 0.9})"),
        Evaluation::Failed
    );

    // An empty result reaches the conditions as Argo's "no data" error.
    let empty = measure(
        &provider,
        instant(&address, r#"http_requests_total{service="absent"}"#),
    )
    .await?;
    assert_eq!(
        (empty.phase, empty.value.as_deref()),
        (AnalysisPhase::Successful, Some("[]"))
    );
    let Evaluation::Error(error) = evaluate(&empty, SUCCESS_CONDITION) else {
        panic!("{empty:?}")
    };
    assert!(
        error
            .to_string()
            .contains("no data returned from the metric provider"),
        "{error}"
    );

    // Stopped, still allow-listed: an error measurement that names the cause.
    drop(prometheus);
    let down = measure(&provider, instant(&address, SUCCESS_RATE)).await?;
    assert_eq!(down.phase, AnalysisPhase::Error, "{down:?}");
    let message = down.message.unwrap_or_default();
    assert!(
        message.contains("connection refused") && message.contains(&address),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_port_is_an_error_measurement_with_the_cause() -> anyhow::Result<()> {
    let unused = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let address = format!("http://{unused}");
    let provider = load_provider(std::slice::from_ref(&address)).await?;
    let measurement = measure(&provider, instant(&address, "up")).await?;
    assert_eq!(measurement.phase, AnalysisPhase::Error);
    assert_eq!(measurement.value, None);
    let message = measurement.message.unwrap_or_default();
    assert!(
        message.contains("connection refused") && message.contains(&address),
        "{message}"
    );
    Ok(())
}
