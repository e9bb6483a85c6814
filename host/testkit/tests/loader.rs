//! Loader and registry: precise load errors, isolation between plugins, reload without restart,
//! built-ins loaded on their first use.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use common::fixture;
use sluice_runtime::{
    FetchOptions, HostServices, Limits, METRIC_PROVIDER_PLUGINS_KEY, PluginMetrics, PluginRegistry,
    PluginStatus, TRAFFIC_ROUTER_PLUGINS_KEY, parse_plugin_config, sha256_hex,
};
use sluice_testkit::{CallError, InMemoryKube, ScriptedHttp, rollout_context, shared_engine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn registry(builtins: BTreeMap<String, Bytes>) -> PluginRegistry {
    let services = HostServices {
        kube: Arc::new(InMemoryKube::new()),
        http: Arc::new(ScriptedHttp::new()),
        observer: None,
    };
    let fetch = FetchOptions {
        allow_plain_http: true,
        ..FetchOptions::default()
    };
    PluginRegistry::new(
        shared_engine().unwrap(),
        services,
        PluginMetrics::unregistered(),
        builtins,
        fetch,
    )
}

fn config(routers: &str, providers: &str) -> sluice_runtime::PluginConfig {
    let data = BTreeMap::from([
        (TRAFFIC_ROUTER_PLUGINS_KEY.to_owned(), routers.to_owned()),
        (METRIC_PROVIDER_PLUGINS_KEY.to_owned(), providers.to_owned()),
    ]);
    parse_plugin_config(&data, &Limits::default()).unwrap()
}

fn failure(status: &BTreeMap<String, PluginStatus>, name: &str) -> String {
    match &status[name] {
        PluginStatus::Failed { reason, .. } => reason.clone(),
        ready => panic!("{name} should have failed, is {ready:?}"),
    }
}

/// Serves `body` once per connection on 127.0.0.1 (a minimal HTTP/1.1 server).
async fn serve(body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    format!("http://{address}/plugin.wasm")
}

#[tokio::test]
async fn each_bad_plugin_fails_precisely_while_the_others_serve() {
    let echo_router = std::fs::read(fixture("echo-router")).unwrap();
    let echo_digest = sha256_hex(&echo_router);
    let url = serve(echo_router.clone()).await;
    let builtins = BTreeMap::from([("echo".to_owned(), Bytes::from(echo_router))]);
    let registry = registry(builtins);
    let routers = format!(
        r#"
- {{name: good, location: "builtin:echo", grants: {{kube: [{{kinds: [ConfigMap], verbs: [get, patch]}}]}}}}
- {{name: downloaded, location: "{url}", sha256: "{echo_digest}"}}
- {{name: bad-sha, location: "{url}", sha256: "{zeros}"}}
- {{name: missing-file, location: "file:///nonexistent/plugin.wasm"}}
- {{name: wrong-world, location: "file://{provider}"}}
- {{name: missing-import, location: "file://{greedy}"}}
- {{name: wrong-type, location: "builtin:echo", type: gatewayAPI}}
- {{name: unknown-builtin, location: "builtin:nope"}}
"#,
        zeros = "0".repeat(64),
        provider = fixture("echo-provider").display(),
        greedy = fixture("greedy-router").display(),
    );
    let status = registry.apply(&config(&routers, "")).await;

    // Built-ins load on their first use; everything else is checked now.
    assert_eq!(status["good"], PluginStatus::Configured);
    assert_eq!(status["wrong-type"], PluginStatus::Configured);
    assert!(
        matches!(&status["downloaded"], PluginStatus::Ready { digest, .. } if *digest == echo_digest)
    );
    let bad_sha = failure(&status, "bad-sha");
    assert!(
        bad_sha.contains("sha256 mismatch") && bad_sha.contains(&echo_digest),
        "{bad_sha}"
    );
    let missing = failure(&status, "missing-file");
    assert!(
        missing.contains("cannot read plugin file /nonexistent/plugin.wasm"),
        "{missing}"
    );
    let wrong_world = failure(&status, "wrong-world");
    assert!(
        wrong_world.contains("does not implement world sluice:plugin/traffic-router-plugin"),
        "{wrong_world}"
    );
    assert!(
        wrong_world.contains("sluice:plugin/metric-provider@0.1.0"),
        "{wrong_world}"
    );
    let missing_import = failure(&status, "missing-import");
    assert!(
        missing_import.contains("wasi:http/outgoing-handler@0.2.12"),
        "{missing_import}"
    );
    assert!(
        missing_import.contains("does not provide to sluice:plugin/traffic-router-plugin"),
        "{missing_import}"
    );
    assert!(failure(&status, "unknown-builtin").contains("built-ins: echo"));

    let router = registry.traffic_router("good").await.unwrap();
    router
        .set_weight(&rollout_context("shop", "web", "{}"), 20, &[])
        .await
        .unwrap();
    assert!(
        matches!(&registry.status()["good"], PluginStatus::Ready { plugin_type, .. } if plugin_type == "echo")
    );
    // A built-in that fails its first load reports why, to this use, later uses and the status.
    for _ in 0..2 {
        let err = registry.traffic_router("wrong-type").await.err().unwrap();
        assert!(
            matches!(&err, CallError::Load { plugin, reason }
                if plugin == "wrong-type" && reason.contains(r#"configured "gatewayAPI", plugin reports "echo""#)),
            "{err}"
        );
    }
    let wrong_type = failure(&registry.status(), "wrong-type");
    assert!(
        wrong_type.contains(r#"configured "gatewayAPI", plugin reports "echo""#),
        "{wrong_type}"
    );
    assert_eq!(
        registry.metrics().compilations("wrong-type"),
        0,
        "the component compiled for `good` is reused"
    );

    let err = registry.traffic_router("bad-sha").await.err().unwrap();
    assert!(
        matches!(&err, CallError::Load { reason, .. } if reason.contains("sha256 mismatch")),
        "{err}"
    );
    assert!(registry.metric_provider("good").await.is_err());
}

#[tokio::test]
async fn a_builtin_compiles_once_on_its_first_use_even_when_first_used_concurrently() {
    let echo_router = std::fs::read(fixture("echo-router")).unwrap();
    let builtins = BTreeMap::from([("echo".to_owned(), Bytes::from(echo_router))]);
    let registry = registry(builtins);
    let entry = r#"- {name: lazy, location: "builtin:echo", type: echo}"#;
    let status = registry.apply(&config(entry, "")).await;
    assert_eq!(status["lazy"], PluginStatus::Configured);
    assert_eq!(registry.metrics().compilations("lazy"), 0);
    // Asking for the wrong kind neither loads it nor marks it failed.
    assert!(registry.metric_provider("lazy").await.is_err());
    assert_eq!(registry.status()["lazy"], PluginStatus::Configured);

    let uses = (0..8).map(|_| registry.traffic_router("lazy"));
    let routers = futures::future::join_all(uses).await;
    for router in routers {
        assert_eq!(router.unwrap().plugin_type().await.unwrap(), "echo");
    }
    assert_eq!(registry.metrics().compilations("lazy"), 1);
    assert!(
        matches!(&registry.status()["lazy"], PluginStatus::Ready { plugin_type, .. } if plugin_type == "echo")
    );

    // Re-applying the same entry keeps the loaded plugin; a changed entry of a loaded built-in
    // is reloaded at once (from the compiled component), and a removed one is gone.
    registry.apply(&config(entry, "")).await;
    assert!(matches!(
        &registry.status()["lazy"],
        PluginStatus::Ready { .. }
    ));
    let changed = r#"- {name: lazy, location: "builtin:echo", type: echo, args: [changed]}"#;
    let status = registry.apply(&config(changed, "")).await;
    assert!(
        matches!(&status["lazy"], PluginStatus::Ready { plugin_type, .. } if plugin_type == "echo"),
        "{status:?}"
    );
    assert_eq!(registry.metrics().compilations("lazy"), 1);
    registry.apply(&config("", "")).await;
    assert!(registry.traffic_router("lazy").await.is_err());
}

#[tokio::test]
async fn a_config_change_swaps_a_plugin_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wasm");
    std::fs::copy(fixture("echo-router"), &path).unwrap();
    let registry = registry(BTreeMap::new());
    let routers = format!("- {{name: swap, location: \"file://{}\"}}", path.display());
    let status = registry.apply(&config(&routers, "")).await;
    assert!(
        matches!(&status["swap"], PluginStatus::Ready { plugin_type, .. } if plugin_type == "echo")
    );
    let old = registry.traffic_router("swap").await.unwrap();

    // The file now holds a different router; applying the same config reloads it.
    std::fs::copy(fixture("trap"), &path).unwrap();
    let status = registry.apply(&config(&routers, "")).await;
    assert!(
        matches!(&status["swap"], PluginStatus::Ready { plugin_type, .. } if plugin_type == "trap")
    );
    assert_eq!(
        registry
            .traffic_router("swap")
            .await
            .unwrap()
            .plugin_type()
            .await
            .unwrap(),
        "trap"
    );
    // A handle taken before the swap keeps working on the old version.
    assert_eq!(old.plugin_type().await.unwrap(), "echo");

    // A broken update keeps the previous version serving and says so.
    std::fs::write(&path, b"not wasm").unwrap();
    let status = registry.apply(&config(&routers, "")).await;
    match &status["swap"] {
        PluginStatus::Failed {
            reason,
            serving_previous,
        } => {
            assert!(
                reason.contains("not a valid WebAssembly component"),
                "{reason}"
            );
            assert!(serving_previous.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        registry
            .traffic_router("swap")
            .await
            .unwrap()
            .plugin_type()
            .await
            .unwrap(),
        "trap"
    );

    // Removing the entry removes the plugin.
    registry.apply(&config("", "")).await;
    assert!(registry.traffic_router("swap").await.is_err());
}

/// A disabled step plugin is not loaded (its location is never read) and is reported as
/// disabled to callers, who complete its steps.
#[tokio::test]
async fn a_disabled_step_plugin_is_not_loaded() {
    let registry = registry(BTreeMap::new());
    let data = BTreeMap::from([(
        sluice_runtime::STEP_PLUGINS_KEY.to_owned(),
        "- {name: acme/freeze, location: 'file:///does/not/exist.wasm', disabled: true}".to_owned(),
    )]);
    let status = registry
        .apply(&parse_plugin_config(&data, &Limits::default()).unwrap())
        .await;
    assert_eq!(status["acme/freeze"], PluginStatus::Disabled);
    match registry.step_plugin("acme/freeze").await {
        Err(CallError::Disabled { plugin }) => assert_eq!(plugin, "acme/freeze"),
        Err(other) => panic!("expected Disabled, got {other}"),
        Ok(_) => panic!("a disabled plugin was handed out"),
    }
    match registry.traffic_router("acme/freeze").await {
        Err(CallError::Load { reason, .. }) => {
            assert!(reason.contains("traffic-router"), "{reason}")
        }
        Err(other) => panic!("expected a load error, got {other}"),
        Ok(_) => panic!("a step plugin was handed out as a router"),
    }
}
