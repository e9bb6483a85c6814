//! The Web provider on the testkit: scripted HTTP answers for every method, body kind, JSONPath
//! case and failure, checked through the real runtime.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_core::condition::{Evaluation, MetricValue, evaluate_measurement};
use sluice_runtime::{HttpResponse, PluginError};
use sluice_testkit::{
    AnalysisPhase, CallError, Capability, Measurement, PluginHarness, analysis_context,
};

const SERVICE: &str = "http://checks.shop:8080";

/// The plugin's `.wasm`, built once per test binary.
fn plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        sluice_plugin_build::build_plugin(root, "sluice-plugin-web")
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fn harness() -> PluginHarness {
    PluginHarness::metric_provider(plugin())
        .unwrap()
        .expect_type("Web")
        .grants_yaml(&format!("http: ['{SERVICE}']"))
        .unwrap()
}

async fn run(harness: &PluginHarness, config: Value) -> Result<Measurement, CallError> {
    let provider = harness.load_provider().await.unwrap();
    provider
        .run(&analysis_context(
            "shop",
            "web-1",
            "health",
            &config.to_string(),
        ))
        .await
}

/// The one HTTP request of the call, as recorded by the host.
fn sent_request(harness: &PluginHarness) -> Value {
    harness
        .exchanges()
        .into_iter()
        .find(|e| e.capability == Capability::Http)
        .unwrap()
        .request
}

fn has_header(request: &Value, name: &str, value: &str) -> bool {
    request["headers"]
        .as_array()
        .unwrap()
        .contains(&json!([name, value]))
}

fn successful(measurement: &Measurement) -> &str {
    assert_eq!(
        measurement.phase,
        AnalysisPhase::Successful,
        "{measurement:?}"
    );
    assert!(measurement.finished_at.is_some());
    measurement.value.as_deref().unwrap()
}

#[tokio::test]
async fn get_returns_the_whole_json_document_by_default() {
    let harness = harness();
    harness.http().respond(
        "GET",
        &format!("{SERVICE}/health"),
        200,
        r#"{"ok": true, "rate": 0.99}"#,
    );
    let measurement = run(&harness, json!({"url": format!("{SERVICE}/health")}))
        .await
        .unwrap();
    let value = successful(&measurement);
    assert_eq!(
        serde_json::from_str::<Value>(value).unwrap(),
        json!({"ok": true, "rate": 0.99})
    );
    let result = MetricValue::from_measurement_value(value);
    assert_eq!(
        evaluate_measurement(Some("result.ok && result.rate > 0.95"), None, &result),
        Evaluation::Successful
    );
    assert_eq!(sent_request(&harness)["method"], "GET");
}

#[tokio::test]
async fn json_path_selects_the_first_match() {
    let harness = harness();
    let body = r#"{"data": {"ok": true, "status": "healthy", "version": "1.2", "items": [{"rate": 0.97}, {"rate": 0.5}], "p-99": 120}}"#;
    harness
        .http()
        .respond("GET", &format!("{SERVICE}/stats"), 200, body);
    for (path, expected) in [
        ("{$.data.ok}", "true"),
        ("{.data.ok}", "true"),
        ("{$.data.items[0].rate}", "0.97"),
        ("{.data.items[*].rate}", "0.97"),
        ("{$.data['p-99']}", "120"),
        ("{$.data.status}", "healthy"),
        ("{$.data.version}", "\"1.2\""),
        ("{$.data.items}", r#"[{"rate":0.97},{"rate":0.5}]"#),
    ] {
        let measurement = run(
            &harness,
            json!({"url": format!("{SERVICE}/stats"), "jsonPath": path}),
        )
        .await
        .unwrap();
        assert_eq!(successful(&measurement), expected, "{path}");
    }
    let result = MetricValue::from_measurement_value("\"1.2\"");
    assert_eq!(
        evaluate_measurement(Some("result == \"1.2\""), None, &result),
        Evaluation::Successful
    );
    assert_eq!(
        evaluate_measurement(Some("asFloat(result) > 1"), None, &result),
        Evaluation::Successful
    );

    let missing = run(
        &harness,
        json!({"url": format!("{SERVICE}/stats"), "jsonPath": "{$.data.missing}"}),
    )
    .await
    .unwrap();
    assert_eq!(missing.phase, AnalysisPhase::Error);
    assert!(
        missing
            .message
            .unwrap()
            .contains("could not find JSONPath {$.data.missing}")
    );
    let error = run(
        &harness,
        json!({"url": format!("{SERVICE}/stats"), "jsonPath": "{$..ok}"}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, CallError::Plugin { error: PluginError::InvalidConfig(m), .. } if m.contains("recursive descent")),
        "{error:?}"
    );
}

#[tokio::test]
async fn post_and_put_send_their_bodies_and_headers() {
    let harness = harness();
    harness
        .http()
        .respond_with(Some("POST"), &format!("{SERVICE}/verify"), |request| {
            HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: format!(r#"{{"echo": {}}}"#, String::from_utf8_lossy(&request.body))
                    .into_bytes(),
            }
        });
    harness.http().respond(
        "PUT",
        &format!("{SERVICE}/verify"),
        201,
        r#"{"stored": true}"#,
    );

    let config = json!({
        "url": format!("{SERVICE}/verify"),
        "method": "POST",
        "headers": [{"key": "Authorization", "value": "Bearer t0ken"}, {"key": "Content-Type", "value": "text/plain"}],
        "jsonBody": {"service": "checkout", "window": "5m"},
        "jsonPath": "{$.echo.service}",
    });
    let measurement = run(&harness, config).await.unwrap();
    assert_eq!(successful(&measurement), "checkout");
    let request = sent_request(&harness);
    assert_eq!(request["method"], "POST");
    assert!(
        has_header(&request, "authorization", "Bearer t0ken"),
        "{request}"
    );
    assert!(
        has_header(&request, "content-type", "application/json"),
        "{request}"
    );
    assert!(
        !has_header(&request, "content-type", "text/plain"),
        "{request}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(request["body"].as_str().unwrap()).unwrap(),
        json!({"service": "checkout", "window": "5m"})
    );

    harness.recorder().clear();
    let config = json!({"url": format!("{SERVICE}/verify"), "method": "put", "body": "plain text", "jsonPath": "{.stored}"});
    let measurement = run(&harness, config).await.unwrap();
    assert_eq!(successful(&measurement), "true");
    let request = sent_request(&harness);
    assert_eq!(
        (request["method"].as_str(), request["body"].as_str()),
        (Some("PUT"), Some("plain text"))
    );
    assert!(
        !request["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "content-type"),
        "{request}"
    );
}

#[tokio::test]
async fn non_2xx_responses_are_error_measurements() {
    let harness = harness();
    harness
        .http()
        .respond("GET", &format!("{SERVICE}/health"), 503, r#"{"ok": false}"#);
    let measurement = run(&harness, json!({"url": format!("{SERVICE}/health")}))
        .await
        .unwrap();
    assert_eq!(measurement.phase, AnalysisPhase::Error);
    assert_eq!(measurement.value, None);
    assert_eq!(
        measurement.message.as_deref(),
        Some("received non 2xx response code: 503")
    );
}

#[tokio::test]
async fn a_non_json_body_is_the_raw_text() {
    let harness = harness();
    harness
        .http()
        .respond("GET", &format!("{SERVICE}/status"), 200, "all systems go");
    let measurement = run(&harness, json!({"url": format!("{SERVICE}/status")}))
        .await
        .unwrap();
    assert_eq!(successful(&measurement), "all systems go");
    let result = MetricValue::from_measurement_value("all systems go");
    assert_eq!(
        evaluate_measurement(Some("result == \"all systems go\""), None, &result),
        Evaluation::Successful
    );
    let with_path = run(
        &harness,
        json!({"url": format!("{SERVICE}/status"), "jsonPath": "{$.ok}"}),
    )
    .await
    .unwrap();
    assert_eq!(with_path.phase, AnalysisPhase::Error);
    assert!(
        with_path
            .message
            .unwrap()
            .contains("could not parse JSON body")
    );
}

#[tokio::test]
async fn a_slow_endpoint_times_out_after_timeout_seconds() {
    let harness = harness();
    harness.http().respond_after(
        &format!("{SERVICE}/slow"),
        Duration::from_secs(4),
        200,
        "{}",
    );
    let provider = harness.load_provider().await.unwrap();
    let config = json!({"url": format!("{SERVICE}/slow"), "timeoutSeconds": 1}).to_string();
    let started = std::time::Instant::now();
    let measurement = provider
        .run(&analysis_context("shop", "web-1", "slow", &config))
        .await
        .unwrap();
    assert_eq!(measurement.phase, AnalysisPhase::Error);
    assert!(measurement.message.unwrap().contains("timed out"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_an_error_measurement_with_the_cause() {
    let harness = harness();
    let measurement = run(&harness, json!({"url": format!("{SERVICE}/nothing")}))
        .await
        .unwrap();
    assert_eq!(measurement.phase, AnalysisPhase::Error);
    let message = measurement.message.unwrap();
    assert!(
        message.contains("connection refused") && message.contains("/nothing"),
        "{message}"
    );
}

#[tokio::test]
async fn invalid_config_and_missing_grants_are_call_errors() {
    let harness = harness();
    for (config, needle) in [
        (json!({}), "url is required"),
        (
            json!({"url": format!("{SERVICE}/x"), "method": "DELETE"}),
            "GET, POST or PUT",
        ),
        (
            json!({"url": format!("{SERVICE}/x"), "body": "x"}),
            "POST or PUT",
        ),
        (
            json!({"url": format!("{SERVICE}/x"), "method": "POST", "body": "x", "jsonBody": {}}),
            "not both",
        ),
    ] {
        let error = run(&harness, config.clone()).await.unwrap_err();
        assert!(
            matches!(&error, CallError::Plugin { error: PluginError::InvalidConfig(m), .. } if m.contains(needle)),
            "{config}: {error:?}"
        );
    }
    let error = run(&harness, json!({"url": "http://elsewhere:8080/x"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::AccessDenied { message, .. } if message.contains("elsewhere")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_config_can_come_from_the_metric_json() {
    let harness = harness();
    harness
        .http()
        .respond("GET", &format!("{SERVICE}/health"), 200, r#"{"ok": true}"#);
    let provider = harness.load_provider().await.unwrap();
    let mut ctx = analysis_context("shop", "web-1", "health", "{}");
    ctx.metric_json = json!({"name": "health", "provider": {"web": {"url": format!("{SERVICE}/health"), "jsonPath": "{$.ok}"}}}).to_string();
    let measurement = provider.run(&ctx).await.unwrap();
    assert_eq!(successful(&measurement), "true");
}

#[tokio::test]
async fn per_call_time_through_the_runtime() {
    let harness = harness();
    harness.http().respond(
        "GET",
        &format!("{SERVICE}/health"),
        200,
        r#"{"data": {"rate": 0.99}}"#,
    );
    let provider = harness.load_provider().await.unwrap();
    let ctx = analysis_context(
        "shop",
        "web-1",
        "rate",
        &json!({"url": format!("{SERVICE}/health"), "jsonPath": "{$.data.rate}"}).to_string(),
    );
    provider.run(&ctx).await.unwrap();
    let calls = 50;
    let started = std::time::Instant::now();
    for _ in 0..calls {
        assert_eq!(successful(&provider.run(&ctx).await.unwrap()), "0.99");
    }
    let per_call = started.elapsed() / calls;
    println!("web provider: {per_call:?} per run() through the runtime (scripted HTTP)");
    assert!(per_call < Duration::from_secs(1), "{per_call:?}");
}

#[tokio::test]
async fn secrets_are_substituted_by_the_host_and_never_reach_the_plugin() {
    let harness = PluginHarness::metric_provider(plugin())
        .unwrap()
        .grants_yaml("httpFromConfig: [url]")
        .unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = received.clone();
    harness.http().respond_with(
        Some("POST"),
        &format!("{SERVICE}/verify?key=s3cret-key"),
        move |request| {
            *seen.lock().unwrap() = Some(request.clone());
            let auth = request
                .headers
                .iter()
                .find(|(name, _)| name == "authorization")
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: json!({"echo": auth}).to_string().into_bytes(),
            }
        },
    );
    let placeholder = "sluice-secret-0-abc";
    let provider = harness.load_provider().await.unwrap().with_secrets(vec![
        sluice_runtime::SecretSubstitution {
            placeholder: placeholder.into(),
            value: "s3cret-key".into(),
        },
    ]);
    let config = json!({
        "url": format!("{SERVICE}/verify?key={placeholder}"),
        "method": "POST",
        "headers": [{"key": "Authorization", "value": format!("Bearer {placeholder}")}],
        "jsonBody": {"token": placeholder},
        "jsonPath": "{$.echo}",
    });
    let measurement = provider
        .run(&analysis_context(
            "shop",
            "web-1",
            "health",
            &config.to_string(),
        ))
        .await
        .unwrap();
    let request = received
        .lock()
        .unwrap()
        .clone()
        .expect("the backend got the request");
    assert!(
        request
            .headers
            .contains(&("authorization".into(), "Bearer s3cret-key".into())),
        "{request:?}"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({"token": "s3cret-key"})
    );
    // What flows back into the plugin is concealed again: the echoed header, and the record.
    assert_eq!(successful(&measurement), format!("Bearer {placeholder}"));
    let recorded = sent_request(&harness).to_string();
    assert!(!recorded.contains("s3cret-key"), "{recorded}");
}

#[tokio::test]
async fn http_from_config_grants_only_the_origin_the_metric_names() {
    let harness = PluginHarness::metric_provider(plugin())
        .unwrap()
        .grants_yaml("httpFromConfig: [address]")
        .unwrap();
    harness
        .http()
        .respond("GET", &format!("{SERVICE}/health"), 200, "{}");
    let error = run(&harness, json!({"url": format!("{SERVICE}/health")}))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::AccessDenied { message, .. } if message.contains("checks.shop")),
        "{error:?}"
    );
}
