//! `insecure: true` on a Web or Prometheus metric: the host (not the plugin) skips certificate
//! verification, for that metric's calls only. Checked against the local API server, whose
//! certificate no public root signs.

use std::sync::Arc;

use sluice_localcluster::LocalCluster;
use sluice_runtime::{
    AnalysisPhase, FetchOptions, HostServices, Limits, PluginMetrics, PluginRegistry,
    ReqwestHttpBackend, parse_plugin_config,
};
use sluice_testkit::{InMemoryKube, analysis_context};

#[tokio::test]
async fn insecure_skips_certificate_verification_and_only_when_asked() {
    // Starting the shared control plane blocks; keep it off the async workers.
    let server = tokio::task::spawn_blocking(|| {
        LocalCluster::shared()
            .server_url()
            .trim_end_matches('/')
            .to_string()
    })
    .await
    .expect("local control plane");
    let config = parse_plugin_config(
        &sluice_builtins::default_plugin_config(),
        &Limits::default(),
    )
    .expect("default config");
    let registry = PluginRegistry::new(
        sluice_testkit::shared_engine().expect("engine"),
        HostServices {
            kube: Arc::new(InMemoryKube::new()),
            http: Arc::new(ReqwestHttpBackend::new().expect("HTTP client")),
            observer: None,
        },
        PluginMetrics::unregistered(),
        sluice_builtins::components(),
        FetchOptions::default(),
    );
    registry.apply(&config).await;
    let web = registry.metric_provider("web").await.expect("web provider");
    let measure = |insecure: bool| {
        let web = web.clone();
        let config = serde_json::json!({
            "url": format!("{server}/version"),
            "jsonPath": "{$.major}",
            "insecure": insecure,
        });
        async move {
            web.run(&analysis_context(
                "shop",
                "tls-1",
                "version",
                &config.to_string(),
            ))
            .await
        }
    };

    // Verified by default: the measurement is an Error naming the certificate.
    let verified = measure(false).await.expect("the call itself succeeds");
    assert_eq!(verified.phase, AnalysisPhase::Error, "{verified:?}");
    let message = verified.message.unwrap_or_default();
    assert!(message.contains("TlsCertificateError"), "{message}");

    let insecure = measure(true).await.expect("the call itself succeeds");
    assert_eq!(insecure.phase, AnalysisPhase::Successful, "{insecure:?}");
    // `/version`'s `major` is the string "1".
    assert_eq!(
        insecure
            .value
            .as_deref()
            .map(|value| value.trim_matches('"')),
        Some("1")
    );
}
