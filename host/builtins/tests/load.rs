//! Every built-in loads through the production registry from the default plugin ConfigMap, on
//! its first use: the right world, the declared `plugin-type`, and valid grants.

use std::sync::Arc;

use sluice_builtins::{
    BUILTINS, BuiltinKind, DEFAULT_METRIC_PROVIDER_PLUGINS, DEFAULT_STEP_PLUGINS,
    DEFAULT_TRAFFIC_ROUTER_PLUGINS,
};
use sluice_runtime::{
    FetchOptions, HostServices, Limits, METRIC_PROVIDER_PLUGINS_KEY, PluginMetrics, PluginRegistry,
    PluginStatus, STEP_PLUGINS_KEY, TRAFFIC_ROUTER_PLUGINS_KEY, parse_plugin_config, sha256_hex,
};
use sluice_testkit::{InMemoryKube, ScriptedHttp};

#[tokio::test]
async fn default_config_loads_every_builtin() {
    let data = sluice_builtins::default_plugin_config();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            METRIC_PROVIDER_PLUGINS_KEY,
            STEP_PLUGINS_KEY,
            TRAFFIC_ROUTER_PLUGINS_KEY
        ],
        "the default configuration uses the ConfigMap's keys"
    );
    assert_eq!(
        data[TRAFFIC_ROUTER_PLUGINS_KEY],
        DEFAULT_TRAFFIC_ROUTER_PLUGINS
    );
    assert_eq!(
        data[METRIC_PROVIDER_PLUGINS_KEY],
        DEFAULT_METRIC_PROVIDER_PLUGINS
    );
    assert_eq!(data[STEP_PLUGINS_KEY], DEFAULT_STEP_PLUGINS);
    let config = parse_plugin_config(&data, &Limits::default()).expect("default config parses");
    assert!(config.invalid.is_empty(), "{:?}", config.invalid);

    let services = HostServices {
        kube: Arc::new(InMemoryKube::new()),
        http: Arc::new(ScriptedHttp::default()),
        observer: None,
    };
    let mut prometheus = prometheus_client::registry::Registry::default();
    let registry = PluginRegistry::new(
        sluice_testkit::shared_engine().expect("engine"),
        services,
        PluginMetrics::register(&mut prometheus),
        sluice_builtins::components(),
        FetchOptions::default(),
    );
    let configured_statuses = registry.apply(&config).await;
    let expected = [
        ("argoproj-labs/gatewayAPI", "gatewayapi"),
        ("nginx", "nginx"),
        ("istio", "istio"),
        ("prometheus", "prometheus"),
        ("web", "web"),
        ("job", "job"),
        ("sluice/approval", "approval"),
    ];
    assert_eq!(
        configured_statuses.len(),
        expected.len(),
        "{configured_statuses:?}"
    );
    // Configuring compiles nothing: each built-in loads on its first use.
    for (configured, _) in expected {
        assert_eq!(
            configured_statuses[configured],
            PluginStatus::Configured,
            "{configured}"
        );
        assert_eq!(registry.metrics().compilations(configured), 0);
    }
    for (configured, builtin) in expected {
        let builtin = BUILTINS
            .iter()
            .find(|candidate| candidate.name == builtin)
            .expect("listed built-in");
        let loaded = match builtin.kind {
            BuiltinKind::TrafficRouter => registry.traffic_router(configured).await.map(drop),
            BuiltinKind::MetricProvider => registry.metric_provider(configured).await.map(drop),
            BuiltinKind::Step => registry.step_plugin(configured).await.map(drop),
        };
        loaded.unwrap_or_else(|error| panic!("{configured}: {error}"));
        assert_eq!(registry.metrics().compilations(configured), 1);
    }
    let statuses = registry.status();
    for (configured, builtin) in expected {
        let builtin = BUILTINS
            .iter()
            .find(|candidate| candidate.name == builtin)
            .expect("listed built-in");
        match &statuses[configured] {
            PluginStatus::Ready {
                digest,
                plugin_type,
            } => {
                assert_eq!(digest, &sha256_hex(builtin.wasm), "{configured}");
                assert_eq!(plugin_type, builtin.plugin_type, "{configured}");
            }
            failed => panic!("{configured}: {failed:?}"),
        }
    }
}
