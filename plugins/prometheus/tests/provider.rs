//! The Prometheus provider on the testkit: scripted Prometheus answers for every result type and
//! failure, checked through the real runtime.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use sluice_core::condition::{Evaluation, MetricValue, evaluate_measurement};
use sluice_runtime::PluginError;
use sluice_testkit::{
    AnalysisPhase, CallError, Capability, Measurement, PluginHarness, analysis_context,
};

const PROMETHEUS: &str = "http://prometheus.monitoring:9090";

/// The plugin's `.wasm`, built once per test binary.
fn plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        sluice_plugin_build::build_plugin(root, "sluice-plugin-prometheus")
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fn harness() -> PluginHarness {
    PluginHarness::metric_provider(plugin())
        .unwrap()
        .expect_type("Prometheus")
        .grants_yaml(&format!("http: ['{PROMETHEUS}']"))
        .unwrap()
}

/// The URL of an instant query, encoded as the plugin encodes it.
fn query_url(query: &str) -> String {
    let encoded: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{PROMETHEUS}/api/v1/query?query={encoded}")
}

fn config(query: &str) -> String {
    json!({"address": PROMETHEUS, "query": query}).to_string()
}

async fn run(harness: &PluginHarness, config: &str) -> Result<Measurement, CallError> {
    let provider = harness.load_provider().await.unwrap();
    provider
        .run(&analysis_context("shop", "web-1", "success-rate", config))
        .await
}

fn metadata(measurement: &Measurement, key: &str) -> Option<String> {
    measurement
        .metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn success(body: &str) -> String {
    format!(r#"{{"status":"success","data":{body}}}"#)
}

#[tokio::test]
async fn a_scalar_is_its_number() {
    let harness = harness();
    harness.http().respond(
        "GET",
        &query_url("scalar(up)"),
        200,
        &success(r#"{"resultType":"scalar","result":[1700000000.5,"0.95"]}"#),
    );
    let measurement = run(&harness, &config("scalar(up)")).await.unwrap();
    assert_eq!(measurement.phase, AnalysisPhase::Successful);
    assert_eq!(measurement.value.as_deref(), Some("0.95"));
    assert_eq!(
        metadata(&measurement, "ResolvedPrometheusQuery").as_deref(),
        Some("scalar(up)")
    );
    assert!(measurement.finished_at.is_some() && measurement.started_at <= measurement.finished_at);
    assert_eq!(measurement.resume_at, None);
    let value = MetricValue::from_measurement_value("0.95");
    assert_eq!(
        evaluate_measurement(Some("result >= 0.9"), None, &value),
        Evaluation::Successful
    );
}

#[tokio::test]
async fn a_vector_is_the_list_of_its_samples_and_nan_stays_nan() {
    let harness = harness();
    let query = r#"sum(rate(http_requests_total{code!~"5.."}[5m])) by (pod)"#;
    harness.http().respond(
        "GET",
        &query_url(query),
        200,
        &success(
            r#"{"resultType":"vector","result":[
                {"metric":{"pod":"a"},"value":[1700000000,"0.97"]},
                {"metric":{"pod":"b"},"value":[1700000000,"NaN"]}]}"#,
        ),
    );
    let measurement = run(&harness, &config(query)).await.unwrap();
    assert_eq!(measurement.phase, AnalysisPhase::Successful);
    assert_eq!(measurement.value.as_deref(), Some("[0.97,NaN]"));
    let value = MetricValue::from_measurement_value("[0.97,NaN]");
    assert_eq!(
        evaluate_measurement(Some("result[0] >= 0.95"), None, &value),
        Evaluation::Successful
    );
    assert_eq!(
        evaluate_measurement(Some("all(result, {# >= 0.95})"), None, &value),
        Evaluation::Failed
    );
    assert_eq!(
        evaluate_measurement(Some("isNaN(result[1])"), None, &value),
        Evaluation::Successful
    );
}

#[tokio::test]
async fn a_matrix_flattens_every_sample_of_every_series() {
    let harness = harness();
    harness.http().respond(
        "GET",
        &query_url("up[2m]"),
        200,
        &success(
            r#"{"resultType":"matrix","result":[
                {"metric":{"i":"1"},"values":[[1700000000,"1"],[1700000060,"0"]]},
                {"metric":{"i":"2"},"values":[[1700000000,"+Inf"]]}]}"#,
        ),
    );
    let measurement = run(&harness, &config("up[2m]")).await.unwrap();
    assert_eq!(measurement.value.as_deref(), Some("[1,0,+Inf]"));
}

#[tokio::test]
async fn an_empty_result_is_an_empty_list_that_the_conditions_report_as_no_data() {
    let harness = harness();
    harness.http().respond(
        "GET",
        &query_url("absent_metric"),
        200,
        &success(r#"{"resultType":"vector","result":[]}"#),
    );
    let measurement = run(&harness, &config("absent_metric")).await.unwrap();
    assert_eq!(
        (measurement.phase, measurement.value.as_deref()),
        (AnalysisPhase::Successful, Some("[]"))
    );
    let evaluation = evaluate_measurement(
        Some("result[0] >= 0.95"),
        None,
        &MetricValue::from_measurement_value("[]"),
    );
    let Evaluation::Error(error) = evaluation else {
        panic!("expected an error, got {evaluation:?}")
    };
    assert!(
        error
            .to_string()
            .contains("no data returned from the metric provider"),
        "{error}"
    );
}

#[tokio::test]
async fn warnings_go_into_the_measurement_metadata() {
    let harness = harness();
    harness.http().respond(
        "GET",
        &query_url("up"),
        200,
        r#"{"status":"success","warnings":["PromQL info: metric might not be a counter","partial response"],
            "data":{"resultType":"scalar","result":[1,"1"]}}"#,
    );
    let measurement = run(&harness, &config("up")).await.unwrap();
    assert_eq!(
        metadata(&measurement, "warnings").as_deref(),
        Some(r#""PromQL info: metric might not be a counter", "partial response""#)
    );
}

#[tokio::test]
async fn http_errors_are_error_measurements_with_the_servers_message() {
    let harness = harness();
    harness.http().respond(
        "GET",
        &query_url("sum(("),
        400,
        r#"{"status":"error","errorType":"bad_data","error":"1:6: parse error: unexpected end of input"}"#,
    );
    harness
        .http()
        .respond("GET", &query_url("up"), 503, "Service Unavailable");
    let bad = run(&harness, &config("sum((")).await.unwrap();
    assert_eq!(bad.phase, AnalysisPhase::Error);
    assert_eq!(bad.value, None);
    assert_eq!(
        bad.message.as_deref(),
        Some("bad_data: 1:6: parse error: unexpected end of input")
    );
    let unavailable = run(&harness, &config("up")).await.unwrap();
    assert_eq!(unavailable.phase, AnalysisPhase::Error);
    let message = unavailable.message.unwrap();
    assert!(
        message.contains("503") && message.contains("Service Unavailable"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_prometheus_is_an_error_measurement_with_the_cause() {
    let harness = harness();
    let measurement = run(&harness, &config("up")).await.unwrap();
    assert_eq!(measurement.phase, AnalysisPhase::Error);
    let message = measurement.message.unwrap();
    assert!(
        message.contains(&query_url("up")) && message.contains("connection refused"),
        "{message}"
    );
}

#[tokio::test]
async fn a_slow_prometheus_times_out_after_the_configured_timeout() {
    let harness = harness();
    harness.http().respond_after(
        &query_url("up"),
        Duration::from_secs(4),
        200,
        &success(r#"{"resultType":"scalar","result":[1,"1"]}"#),
    );
    let provider = harness.load_provider().await.unwrap();
    let config = json!({"address": PROMETHEUS, "query": "up", "timeout": 1}).to_string();
    let started = std::time::Instant::now();
    let measurement = provider
        .run(&analysis_context("shop", "web-1", "slow", &config))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(measurement.phase, AnalysisPhase::Error);
    let message = measurement.message.unwrap();
    assert!(message.contains("timed out"), "{message}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test]
async fn headers_and_basic_auth_are_sent() {
    let harness = harness();
    harness.http().respond(
        "GET",
        &query_url("up"),
        200,
        &success(r#"{"resultType":"scalar","result":[1,"1"]}"#),
    );
    let config = json!({
        "address": format!("{PROMETHEUS}/"),
        "query": "up",
        "headers": [{"key": "X-Scope-OrgID", "value": "tenant-a"}],
        "authentication": {"basicAuth": {"username": "user", "password": "pass"}},
    })
    .to_string();
    let measurement = run(&harness, &config).await.unwrap();
    assert_eq!(measurement.phase, AnalysisPhase::Successful);
    let exchange = harness
        .exchanges()
        .into_iter()
        .find(|e| e.capability == Capability::Http)
        .unwrap();
    let headers = exchange.request["headers"].as_array().unwrap().clone();
    assert!(
        headers.contains(&json!(["x-scope-orgid", "tenant-a"])),
        "{headers:?}"
    );
    assert!(
        headers.contains(&json!(["authorization", "Basic dXNlcjpwYXNz"])),
        "{headers:?}"
    );
}

#[tokio::test]
async fn a_range_query_asks_for_the_window_and_step() {
    let harness = harness();
    let config = json!({
        "address": PROMETHEUS,
        "query": "up",
        "rangeQuery": {"start": r#"now() - duration("5m")"#, "end": "now()", "step": "1m"},
    })
    .to_string();
    // Unscripted (the times depend on the clock): the request is recorded and refused.
    let measurement = run(&harness, &config).await.unwrap();
    assert_eq!(measurement.phase, AnalysisPhase::Error);
    let exchange = harness
        .exchanges()
        .into_iter()
        .find(|e| e.capability == Capability::Http)
        .unwrap();
    let url = exchange.request["url"].as_str().unwrap().to_owned();
    let query = url
        .strip_prefix(&format!("{PROMETHEUS}/api/v1/query_range?"))
        .unwrap_or_else(|| panic!("{url}"));
    let parameter = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {url}"))
    };
    assert_eq!(parameter("query"), "up");
    assert_eq!(parameter("step"), "60");
    let start: f64 = parameter("start").parse().unwrap();
    let end: f64 = parameter("end").parse().unwrap();
    assert!((end - start - 300.0).abs() < 0.01, "{url}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - end).abs() < 60.0, "end {end} is not now ({now})");

    let bad = json!({"address": PROMETHEUS, "query": "up", "rangeQuery": {"start": "yesterday", "end": "now()", "step": "1m"}});
    let error = run(&harness, &bad.to_string()).await.unwrap_err();
    let CallError::Plugin {
        error: PluginError::InvalidConfig(message),
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    assert!(
        message.contains("rangeQuery.start") && message.contains("unsupported time expression"),
        "{message}"
    );
}

#[tokio::test]
async fn the_config_can_come_from_the_metric_json() {
    let harness = harness();
    harness.http().respond(
        "GET",
        &query_url("up"),
        200,
        &success(r#"{"resultType":"scalar","result":[1,"1"]}"#),
    );
    let provider = harness.load_provider().await.unwrap();
    let mut ctx = analysis_context("shop", "web-1", "up", "{}");
    ctx.metric_json =
        json!({"name": "up", "provider": {"prometheus": {"address": PROMETHEUS, "query": "up"}}})
            .to_string();
    let measurement = provider.run(&ctx).await.unwrap();
    assert_eq!(measurement.value.as_deref(), Some("1"));
    assert_eq!(
        provider.get_metadata(&ctx).await.unwrap(),
        vec![("ResolvedPrometheusQuery".to_owned(), "up".to_owned())]
    );
}

#[tokio::test]
async fn invalid_config_and_missing_grants_are_call_errors() {
    let harness = harness();
    let error = run(&harness, r#"{"query": "up"}"#).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Plugin { error: PluginError::InvalidConfig(m), .. } if m.contains("address")),
        "{error:?}"
    );
    let sigv4 = json!({"address": PROMETHEUS, "query": "up", "authentication": {"sigv4": {"region": "eu-west-1"}}});
    let error = run(&harness, &sigv4.to_string()).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Plugin { error: PluginError::InvalidConfig(m), .. } if m.contains("sigv4")),
        "{error:?}"
    );

    let ungranted = PluginHarness::metric_provider(plugin()).unwrap();
    let error = run(&ungranted, &config("up")).await.unwrap_err();
    assert!(
        matches!(&error, CallError::AccessDenied { message, .. } if message.contains("prometheus.monitoring")),
        "{error:?}"
    );
}
