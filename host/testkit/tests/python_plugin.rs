//! The example metric provider written in Python (`plugins/examples/python-provider`), built
//! with componentize-py and run through the production runtime: every export, the host calls it
//! makes, and a denied HTTP origin.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use sluice_runtime::{HttpResponse, PluginError};
use sluice_testkit::{
    AnalysisContext, AnalysisPhase, CallError, Capability, LogLevel, Measurement, MetricProvider,
    PluginHarness, analysis_context,
};

const SERVICE: &str = "http://stats.shop:8080";

/// The component, built (or taken from the build cache) once per test binary.
fn plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../plugins/examples/python-provider/build.sh"
        ));
        sluice_plugin_build::build_with_script(script).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn harness() -> PluginHarness {
    PluginHarness::metric_provider(plugin())
        .unwrap()
        .name("python")
        .expect_type("json-field")
        .grants_yaml(&format!("http: ['{SERVICE}']"))
        .unwrap()
}

fn context(config: Value) -> AnalysisContext {
    analysis_context("shop", "checkout-1", "rate", &config.to_string())
}

async fn provider(harness: &PluginHarness) -> MetricProvider {
    harness.load_provider().await.unwrap()
}

fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_secs()).unwrap()
}

fn metadata(measurement: &Measurement) -> Vec<(&str, &str)> {
    measurement
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn http_requests(harness: &PluginHarness) -> Vec<Value> {
    harness
        .exchanges()
        .into_iter()
        .filter(|e| e.capability == Capability::Http)
        .map(|e| e.request)
        .collect()
}

#[tokio::test]
async fn run_returns_the_selected_field_of_the_json_document() {
    let harness = harness();
    let body = r#"{"data": {"rate": 0.993, "healthy": true, "version": "1.2", "items": [{"latency": 120}]}}"#;
    harness
        .http()
        .respond("GET", &format!("{SERVICE}/stats?window=5m"), 200, body);
    let provider = provider(&harness).await;
    let url = format!("{SERVICE}/stats?window=5m");
    for (field, expected) in [
        ("data.rate", "0.993"),
        ("data.healthy", "true"),
        ("data.version", "1.2"),
        ("data.items.0.latency", "120"),
        ("data.items", r#"[{"latency":120}]"#),
    ] {
        let before = now();
        let measurement = provider
            .run(&context(json!({"url": url, "field": field})))
            .await
            .unwrap();
        assert_eq!(
            (measurement.phase, measurement.value.as_deref()),
            (AnalysisPhase::Successful, Some(expected)),
            "{field}: {measurement:?}"
        );
        let started = measurement.started_at.unwrap();
        assert!(started >= before && measurement.finished_at.unwrap() >= started);
        assert_eq!(measurement.resume_at, None);
    }
    let whole = provider.run(&context(json!({"url": url}))).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(whole.value.as_deref().unwrap()).unwrap(),
        serde_json::from_str::<Value>(body).unwrap()
    );

    let requests = http_requests(&harness);
    assert_eq!(requests.len(), 6);
    assert_eq!(requests[0]["method"], "GET");
    assert_eq!(requests[0]["url"], url);
    assert!(
        requests[0]["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["accept", "application/json"])),
        "{}",
        requests[0]
    );
    let logs = harness.logs();
    let measuring = logs.iter().find(|r| r.message == "measuring").unwrap();
    assert_eq!(measuring.level, LogLevel::Info);
    assert_eq!(measuring.method, "run");
    assert!(measuring.fields.contains(&("url".into(), url.clone())));
}

/// Answers successive requests with the next number of `values`.
fn serve_samples(harness: &PluginHarness, values: &'static [f64]) -> Arc<AtomicUsize> {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    harness
        .http()
        .respond_with(Some("GET"), &format!("{SERVICE}/stats"), move |_| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: json!({"rate": values[n % values.len()]})
                    .to_string()
                    .into_bytes(),
            }
        });
    served
}

#[tokio::test]
async fn several_samples_run_and_resume_in_fresh_instances_until_the_mean_is_in() {
    let harness = harness();
    let served = serve_samples(&harness, &[0.5, 1.0, 0.75]);
    let provider = provider(&harness).await;
    let ctx = context(json!({
        "url": format!("{SERVICE}/stats"), "field": "rate", "samples": 3, "intervalSeconds": 30,
    }));

    let first = provider.run(&ctx).await.unwrap();
    assert_eq!(first.phase, AnalysisPhase::Running, "{first:?}");
    assert_eq!((first.value.as_deref(), first.finished_at), (None, None));
    assert_eq!(first.message.as_deref(), Some("1 of 3 samples"));
    let started = first.started_at.unwrap();
    let resume_at = first.resume_at.unwrap();
    assert!(
        (started + 30..=now() + 30).contains(&resume_at),
        "{first:?}"
    );
    assert_eq!(metadata(&first), [("samples", "[0.5]")]);

    let second = provider.resume(&ctx, &first).await.unwrap();
    assert_eq!(second.phase, AnalysisPhase::Running, "{second:?}");
    assert_eq!(metadata(&second), [("samples", "[0.5, 1.0]")]);
    assert_eq!(second.started_at, Some(started));

    let done = provider.resume(&ctx, &second).await.unwrap();
    assert_eq!(
        (done.phase, done.value.as_deref(), done.resume_at),
        (AnalysisPhase::Successful, Some("0.75"), None),
        "{done:?}"
    );
    assert_eq!(done.started_at, Some(started));
    assert!(done.finished_at.unwrap() >= started);
    assert_eq!(metadata(&done), [("samples", "[0.5, 1.0, 0.75]")]);

    // A finished measurement is returned as it is, without another request.
    assert_eq!(provider.resume(&ctx, &done).await.unwrap(), done);
    assert_eq!(served.load(Ordering::SeqCst), 3);
    assert_eq!(http_requests(&harness).len(), 3);
}

#[tokio::test]
async fn terminate_finishes_a_running_measurement_with_the_samples_so_far() {
    let harness = harness();
    let provider = provider(&harness).await;
    let ctx = context(json!({"url": format!("{SERVICE}/stats"), "field": "rate", "samples": 3}));
    let running = Measurement {
        phase: AnalysisPhase::Running,
        value: None,
        message: None,
        started_at: Some(1_700_000_000),
        finished_at: None,
        resume_at: Some(1_700_000_010),
        metadata: vec![("samples".into(), "[0.5, 1.0]".into())],
    };
    let stopped = provider.terminate(&ctx, &running).await.unwrap();
    assert_eq!(
        (
            stopped.phase,
            stopped.value.as_deref(),
            stopped.message.as_deref()
        ),
        (
            AnalysisPhase::Successful,
            Some("0.75"),
            Some("terminated after 2 of 3 samples")
        )
    );
    assert_eq!(
        (stopped.started_at, stopped.resume_at),
        (Some(1_700_000_000), None)
    );
    assert!(stopped.finished_at.unwrap() >= now() - 60);
    assert_eq!(provider.terminate(&ctx, &stopped).await.unwrap(), stopped);

    let corrupt = Measurement {
        metadata: vec![("samples".into(), "not json".into())],
        ..running
    };
    let error = provider.terminate(&ctx, &corrupt).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Plugin { error: PluginError::InvalidConfig(m), .. } if m.contains("samples")),
        "{error:?}"
    );
    assert!(http_requests(&harness).is_empty());
}

#[tokio::test]
async fn type_init_metadata_and_garbage_collection() {
    let harness = harness();
    let provider = provider(&harness).await;
    assert_eq!(provider.plugin_type().await.unwrap(), "json-field");
    provider.init().await.unwrap();
    let ctx = context(json!({"url": format!("{SERVICE}/stats"), "field": "rate", "samples": 3}));
    provider.garbage_collect(&ctx, 5).await.unwrap();
    assert_eq!(
        provider.get_metadata(&ctx).await.unwrap(),
        [
            ("url".to_owned(), format!("{SERVICE}/stats")),
            ("field".to_owned(), "rate".to_owned()),
            ("samples".to_owned(), "3".to_owned()),
        ]
    );
    assert!(
        provider
            .get_metadata(&context(json!({"field": "rate"})))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(harness.exchanges().is_empty());
}

#[tokio::test]
async fn failed_samples_are_error_measurements_and_bad_config_a_plugin_error() {
    let harness = harness();
    harness
        .http()
        .respond("GET", &format!("{SERVICE}/down"), 503, r#"{"rate": 1}"#);
    harness
        .http()
        .respond("GET", &format!("{SERVICE}/text"), 200, "all good");
    harness.http().respond(
        "GET",
        &format!("{SERVICE}/stats"),
        200,
        r#"{"rate": "high"}"#,
    );
    let provider = provider(&harness).await;
    for (config, message) in [
        (
            json!({"url": format!("{SERVICE}/down")}),
            "received non 2xx response code: 503",
        ),
        (
            json!({"url": format!("{SERVICE}/stats"), "field": "latency"}),
            "field latency not found (no 'latency')",
        ),
        (
            json!({"url": format!("{SERVICE}/stats"), "field": "rate", "samples": 2}),
            "field rate is \"high\", not a number",
        ),
        (
            json!({"url": format!("{SERVICE}/text")}),
            "the body is not JSON",
        ),
        (
            json!({"url": format!("{SERVICE}/nothing")}),
            "GET http://stats.shop:8080/nothing failed: connection refused",
        ),
    ] {
        let measurement = provider.run(&context(config.clone())).await.unwrap();
        assert_eq!(measurement.phase, AnalysisPhase::Error, "{config}");
        assert!(measurement.finished_at.is_some(), "{config}");
        assert!(
            measurement.message.as_deref().unwrap().contains(message),
            "{config}: {measurement:?}"
        );
    }
    for (config, message) in [
        (json!({}), "url is required"),
        (json!({"url": "stats.shop/x"}), "absolute http or https URL"),
        (
            json!({"url": format!("{SERVICE}/stats"), "samples": 0}),
            "samples must be an integer of at least 1",
        ),
    ] {
        let error = provider.run(&context(config.clone())).await.unwrap_err();
        assert!(
            matches!(&error, CallError::Plugin { error: PluginError::InvalidConfig(m), .. } if m.contains(message)),
            "{config}: {error:?}"
        );
    }
}

#[tokio::test]
async fn an_origin_that_is_not_granted_is_access_denied_not_a_trap() {
    let harness = harness();
    let provider = provider(&harness).await;
    let error = provider
        .run(&context(
            json!({"url": "http://metrics.kube-system:9090/api"}),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::AccessDenied { message, .. }
            if message.contains("no grant for HTTP origin http://metrics.kube-system:9090")
                && message.contains("origin not granted")),
        "{error:?}"
    );
    assert_eq!(harness.metrics().denials("python", Capability::Http), 1);
    let denied = harness.exchanges();
    assert_eq!(denied.len(), 1);
    assert_eq!(
        denied[0].request["url"],
        "http://metrics.kube-system:9090/api"
    );
    assert_eq!(denied[0].response["error"]["kind"], "access-denied");

    // The plugin keeps working after the denial.
    harness
        .http()
        .respond("GET", &format!("{SERVICE}/stats"), 200, r#"{"rate": 1}"#);
    let measurement = provider
        .run(&context(
            json!({"url": format!("{SERVICE}/stats"), "field": "rate"}),
        ))
        .await
        .unwrap();
    assert_eq!(measurement.value.as_deref(), Some("1"));
}
