//! `undo [--to-revision N]`: put the pod template of an earlier revision back.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplate;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::Value;
use sluice_api::rollout::Rollout;

use super::rollouts;
use crate::kube_context::Cluster;
use crate::lookup;
use crate::patches::{UndoPlan, undo_plan};

/// Arguments of `undo`.
#[derive(Args)]
pub struct UndoArgs {
    /// The rollout.
    #[arg(value_name = "ROLLOUT")]
    name: String,
    /// The revision to go back to (default: the previous one).
    #[arg(long, value_name = "N")]
    to_revision: Option<i64>,
    #[command(flatten)]
    cluster: crate::kube_context::ClusterArgs,
}

/// Where a rollout's template lives: in the Rollout, or in the object its `workloadRef` names.
enum TemplateOwner {
    Rollout,
    Deployment(String),
    ReplicaSet(String),
    PodTemplate(String),
}

impl TemplateOwner {
    fn of(rollout: &Rollout) -> anyhow::Result<Self> {
        let Some(reference) = &rollout.spec.workload_ref else {
            return Ok(Self::Rollout);
        };
        let name = reference.name.clone().unwrap_or_default();
        match reference.kind.as_deref() {
            Some("Deployment") => Ok(Self::Deployment(name)),
            Some("ReplicaSet") => Ok(Self::ReplicaSet(name)),
            Some("PodTemplate") => Ok(Self::PodTemplate(name)),
            other => anyhow::bail!(
                "workload of kind {} is not supported: workloadRef must name a Deployment, ReplicaSet or PodTemplate",
                other.unwrap_or("(none)")
            ),
        }
    }

    fn template_path(&self) -> &'static str {
        match self {
            Self::PodTemplate(_) => "/template",
            _ => "/spec/template",
        }
    }

    async fn current_template(
        &self,
        cluster: &Cluster,
        rollout: &Rollout,
    ) -> anyhow::Result<Option<Value>> {
        let client = cluster.client.clone();
        let namespace = &cluster.namespace;
        let template = match self {
            Self::Rollout => rollout.spec.template.as_ref().map(serde_json::to_value),
            Self::Deployment(name) => Api::<Deployment>::namespaced(client, namespace)
                .get(name)
                .await?
                .spec
                .map(|spec| serde_json::to_value(spec.template)),
            Self::ReplicaSet(name) => Api::<ReplicaSet>::namespaced(client, namespace)
                .get(name)
                .await?
                .spec
                .and_then(|spec| spec.template)
                .as_ref()
                .map(serde_json::to_value),
            Self::PodTemplate(name) => Api::<PodTemplate>::namespaced(client, namespace)
                .get(name)
                .await?
                .template
                .as_ref()
                .map(serde_json::to_value),
        };
        Ok(template.transpose()?)
    }

    async fn patch(&self, cluster: &Cluster, rollout: &str, patch: &Value) -> anyhow::Result<()> {
        let patch: Patch<Value> = Patch::Json(serde_json::from_value(patch.clone())?);
        let params = PatchParams::default();
        let client = cluster.client.clone();
        let namespace = &cluster.namespace;
        match self {
            Self::Rollout => {
                Api::<Rollout>::namespaced(client, namespace)
                    .patch(rollout, &params, &patch)
                    .await?;
            }
            Self::Deployment(name) => {
                Api::<Deployment>::namespaced(client, namespace)
                    .patch(name, &params, &patch)
                    .await?;
            }
            Self::ReplicaSet(name) => {
                Api::<ReplicaSet>::namespaced(client, namespace)
                    .patch(name, &params, &patch)
                    .await?;
            }
            Self::PodTemplate(name) => {
                Api::<PodTemplate>::namespaced(client, namespace)
                    .patch(name, &params, &patch)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Restores the template of `--to-revision` (default: the previous revision) with a JSON patch.
pub async fn run(args: &UndoArgs) -> anyhow::Result<ExitCode> {
    let (cluster, api) = rollouts(&args.cluster).await?;
    let rollout = lookup::get(&api, &cluster.namespace, &args.name).await?;
    let owner = TemplateOwner::of(&rollout)?;
    let current = owner.current_template(&cluster, &rollout).await?;
    let replica_sets = Api::<ReplicaSet>::namespaced(cluster.client.clone(), &cluster.namespace)
        .list(&ListParams::default())
        .await
        .context("listing ReplicaSets")?
        .items;
    match undo_plan(
        &rollout,
        owner.template_path(),
        current.as_ref(),
        &replica_sets,
        args.to_revision,
    )? {
        UndoPlan::AlreadyAtRevision { revision } => {
            println!("skipped rollback (current template already matches revision {revision})");
        }
        UndoPlan::Restore { revision, patch } => {
            owner
                .patch(&cluster, &args.name, &patch)
                .await
                .with_context(|| format!("failed restoring revision {revision}"))?;
            println!(
                "rollout '{}' undo (template of revision {revision} restored)",
                args.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
