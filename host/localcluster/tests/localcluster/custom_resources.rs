//! Generic custom-resource behaviour the controller relies on, checked on a small test CRD.

use anyhow::{Context as _, bail, ensure};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::json;

use crate::support::cluster;

const WIDGET_CRD: &str = include_str!("../fixtures/widget-crd.yaml");

async fn widgets(prefix: &str) -> anyhow::Result<(Api<DynamicObject>, ApiResource, String)> {
    let installed = cluster().install_crd_yaml(WIDGET_CRD).await?;
    ensure!(installed == ["widgets.test.sluice.dev"], "{installed:?}");
    let ns = cluster().namespace(prefix).await?;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.sluice.dev", "v1", "Widget"),
        "widgets",
    );
    Ok((ns.dynamic_api(&resource), resource, ns.name().to_owned()))
}

fn widget(resource: &ApiResource, name: &str, replicas: i64) -> DynamicObject {
    let mut widget = DynamicObject::new(name, resource);
    widget.data = json!({"spec": {"replicas": replicas, "image": "app:v1"}});
    widget
}

fn generation(object: &DynamicObject) -> anyhow::Result<i64> {
    object.metadata.generation.context("metadata.generation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_round_trips_through_the_status_subresource_including_empty_strings()
-> anyhow::Result<()> {
    let (api, resource, _) = widgets("cr-status").await?;
    let mut created = api
        .create(&PostParams::default(), &widget(&resource, "w", 1))
        .await?;
    ensure!(created.data.get("status").is_none(), "status starts empty");

    // Status in a create or main-resource update is ignored with a status subresource.
    created.data["status"] = json!({"phase": "Ignored"});
    let replaced = api.replace("w", &PostParams::default(), &created).await?;
    ensure!(
        replaced.data.get("status").is_none(),
        "status written through the main resource: {:?}",
        replaced.data
    );

    let status = json!({"status": {
        "phase": "Healthy",
        "message": "",
        "currentPodHash": "",
        "observedGeneration": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "", "message": ""}],
    }});
    let patched = api
        .patch_status("w", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    ensure!(
        patched.data["status"] == status["status"],
        "patch response: {:?}",
        patched.data["status"]
    );
    let read = api.get_status("w").await?;
    ensure!(
        read.data["status"] == status["status"],
        "read back: {:?}",
        read.data["status"]
    );
    ensure!(
        read.data["spec"]["replicas"] == 1,
        "spec untouched by the status write"
    );

    // Spec sent to the status subresource is ignored; status is replaced wholesale.
    let mut whole = read.clone();
    whole.data["spec"]["replicas"] = json!(7);
    whole.data["status"] = json!({"phase": "Degraded", "message": ""});
    let replaced = api
        .replace_status("w", &PostParams::default(), &whole)
        .await?;
    ensure!(
        replaced.data["status"] == json!({"phase": "Degraded", "message": ""}),
        "{:?}",
        replaced.data
    );
    ensure!(
        replaced.data["spec"]["replicas"] == 1,
        "spec changed via status: {:?}",
        replaced.data
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_increments_on_spec_changes_only() -> anyhow::Result<()> {
    let (api, resource, _) = widgets("cr-generation").await?;
    let created = api
        .create(&PostParams::default(), &widget(&resource, "w", 1))
        .await?;
    ensure!(generation(&created)? == 1);

    let after_status = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Progressing"}})),
        )
        .await?;
    ensure!(
        generation(&after_status)? == 1,
        "status write bumped generation"
    );

    let after_labels = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}}})),
        )
        .await?;
    ensure!(
        generation(&after_labels)? == 1,
        "metadata write bumped generation"
    );

    let after_spec = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await?;
    ensure!(
        generation(&after_spec)? == 2,
        "spec write must bump generation"
    );

    let same_spec = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await?;
    ensure!(
        generation(&same_spec)? == 2,
        "no-op spec write bumped generation"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_update_is_rejected_with_409() -> anyhow::Result<()> {
    let (api, resource, _) = widgets("cr-conflict").await?;
    let created = api
        .create(&PostParams::default(), &widget(&resource, "w", 1))
        .await?;

    let mut first = created.clone();
    first.data["spec"]["replicas"] = json!(2);
    api.replace("w", &PostParams::default(), &first).await?;

    let mut stale = created.clone();
    stale.data["spec"]["replicas"] = json!(3);
    match api.replace("w", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) if status.code == 409 && status.is_conflict() => {}
        other => bail!("expected 409 Conflict for a stale spec update, got {other:?}"),
    }

    // The same holds for the status subresource.
    let mut stale_status = created;
    stale_status.data["status"] = json!({"phase": "Stale"});
    match api
        .replace_status("w", &PostParams::default(), &stale_status)
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        other => bail!("expected 409 Conflict for a stale status update, got {other:?}"),
    }
    let current = api.get("w").await?;
    ensure!(current.data["spec"]["replicas"] == 2, "{:?}", current.data);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_tracks_owners_and_conflicts() -> anyhow::Result<()> {
    let (api, _, namespace) = widgets("cr-ssa").await?;
    let manifest = |replicas: i64, image: &str| {
        json!({
            "apiVersion": "test.sluice.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": namespace},
            "spec": {"replicas": replicas, "image": image},
        })
    };
    let applied = api
        .patch(
            "w",
            &PatchParams::apply("gitops"),
            &Patch::Apply(manifest(1, "app:v1")),
        )
        .await?;
    ensure!(applied.data["spec"]["replicas"] == 1);

    // Re-applying the same manifest is a no-op.
    let again = api
        .patch(
            "w",
            &PatchParams::apply("gitops"),
            &Patch::Apply(manifest(1, "app:v1")),
        )
        .await?;
    ensure!(
        again.metadata.resource_version == applied.metadata.resource_version,
        "no-op apply wrote"
    );

    // Another manager taking an owned field conflicts unless it forces.
    let partial = json!({
        "apiVersion": "test.sluice.dev/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": namespace},
        "spec": {"replicas": 5},
    });
    match api
        .patch(
            "w",
            &PatchParams::apply("autoscaler"),
            &Patch::Apply(&partial),
        )
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        other => bail!("expected an apply conflict, got {other:?}"),
    }
    let forced = api
        .patch(
            "w",
            &PatchParams::apply("autoscaler").force(),
            &Patch::Apply(&partial),
        )
        .await?;
    ensure!(forced.data["spec"]["replicas"] == 5 && forced.data["spec"]["image"] == "app:v1");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    ensure!(
        managers.contains(&"gitops".to_owned()) && managers.contains(&"autoscaler".to_owned()),
        "{managers:?}"
    );

    // Apply works on the status subresource too.
    let status = json!({
        "apiVersion": "test.sluice.dev/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": namespace},
        "status": {"phase": "Healthy", "message": ""},
    });
    let with_status = api
        .patch_status(
            "w",
            &PatchParams::apply("sluice").force(),
            &Patch::Apply(&status),
        )
        .await?;
    ensure!(
        with_status.data["status"]["phase"] == "Healthy"
            && with_status.data["status"]["message"] == ""
    );
    Ok(())
}
