//! Each misbehaving fixture is contained: the call fails with the right `CallError` within its
//! budget, and the process stays healthy.

mod common;

use std::time::{Duration, Instant};

use common::fixture;
use sluice_runtime::{Capability, Limits};
use sluice_testkit::{CallError, PluginHarness, analysis_context, rollout_context};

fn limits(cpu_ms: u64, wall_ms: u64, memory_mib: u64) -> Limits {
    Limits {
        cpu: Duration::from_millis(cpu_ms),
        wall: Duration::from_millis(wall_ms),
        memory_bytes: memory_mib << 20,
        ..Limits::default()
    }
}

#[tokio::test]
async fn endless_loop_is_stopped_by_the_cpu_budget() {
    let harness = PluginHarness::traffic_router(fixture("endless-loop"))
        .unwrap()
        .limits(limits(200, 10_000, 32));
    let router = harness.load_router().await.unwrap();
    let started = Instant::now();
    let err = router
        .set_weight(&rollout_context("shop", "web", "{}"), 10, &[])
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, CallError::CpuExhausted { .. }), "{err}");
    assert!(
        elapsed < Duration::from_millis(1_500),
        "stopped after {elapsed:?}"
    );
    assert_eq!(
        harness
            .metrics()
            .errors(harness.plugin_name(), "set-weight", "cpu_exhausted"),
        1
    );
}

#[tokio::test]
async fn memory_hog_is_stopped_at_the_limit() {
    let harness = PluginHarness::traffic_router(fixture("memory-hog"))
        .unwrap()
        .limits(limits(2_000, 10_000, 16));
    let router = harness.load_router().await.unwrap();
    let err = router
        .set_weight(&rollout_context("shop", "web", "{}"), 10, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::OutOfMemory { limit_bytes, .. } if limit_bytes == 16 << 20),
        "{err}"
    );
    let high_water = harness.metrics().memory_high_water(harness.plugin_name());
    assert!(
        high_water > 8 << 20 && high_water <= 16 << 20,
        "high water {high_water}"
    );
}

#[tokio::test]
async fn panics_aborts_and_stack_overflows_are_traps() {
    let harness = PluginHarness::traffic_router(fixture("trap")).unwrap();
    let router = harness.load_router().await.unwrap();
    let ctx = rollout_context("shop", "web", "{}");
    let err = router.set_weight(&ctx, 10, &[]).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Trap { message, .. } if message.contains("unreachable")),
        "{err}"
    );
    let logs = harness.logs();
    assert!(
        logs.iter()
            .any(|l| l.message.contains("fixture panic while setting weight 10")),
        "{logs:?}"
    );
    let err = router.update_hash(&ctx, "a", "b", &[]).await.unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }), "{err}");
    let err = router.remove_managed_routes(&ctx).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Trap { message, .. } if message.contains("stack")),
        "{err}"
    );
    // The plugin still serves calls that do not trap.
    assert_eq!(router.plugin_type().await.unwrap(), "trap");
}

#[tokio::test]
async fn forbidden_kube_and_http_access_is_denied_and_counted() {
    let harness = PluginHarness::metric_provider(fixture("forbidden"))
        .unwrap()
        .grants_yaml("kube: [{kinds: [ConfigMap], verbs: [get]}]\nhttp: ['http://prometheus.monitoring:9090']")
        .unwrap();
    let provider = harness.load_provider().await.unwrap();
    let ctx = analysis_context("shop", "run-1", "success-rate", "{}");
    let err = provider.run(&ctx).await.unwrap_err();
    assert!(
        matches!(&err, CallError::AccessDenied { message, .. } if message.contains("get Secret in namespace kube-system")),
        "{err}"
    );
    let current = sluice_testkit::Measurement {
        phase: sluice_testkit::AnalysisPhase::Running,
        value: None,
        message: None,
        started_at: Some(1),
        finished_at: None,
        resume_at: None,
        metadata: Vec::new(),
    };
    let err = provider.resume(&ctx, &current).await.unwrap_err();
    assert!(
        matches!(&err, CallError::AccessDenied { message, .. } if message.contains("http://169.254.169.254:80")),
        "{err}"
    );
    let name = harness.plugin_name();
    assert_eq!(harness.metrics().denials(name, Capability::Kube), 1);
    assert_eq!(harness.metrics().denials(name, Capability::Http), 1);
    let exchanges = harness.exchanges();
    assert_eq!(exchanges.len(), 2, "{exchanges:?}");
    assert!(
        exchanges
            .iter()
            .all(|e| e.response["error"]["kind"] == "access-denied")
    );
}

#[tokio::test]
async fn garbage_output_is_a_clear_error() {
    let harness = PluginHarness::metric_provider(fixture("garbage"))
        .unwrap()
        .grants_yaml("kube: [{kinds: [ConfigMap], verbs: [patch]}]")
        .unwrap();
    let provider = harness.load_provider().await.unwrap();
    let ctx = analysis_context("shop", "run-1", "m", "{}");
    let err = provider.run(&ctx).await.unwrap_err();
    assert!(
        matches!(&err, CallError::InvalidOutput { message, .. } if message.contains("must not have finished-at")),
        "{err}"
    );
    let current = provider_measurement();
    let err = provider.resume(&ctx, &current).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Plugin { error: sluice_testkit::sluice_runtime::PluginError::Internal(m), .. }
            if m.contains("patch body is not valid JSON")),
        "{err}"
    );
}

fn provider_measurement() -> sluice_testkit::Measurement {
    sluice_testkit::Measurement {
        phase: sluice_testkit::AnalysisPhase::Running,
        value: None,
        message: None,
        started_at: None,
        finished_at: None,
        resume_at: None,
        metadata: Vec::new(),
    }
}

#[tokio::test]
async fn a_plugin_blocked_in_a_host_call_hits_the_wall_clock_timeout() {
    let harness = PluginHarness::traffic_router(fixture("slow-host"))
        .unwrap()
        .limits(limits(1_000, 300, 32))
        .grants_yaml("kube: [{kinds: [ConfigMap], verbs: [get]}]")
        .unwrap();
    let router = harness.load_router().await.unwrap();
    let ctx = rollout_context("shop", "web", "{}");
    let started = Instant::now();
    let err = router.set_weight(&ctx, 10, &[]).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    harness.kube().set_latency(Some(Duration::from_secs(30)));
    let started = Instant::now();
    let err = router.verify_weight(&ctx, 10, &[]).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_calls_with_misbehaving_plugins_leave_the_host_healthy() {
    let echo = PluginHarness::traffic_router(fixture("echo-router"))
        .unwrap()
        .grants_yaml("kube: [{kinds: [ConfigMap], verbs: [get, patch]}]")
        .unwrap();
    let looping = PluginHarness::traffic_router(fixture("endless-loop"))
        .unwrap()
        .limits(limits(100, 5_000, 32));
    let hog = PluginHarness::traffic_router(fixture("memory-hog"))
        .unwrap()
        .limits(limits(2_000, 5_000, 16));
    let trap = PluginHarness::traffic_router(fixture("trap")).unwrap();
    let (echo_router, loop_router, hog_router, trap_router) = (
        echo.load_router().await.unwrap(),
        looping.load_router().await.unwrap(),
        hog.load_router().await.unwrap(),
        trap.load_router().await.unwrap(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let router = match i % 4 {
            0 | 1 => echo_router.clone(),
            2 if i % 8 == 2 => loop_router.clone(),
            2 => hog_router.clone(),
            _ => trap_router.clone(),
        };
        tasks.spawn(async move {
            let ctx = rollout_context("shop", &format!("web-{i}"), "{}");
            (i, router.set_weight(&ctx, i, &[]).await)
        });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.expect("task panicked");
        match (i % 4, result) {
            (0 | 1, Ok(())) => ok += 1,
            (0 | 1, Err(e)) => panic!("well-behaved call {i} failed: {e}"),
            (2, Err(CallError::CpuExhausted { .. } | CallError::OutOfMemory { .. })) => {}
            (3, Err(CallError::Trap { .. })) => {}
            (_, other) => panic!("call {i}: unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 50);
    for i in (0..100).filter(|i| i % 4 < 2) {
        let map = echo
            .kube()
            .object("v1", "ConfigMap", Some("shop"), &format!("web-{i}-echo"))
            .unwrap();
        assert_eq!(map["data"]["weight"], i.to_string());
    }
}
