//! Sluice's generated CRDs (`crds/`) on a real apiserver: they install, every manifest in
//! `examples/` is accepted, and a Rollout's status round-trips through the status subresource.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::{Scope, pinned_kind};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::cluster;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Installs `crds/*.yaml` and checks that the Rollout CRD is among them.
async fn install_sluice_crds() -> anyhow::Result<Vec<String>> {
    let installed = cluster().install_crds(&repo_root().join("crds")).await?;
    ensure!(
        installed.iter().any(|n| n == "rollouts.argoproj.io"),
        "crds/ holds no rollouts.argoproj.io CRD (found {installed:?}); generate it with \
         `cargo run -p sluice -- crds --output-dir crds`"
    );
    Ok(installed)
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_crds_install_and_every_example_is_accepted() -> anyhow::Result<()> {
    let installed = install_sluice_crds().await?;
    for expected in [
        "analysistemplates.argoproj.io",
        "clusteranalysistemplates.argoproj.io",
        "analysisruns.argoproj.io",
        "experiments.argoproj.io",
    ] {
        ensure!(
            installed.iter().any(|n| n == expected),
            "crds/ lacks {expected}: {installed:?}"
        );
    }

    let files = yaml_files(&repo_root().join("examples"))?;
    let ns = cluster().namespace("examples").await?;
    let client = ns.client();
    let mut documents = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = Value::deserialize(document)
                .with_context(|| format!("{} document {index}", file.display()))?;
            if !value.is_null() {
                documents.push((format!("{} document {index}", file.display()), value));
            }
        }
    }
    ensure!(
        documents.iter().any(|(_, d)| d["kind"] == "Rollout"),
        "examples/*.yaml holds no Rollout ({} documents in {} files)",
        documents.len(),
        files.len()
    );

    // CRDs and Namespaces are applied for real, so that the rest can refer to them.
    let mut failures = Vec::new();
    for (origin, doc) in documents
        .iter()
        .filter(|(_, d)| d["kind"] == "CustomResourceDefinition")
    {
        if let Err(e) = cluster()
            .install_crd_yaml(&serde_json::to_string(doc)?)
            .await
        {
            failures.push(format!("{origin}: {e}"));
        }
    }
    let mut namespaces: Vec<String> = documents
        .iter()
        .filter_map(|(_, d)| match d["kind"].as_str() {
            Some("Namespace") => d.pointer("/metadata/name")?.as_str().map(str::to_owned),
            _ => d
                .pointer("/metadata/namespace")?
                .as_str()
                .map(str::to_owned),
        })
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let namespace_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for name in &namespaces {
        namespace_api
            .patch(
                name,
                &PatchParams::apply("sluice-examples-test"),
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                })),
            )
            .await?;
    }

    let params = PatchParams::apply("sluice-examples-test").force().dry_run();
    let mut accepted = 0;
    for (origin, doc) in &documents {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind == "CustomResourceDefinition" || kind == "Namespace" {
            accepted += 1;
            continue;
        }
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (resource, caps) =
            match pinned_kind(&client, &GroupVersionKind::gvk(group, version, kind)).await {
                Ok(found) => found,
                Err(e) => {
                    failures.push(format!(
                        "{origin}: {api_version} {kind} is not served by the cluster: {e}"
                    ));
                    continue;
                }
            };
        let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
            let namespace = doc
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(ns.name());
            Api::namespaced_with(client.clone(), namespace, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        match api.patch(name, &params, &Patch::Apply(doc)).await {
            Ok(_) => accepted += 1,
            Err(e) => failures.push(format!("{origin}: {kind} {name} rejected: {e}")),
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} example documents rejected:\n{}",
            failures.len(),
            documents.len(),
            failures.join("\n")
        );
    }
    ensure!(accepted == documents.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_round_trips_through_the_status_subresource() -> anyhow::Result<()> {
    install_sluice_crds().await?;
    let ns = cluster().namespace("rollout-status").await?;
    let (resource, _) = pinned_kind(
        &ns.client(),
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
    )
    .await?;
    let rollouts = ns.dynamic_api(&resource);
    let mut rollout = DynamicObject::new("demo", &resource);
    rollout.data = json!({"spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "demo"}},
        "template": {
            "metadata": {"labels": {"app": "demo"}},
            "spec": {"containers": [{"name": "app", "image": "registry.local/demo:v1"}]},
        },
        "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}},
    }});
    let created = rollouts.create(&PostParams::default(), &rollout).await?;
    ensure!(created.metadata.generation == Some(1));

    let now = "2025-01-01T00:00:00Z";
    let status = json!({
        "phase": "Paused",
        "message": "",
        "currentPodHash": "6b9f8c7d5",
        "stableRS": "6b9f8c7d5",
        "observedGeneration": "1",
        "replicas": 2,
        "updatedReplicas": 1,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "currentStepIndex": 1,
        "currentStepHash": "5f7b9c6d8",
        "selector": "app=demo",
        "conditions": [{
            "type": "Progressing", "status": "True", "reason": "RolloutPaused", "message": "",
            "lastUpdateTime": now, "lastTransitionTime": now,
        }],
    });
    rollouts
        .patch_status(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    let read = rollouts.get_status("demo").await?;
    let stored = read.data.get("status").context("status stored")?;
    let mut lost = Vec::new();
    for (key, value) in status.as_object().context("object")? {
        if stored.get(key) != Some(value) {
            lost.push(format!(
                "{key}: sent {value}, read back {:?}",
                stored.get(key)
            ));
        }
    }
    ensure!(
        lost.is_empty(),
        "status fields not round-tripped:\n{}",
        lost.join("\n")
    );
    ensure!(
        read.metadata.generation == Some(1),
        "status write bumped generation"
    );

    let abort = rollouts
        .patch_status(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"abort": true}})),
        )
        .await?;
    ensure!(
        abort.data["status"]["abort"] == true
            && abort.data["status"]["currentPodHash"] == "6b9f8c7d5"
    );

    let spec_change = rollouts
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await?;
    ensure!(spec_change.metadata.generation == Some(2));
    Ok(())
}
