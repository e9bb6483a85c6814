//! Executes a plan's actions in order; the first failure stops the plan.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use sluice_api::analysis::{AnalysisRun, AnalysisRunSpec};
use sluice_api::experiment::Experiment;
use sluice_api::labels;
use sluice_api::rollout::Rollout;
use sluice_core::analysis::{PodTemplateHashes, TemplateCatalog, build_run_spec};
use sluice_core::experiment::experiment_for_step;
use sluice_core::observed::RunKind;
use sluice_core::plan::{AnalysisRunRequest, ExperimentRequest, NewReplicaSet};
use sluice_core::{Action, Plan, RouterCall};

use super::routers::{RouterCallContext, call_routers, configured_routers};
use super::step_plugins::call_step_plugin;
use crate::context::{Context, await_cached, controller_reference};
use crate::error::{Error, Result};

/// A write whose result the caches must show before the next reconcile.
pub(crate) struct PendingWrite {
    key: ObjectRef<ReplicaSet>,
    resource_version: String,
}

/// Executes `plan.actions` for `rollout`, in order.
pub(crate) async fn execute(rollout: &Rollout, plan: &Plan, ctx: &Context) -> Result<()> {
    if plan.actions.is_empty() {
        return Ok(());
    }
    let namespace = rollout
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let writer = Writer {
        rollout,
        namespace: &namespace,
        ctx,
    };
    let routers = if plan
        .actions
        .iter()
        .any(|action| matches!(action, Action::Router(_)))
    {
        configured_routers(rollout)?
    } else {
        Vec::new()
    };
    let router_context = RouterCallContext {
        rollout,
        rollout_json: serde_json::to_string(rollout).map_err(|source| Error::Serialization {
            what: "Rollout".into(),
            source,
        })?,
        canary_hash: plan.status.current_pod_hash.clone().unwrap_or_default(),
        stable_hash: plan.status.stable_rs.clone().unwrap_or_default(),
    };
    let mut pending = Vec::new();
    for action in &plan.actions {
        tracing::debug!(?action, "executing");
        match action {
            Action::CreateReplicaSet(new) => pending.extend(writer.create_replica_set(new).await?),
            Action::ScaleReplicaSet { name, to, .. } => {
                pending.push(
                    writer
                        .patch_replica_set(name, json!({"spec": {"replicas": to}}))
                        .await?,
                );
            }
            Action::SetReplicaSetRevision { name, revision } => {
                let patch =
                    json!({"metadata": {"annotations": {labels::REVISION: revision.to_string()}}});
                pending.push(writer.patch_replica_set(name, patch).await?);
            }
            Action::SetScaleDownDeadline { name, deadline } => {
                let deadline = deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                let patch =
                    json!({"metadata": {"annotations": {labels::SCALE_DOWN_DEADLINE: deadline}}});
                pending.push(writer.patch_replica_set(name, patch).await?);
            }
            Action::RemoveScaleDownDeadline { name } => {
                let patch =
                    json!({"metadata": {"annotations": {labels::SCALE_DOWN_DEADLINE: null}}});
                pending.push(writer.patch_replica_set(name, patch).await?);
            }
            Action::DeleteReplicaSet { name } => {
                writer.delete::<ReplicaSet>(name, "ReplicaSet").await?
            }
            Action::SetRolloutRevision { revision } => {
                writer.patch_rollout_revision(*revision).await?;
            }
            Action::SetServiceSelector {
                service,
                pod_template_hash,
            } => {
                writer
                    .set_service_selector(service, pod_template_hash)
                    .await?
            }
            Action::Router(call) => {
                let verification =
                    call_routers(&ctx.plugins, &routers, &router_context, call).await?;
                if let (Some(verification), RouterCall::VerifyWeight { .. }) = (verification, call)
                {
                    ctx.remember_weight_verification(ObjectRef::from_obj(rollout), verification);
                }
            }
            Action::CreateAnalysisRun(request) => writer.create_analysis_run(request).await?,
            Action::TerminateAnalysisRun { name } => {
                writer
                    .patch::<AnalysisRun>(name, "AnalysisRun", json!({"spec": {"terminate": true}}))
                    .await?;
            }
            Action::TerminateExperiment { name } => {
                writer
                    .patch::<Experiment>(name, "Experiment", json!({"spec": {"terminate": true}}))
                    .await?;
            }
            Action::EvictPod { name } => writer.evict_pod(name).await?,
            Action::DeleteAnalysisRun { name } => {
                writer.delete::<AnalysisRun>(name, "AnalysisRun").await?
            }
            Action::DeleteExperiment { name } => {
                writer.delete::<Experiment>(name, "Experiment").await?
            }
            Action::CreateExperiment(request) => writer.create_experiment(request).await?,
            Action::StepPlugin(call) => {
                call_step_plugin(rollout, &router_context.rollout_json, call, ctx).await
            }
        }
    }
    for write in pending {
        await_cached(
            &ctx.stores.replica_sets,
            &write.key,
            &write.resource_version,
        )
        .await;
    }
    Ok(())
}

struct Writer<'a> {
    rollout: &'a Rollout,
    namespace: &'a str,
    ctx: &'a Context,
}

impl Writer<'_> {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.ctx.client.clone(), self.namespace)
    }

    fn count<T>(&self, kind: &str, verb: &str, result: &kube::Result<T>) {
        self.ctx
            .metrics
            .count_request(kind, self.namespace, verb, result);
    }

    fn owner_reference(&self) -> OwnerReference {
        controller_reference(self.rollout)
    }

    async fn create_replica_set(&self, new: &NewReplicaSet) -> Result<Option<PendingWrite>> {
        let mut selector = self.rollout.spec.selector.clone().unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(
                labels::POD_TEMPLATE_HASH.into(),
                new.pod_template_hash.clone(),
            );
        let mut rs_labels = new
            .template
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.labels.clone())
            .unwrap_or_default();
        rs_labels.insert(
            labels::POD_TEMPLATE_HASH.into(),
            new.pod_template_hash.clone(),
        );
        let replica_set = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(new.name.clone()),
                namespace: Some(self.namespace.to_string()),
                labels: Some(rs_labels),
                annotations: Some(BTreeMap::from([(
                    labels::REVISION.to_string(),
                    new.revision.to_string(),
                )])),
                owner_references: Some(vec![self.owner_reference()]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(new.replicas),
                min_ready_seconds: self.rollout.spec.min_ready_seconds,
                selector: LabelSelector { ..selector },
                template: Some(new.template.clone()),
            }),
            status: None,
        };
        let result = self
            .api::<ReplicaSet>()
            .create(&PostParams::default(), &replica_set)
            .await;
        self.count("ReplicaSet", "Create", &result);
        match result {
            Ok(created) => Ok(Some(PendingWrite {
                key: ObjectRef::from_obj(&created),
                resource_version: created.resource_version().unwrap_or_default(),
            })),
            // Created by a reconcile whose result the cache did not show yet.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(source) => Err(Error::kube(
                format!("create ReplicaSet {}", new.name),
                source,
            )),
        }
    }

    async fn patch_replica_set(
        &self,
        name: &str,
        patch: serde_json::Value,
    ) -> Result<PendingWrite> {
        let patched = self.patch::<ReplicaSet>(name, "ReplicaSet", patch).await?;
        Ok(PendingWrite {
            key: ObjectRef::from_obj(&patched),
            resource_version: patched.resource_version().unwrap_or_default(),
        })
    }

    async fn patch<K>(&self, name: &str, kind: &str, patch: serde_json::Value) -> Result<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let result = self
            .api::<K>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        self.count(kind, "Patch", &result);
        result.map_err(|source| Error::kube(format!("patch {kind} {name}"), source))
    }

    /// Deletes an object of the Rollout's namespace (in the background); already gone is fine.
    async fn delete<K>(&self, name: &str, kind: &str) -> Result<()>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let result = self
            .api::<K>()
            .delete(name, &DeleteParams::background())
            .await;
        self.count(kind, "Delete", &result);
        match result {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(Error::kube(format!("delete {kind} {name}"), source)),
        }
    }

    /// Evicts a pod for a restart. A PodDisruptionBudget refusing it (429) or a pod already
    /// gone is not an error: the next reconcile tries again.
    async fn evict_pod(&self, name: &str) -> Result<()> {
        let result = self
            .api::<Pod>()
            .evict(name, &kube::api::EvictParams::default())
            .await;
        self.count("Pod", "Evict", &result);
        match result {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 429) => {
                tracing::info!(pod = name, reason = %status.message, "pod not evicted now");
                Ok(())
            }
            Err(source) => Err(Error::kube(format!("evict Pod {name}"), source)),
        }
    }

    async fn patch_rollout_revision(&self, revision: i64) -> Result<()> {
        let patch = json!({"metadata": {"annotations": {labels::REVISION: revision.to_string()}}});
        self.patch::<Rollout>(&self.rollout.name_any(), "Rollout", patch)
            .await
            .map(drop)
    }

    async fn set_service_selector(&self, service: &str, hash: &str) -> Result<()> {
        let patch = json!({
            "metadata": {"annotations": {labels::MANAGED_BY: self.rollout.name_any()}},
            "spec": {"selector": {labels::POD_TEMPLATE_HASH: hash}},
        });
        self.patch::<Service>(service, "Service", patch)
            .await
            .map(drop)
    }

    /// Creates the Experiment of an `experiment` step; its stable templates copy the stable
    /// ReplicaSet's pod template.
    async fn create_experiment(&self, request: &ExperimentRequest) -> Result<()> {
        let stable = request.stable_pod_template_hash.as_ref().and_then(|hash| {
            let name = format!("{}-{hash}", self.rollout.name_any());
            self.ctx
                .stores
                .replica_sets
                .get(&ObjectRef::new(&name).within(self.namespace))
        });
        let stable_template = stable
            .as_ref()
            .and_then(|rs| rs.spec.as_ref())
            .and_then(|spec| spec.template.as_ref());
        let mut experiment =
            experiment_for_step(request, self.rollout, stable_template).map_err(|source| {
                Error::ExperimentBuild {
                    experiment: request.name.clone(),
                    source,
                }
            })?;
        experiment.metadata.owner_references = Some(vec![self.owner_reference()]);
        let result = self
            .api::<Experiment>()
            .create(&PostParams::default(), &experiment)
            .await;
        self.count("Experiment", "Create", &result);
        match result {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(source) => Err(Error::kube(
                format!("create Experiment {}", request.name),
                source,
            )),
        }
    }

    async fn create_analysis_run(&self, request: &AnalysisRunRequest) -> Result<()> {
        let templates: Vec<_> = self
            .ctx
            .stores
            .analysis_templates
            .state()
            .iter()
            .filter(|template| template.namespace().as_deref() == Some(self.namespace))
            .map(|template| (**template).clone())
            .collect();
        let cluster_templates: Vec<_> = self
            .ctx
            .stores
            .cluster_analysis_templates
            .state()
            .iter()
            .map(|template| (**template).clone())
            .collect();
        let spec: AnalysisRunSpec = build_run_spec(
            &request.analysis,
            TemplateCatalog {
                templates: &templates,
                cluster_templates: &cluster_templates,
            },
            self.rollout,
            PodTemplateHashes {
                stable: request.stable_pod_template_hash.as_deref(),
                latest: Some(&request.pod_template_hash),
            },
        )
        .map_err(|source| Error::AnalysisBuild {
            run: request.name.clone(),
            source,
        })?;
        let metadata = request
            .analysis
            .analysis_run_metadata
            .clone()
            .unwrap_or_default();
        let mut run_labels = metadata.labels;
        run_labels.insert(labels::ROLLOUT_TYPE.into(), request.kind.label().into());
        if let RunKind::Step(index) = request.kind {
            run_labels.insert(labels::STEP_INDEX.into(), index.to_string());
        }
        run_labels.insert(
            labels::POD_TEMPLATE_HASH.into(),
            request.pod_template_hash.clone(),
        );
        run_labels.extend(labels::instance_id_label(
            self.rollout.metadata.labels.as_ref(),
        ));
        let mut annotations = metadata.annotations;
        annotations.insert(labels::RUN_REVISION.into(), request.revision.to_string());
        let run = AnalysisRun {
            metadata: ObjectMeta {
                name: Some(request.name.clone()),
                namespace: Some(self.namespace.to_string()),
                labels: Some(run_labels),
                annotations: Some(annotations),
                owner_references: Some(vec![self.owner_reference()]),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        };
        let result = self
            .api::<AnalysisRun>()
            .create(&PostParams::default(), &run)
            .await;
        self.count("AnalysisRun", "Create", &result);
        match result {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(source) => Err(Error::kube(
                format!("create AnalysisRun {}", request.name),
                source,
            )),
        }
    }
}
