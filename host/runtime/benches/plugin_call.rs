//! Plugin call latency: a fresh instance per `set-weight` call (the production path), a "warm"
//! call (same instance reused, for comparison), and a Unix-socket ping-pong round trip: the
//! floor any out-of-process plugin (Argo's go-plugin) pays. Prints p50/p99 and the RSS cost of
//! loading one plugin.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_runtime::{
    BoxFuture, EngineOptions, Grants, Gvk, HostServices, HttpBackend, HttpCallLimits, HttpFailure,
    HttpRequest, HttpResponse, KubeBackend, KubeError, Limits, ListOptions, ObjectKey, ObjectPage,
    PatchBody, Plugin, PluginEngine, PluginKind, PluginMetrics, PluginSpec, RolloutContext,
    TrafficRouter,
};

/// No Kubernetes and no network: the benchmark measures the call path, not I/O.
struct Offline;

impl KubeBackend for Offline {
    fn get<'a>(&'a self, _: &'a ObjectKey) -> BoxFuture<'a, Result<serde_json::Value, KubeError>> {
        Box::pin(async { Err(KubeError::Unavailable("offline".into())) })
    }
    fn list<'a>(
        &'a self,
        _: &'a Gvk,
        _: Option<&'a str>,
        _: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectPage, KubeError>> {
        Box::pin(async { Err(KubeError::Unavailable("offline".into())) })
    }
    fn create<'a>(
        &'a self,
        _: &'a Gvk,
        _: Option<&'a str>,
        _: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, KubeError>> {
        Box::pin(async { Err(KubeError::Unavailable("offline".into())) })
    }
    fn patch<'a>(
        &'a self,
        _: &'a ObjectKey,
        _: PatchBody,
        _: &'a str,
    ) -> BoxFuture<'a, Result<serde_json::Value, KubeError>> {
        Box::pin(async { Ok(serde_json::json!({})) })
    }
    fn delete<'a>(&'a self, _: &'a ObjectKey) -> BoxFuture<'a, Result<(), KubeError>> {
        Box::pin(async { Ok(()) })
    }
}

impl HttpBackend for Offline {
    fn send(
        &self,
        _: HttpRequest,
        _: HttpCallLimits,
    ) -> BoxFuture<'static, Result<HttpResponse, HttpFailure>> {
        Box::pin(async { Err(HttpFailure::Connect("offline".into())) })
    }
}

fn context() -> RolloutContext {
    RolloutContext {
        namespace: "shop".into(),
        name: "web".into(),
        uid: "uid".into(),
        plugin_name: "bench".into(),
        plugin_config: "{}".into(),
        canary_service: "web-canary".into(),
        stable_service: "web-stable".into(),
        canary_pod_template_hash: "abc".into(),
        stable_pod_template_hash: "def".into(),
        rollout_json: "{}".into(),
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

fn socket_round_trips(count: usize) -> Vec<Duration> {
    let (mut client, mut server) = UnixStream::pair().expect("socket pair");
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while server.read_exact(&mut buf).is_ok() {
            if server.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut buf = [7u8; 64];
    let samples = (0..count)
        .map(|_| {
            let start = Instant::now();
            client.write_all(&buf).expect("write");
            client.read_exact(&mut buf).expect("read");
            start.elapsed()
        })
        .collect();
    drop(client);
    echo.join().expect("echo thread");
    samples
}

fn bench(c: &mut Criterion) {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let wasm_path = sluice_plugin_build::build_plugin(root, "sluice-fixture-echo-router")
        .expect("build echo router");
    let wasm: Arc<[u8]> = std::fs::read(&wasm_path).expect("read wasm").into();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let rss_before = rss_kib();
    let engine = PluginEngine::new(EngineOptions::default()).expect("engine");
    let services = HostServices {
        kube: Arc::new(Offline),
        http: Arc::new(Offline),
        observer: None,
    };
    let grants: sluice_runtime::GrantsSpec =
        serde_yaml::from_str("kube: [{kinds: [ConfigMap], verbs: [get, patch]}]").expect("grants");
    let spec = PluginSpec {
        name: "bench".into(),
        kind: PluginKind::TrafficRouter,
        grants: grants.validate().unwrap_or_else(|_| Grants::default()),
        limits: Limits::default(),
        args: Vec::new(),
        expected_type: None,
    };
    let router: TrafficRouter = runtime.block_on(async {
        let compiled = engine
            .compile_component(wasm.clone())
            .await
            .expect("compile");
        match engine
            .load_plugin(spec, &compiled, services, PluginMetrics::unregistered())
            .await
            .expect("load")
        {
            Plugin::TrafficRouter(router) => router,
            other => unreachable!("echo-router is a traffic router, not {other:?}"),
        }
    });
    let rss_after = rss_kib();
    let ctx = context();

    // Fresh instance per call, sampled for percentiles. set-weight makes one (offline) kube
    // patch, logs once and writes one stdout line: a realistic minimal router call.
    let fresh: Vec<Duration> = runtime.block_on(async {
        for _ in 0..200 {
            router.set_weight(&ctx, 10, &[]).await.expect("warm-up");
        }
        let mut samples = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let start = Instant::now();
            router.set_weight(&ctx, 10, &[]).await.expect("set-weight");
            samples.push(start.elapsed());
        }
        samples
    });
    // The cheapest export (no host calls) on a fresh instance: the instantiate + call floor.
    let fresh_type: Vec<Duration> = runtime.block_on(async {
        let mut samples = Vec::with_capacity(2_000);
        for _ in 0..2_000 {
            let start = Instant::now();
            black_box(router.plugin_type().await.expect("plugin-type"));
            samples.push(start.elapsed());
        }
        samples
    });
    let socket = socket_round_trips(20_000);
    let (fresh_p50, fresh_p99) = percentiles(fresh);
    let (type_p50, type_p99) = percentiles(fresh_type);
    let (socket_p50, socket_p99) = percentiles(socket);
    println!(
        "\n== sluice plugin call latency (allocator: {:?}) ==",
        engine.allocator()
    );
    println!(
        "fresh instance + set-weight (1 kube patch, 1 log, 1 stdout line): p50 {fresh_p50:?}  p99 {fresh_p99:?}"
    );
    println!(
        "fresh instance + plugin-type (no host calls):                     p50 {type_p50:?}  p99 {type_p99:?}"
    );
    println!(
        "unix socket ping-pong round trip (64 B):                          p50 {socket_p50:?}  p99 {socket_p99:?}"
    );
    println!(
        "RSS: engine + one compiled, loaded plugin ({} KiB component): +{} KiB",
        wasm.len() / 1024,
        rss_after.saturating_sub(rss_before)
    );

    builtin_call_times(root, &engine, &runtime);

    let mut group = c.benchmark_group("plugin_call");
    group.bench_function("fresh_instance_set_weight", |b| {
        b.iter(|| {
            runtime
                .block_on(router.set_weight(&ctx, 10, &[]))
                .expect("set-weight")
        });
    });
    group.bench_function("fresh_instance_plugin_type", |b| {
        b.iter(|| black_box(runtime.block_on(router.plugin_type()).expect("plugin-type")));
    });
    group.bench_function("unix_socket_round_trip", |b| {
        let (mut client, mut server) = UnixStream::pair().expect("socket pair");
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while server.read_exact(&mut buf).is_ok() && server.write_all(&buf).is_ok() {}
        });
        let mut buf = [7u8; 64];
        b.iter(|| {
            client.write_all(&buf).expect("write");
            client.read_exact(&mut buf).expect("read");
        });
        drop(client);
        echo.join().expect("echo thread");
    });
    group.finish();
}

/// Size and fresh-instance `plugin-type` time (instantiation plus the smallest call) of each
/// built-in plugin.
fn builtin_call_times(root: &Path, engine: &PluginEngine, runtime: &tokio::runtime::Runtime) {
    println!("built-in plugins (fresh instance + plugin-type, p50 / p99):");
    for (package, kind) in [
        ("sluice-plugin-gatewayapi", PluginKind::TrafficRouter),
        ("sluice-plugin-nginx", PluginKind::TrafficRouter),
        ("sluice-plugin-istio", PluginKind::TrafficRouter),
        ("sluice-plugin-prometheus", PluginKind::MetricProvider),
        ("sluice-plugin-web", PluginKind::MetricProvider),
        ("sluice-plugin-job", PluginKind::MetricProvider),
        ("sluice-plugin-approval", PluginKind::Step),
    ] {
        let path = sluice_plugin_build::build_plugin(root, package).expect("build the built-in");
        let wasm: Arc<[u8]> = std::fs::read(&path).expect("read wasm").into();
        let spec = PluginSpec {
            name: package.into(),
            kind,
            grants: Grants::default(),
            limits: Limits::default(),
            args: Vec::new(),
            expected_type: None,
        };
        let services = HostServices {
            kube: Arc::new(Offline),
            http: Arc::new(Offline),
            observer: None,
        };
        let plugin = runtime.block_on(async {
            let compiled = engine
                .compile_component(wasm.clone())
                .await
                .expect("compile");
            engine
                .load_plugin(spec, &compiled, services, PluginMetrics::unregistered())
                .await
                .expect("load")
        });
        let samples: Vec<Duration> = runtime.block_on(async {
            let mut samples = Vec::with_capacity(1_000);
            for _ in 0..1_100 {
                let start = Instant::now();
                match &plugin {
                    Plugin::TrafficRouter(router) => black_box(router.plugin_type().await),
                    Plugin::MetricProvider(provider) => black_box(provider.plugin_type().await),
                    Plugin::Step(step) => black_box(step.plugin_type().await),
                }
                .expect("plugin-type");
                samples.push(start.elapsed());
            }
            samples.split_off(100)
        });
        let (p50, p99) = percentiles(samples);
        println!(
            "  {package:<26} {:>4} KiB   {p50:?} / {p99:?}",
            wasm.len() / 1024
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
