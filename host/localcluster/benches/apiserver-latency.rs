//! Loopback latency of the local kube-apiserver for a custom resource: `GET` of the object and
//! merge-`PATCH` of its status subresource, median and p99.
//!
//! `cargo bench -p sluice-localcluster --bench apiserver-latency` (requests per operation:
//! `SLUICE_BENCH_REQUESTS`, default 500).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::json;
use sluice_localcluster::{LocalCluster, Options};

const WIDGET_CRD: &str = include_str!("../tests/fixtures/widget-crd.yaml");

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let requests: usize = std::env::var("SLUICE_BENCH_REQUESTS")
        .ok()
        .map(|v| v.parse())
        .transpose()
        .context("SLUICE_BENCH_REQUESTS must be a number")?
        .unwrap_or(500)
        .max(200);

    let started = Instant::now();
    let cluster = LocalCluster::start_with(Options {
        crd_dirs: Vec::new(),
        kubelet: None,
        ..Options::default()
    })
    .await?;
    println!(
        "cluster started in {:?} ({})",
        started.elapsed(),
        cluster.server_url()
    );
    cluster.install_crd_yaml(WIDGET_CRD).await?;

    let ns = cluster.namespace("latency").await?;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.sluice.dev", "v1", "Widget"),
        "widgets",
    );
    let widgets = ns.dynamic_api(&resource);
    let mut widget = DynamicObject::new("bench", &resource).within(ns.name());
    widget.data = json!({"spec": {"replicas": 3, "image": "app:v1"}});
    widgets.create(&PostParams::default(), &widget).await?;

    let patch = |i: usize| {
        Patch::Merge(json!({"status": {
            "observedGeneration": i,
            "phase": "Progressing",
            "message": format!("step {i}"),
        }}))
    };
    // Warm up connections and caches.
    for i in 0..20 {
        widgets.get("bench").await?;
        widgets
            .patch_status("bench", &PatchParams::default(), &patch(i))
            .await?;
    }

    let mut gets = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        widgets.get("bench").await?;
        gets.push(t.elapsed());
    }
    let mut patches = Vec::with_capacity(requests);
    for i in 0..requests {
        let t = Instant::now();
        widgets
            .patch_status("bench", &PatchParams::default(), &patch(i))
            .await?;
        patches.push(t.elapsed());
    }
    report("GET custom resource", gets);
    report("merge-PATCH custom resource status", patches);
    Ok(())
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{what:<36} n={:<5} median={:>8.3?} p99={:>8.3?} mean={:>8.3?} min={:>8.3?} max={:>8.3?}",
        samples.len(),
        at(0.5),
        at(0.99),
        mean,
        samples[0],
        samples[samples.len() - 1],
    );
}
