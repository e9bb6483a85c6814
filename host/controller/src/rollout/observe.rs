//! Builds the planner's [`Observed`] from the caches: no API request (except listing pods
//! while a restart is due).

use std::str::FromStr;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Service};
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use sluice_api::analysis::{AnalysisPhase, AnalysisRun};
use sluice_api::labels;
use sluice_api::rollout::Rollout;
use sluice_api::validation::validate_rollout;
use sluice_core::Observed;
use sluice_core::Timestamp;
use sluice_core::hash::pod_template_hash;
use sluice_core::observed::{
    ExperimentTemplateTarget, ObservedAnalysisRun, ObservedExperiment, ObservedReplicaSet,
    ObservedService,
};
use sluice_core::restart::ObservedPod;

use crate::context::Context;
use crate::error::{Error, Result};

/// What the controller knows about `rollout`, read from the caches.
pub(crate) fn observe(rollout: &Rollout, ctx: &Context) -> Observed {
    let namespace = rollout.namespace().unwrap_or_default();
    let uid = rollout.uid().unwrap_or_default();
    let owned = |owner_references: Option<&Vec<_>>| is_controlled_by(owner_references, &uid);
    let stores = &ctx.stores;
    let desired = desired_template(rollout);

    let mut replica_sets: Vec<ObservedReplicaSet> = stores
        .replica_sets
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(&namespace))
        .filter(|rs| owned(rs.metadata.owner_references.as_ref()))
        .map(|rs| observe_replica_set(rs, desired.as_ref()))
        .collect();
    replica_sets.sort_by(|a, b| a.name.cmp(&b.name));

    let services = service_names(rollout)
        .into_iter()
        .filter_map(|name| {
            stores
                .services
                .get(&ObjectRef::new(&name).within(&namespace))
                .map(|service| observe_service(&service))
        })
        .collect();

    let mut analysis_runs: Vec<ObservedAnalysisRun> = stores
        .analysis_runs
        .state()
        .iter()
        .filter(|run| run.namespace().as_deref() == Some(&namespace))
        .filter(|run| owned(run.metadata.owner_references.as_ref()))
        .map(|run| observe_analysis_run(run))
        .collect();
    analysis_runs.sort_by(|a, b| a.name.cmp(&b.name));

    let mut experiments: Vec<ObservedExperiment> = stores
        .experiments
        .state()
        .iter()
        .filter(|experiment| experiment.namespace().as_deref() == Some(&namespace))
        .filter(|experiment| owned(experiment.metadata.owner_references.as_ref()))
        .map(|experiment| {
            let status = experiment.status.as_ref();
            ObservedExperiment {
                name: experiment.name_any(),
                phase: status
                    .and_then(|status| status.phase)
                    .unwrap_or(AnalysisPhase::Pending),
                message: status.and_then(|status| status.message.clone()),
                terminating: experiment.spec.terminate,
                created_at: created_at(&experiment.metadata),
                templates: status
                    .map(|status| {
                        status
                            .template_statuses
                            .iter()
                            .map(|template| ExperimentTemplateTarget {
                                name: template.name.clone(),
                                service_name: template.service_name.clone(),
                                pod_template_hash: template.pod_template_hash.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    experiments.sort_by(|a, b| a.name.cmp(&b.name));

    Observed {
        rollout: rollout.clone(),
        replica_sets,
        services,
        analysis_runs,
        experiments,
        weight_verification: ctx.weight_verification(&ObjectRef::from_obj(rollout)),
        step_plugin_reports: rollout
            .status
            .as_ref()
            .map(|status| status.canary.step_plugin_statuses.clone())
            .unwrap_or_default(),
        validation_errors: validate_rollout(rollout)
            .iter()
            .map(ToString::to_string)
            .collect(),
        pods: None,
    }
}

/// Lists the pods of the Rollout's ReplicaSets (only while a restart is due: pods are not
/// watched).
pub(crate) async fn list_pods(
    rollout: &Rollout,
    replica_sets: &[ObservedReplicaSet],
    ctx: &Context,
) -> Result<Vec<ObservedPod>> {
    let namespace = rollout.namespace().unwrap_or_default();
    let hashes: Vec<&str> = replica_sets
        .iter()
        .map(|rs| rs.pod_template_hash.as_str())
        .collect();
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let selector = format!("{} in ({})", labels::POD_TEMPLATE_HASH, hashes.join(","));
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| Error::kube("list the pods to restart", source))?;
    let names: Vec<&str> = replica_sets.iter().map(|rs| rs.name.as_str()).collect();
    Ok(pods
        .items
        .into_iter()
        .filter(|pod| {
            pod.owner_references()
                .iter()
                .any(|owner| owner.kind == "ReplicaSet" && names.contains(&owner.name.as_str()))
        })
        .map(|pod| ObservedPod {
            pod_template_hash: pod
                .labels()
                .get(labels::POD_TEMPLATE_HASH)
                .cloned()
                .unwrap_or_default(),
            created_at: created_at(&pod.metadata),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            ready: pod
                .status
                .as_ref()
                .and_then(|status| status.conditions.as_ref())
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|condition| condition.type_ == "Ready" && condition.status == "True")
                }),
            name: pod.name_any(),
        })
        .collect())
}

/// What the planners need to know about an AnalysisRun.
pub(crate) fn observe_analysis_run(run: &AnalysisRun) -> ObservedAnalysisRun {
    let status = run.status.as_ref();
    ObservedAnalysisRun {
        name: run.name_any(),
        phase: status
            .and_then(|status| status.phase)
            .unwrap_or(AnalysisPhase::Pending),
        message: status.and_then(|status| status.message.clone()),
        terminating: run.spec.terminate,
        created_at: created_at(&run.metadata),
    }
}

fn created_at(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Timestamp {
    metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |time| time.0)
}

fn is_controlled_by(
    owner_references: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    uid: &str,
) -> bool {
    owner_references.is_some_and(|references| {
        references
            .iter()
            .any(|reference| reference.controller == Some(true) && reference.uid == uid)
    })
}

/// The Rollout's pod template and its hash.
fn desired_template(rollout: &Rollout) -> Option<(String, PodTemplateSpec)> {
    let template = rollout.spec.template.clone()?;
    let collision_count = rollout
        .status
        .as_ref()
        .and_then(|status| status.collision_count);
    Some((pod_template_hash(&template, collision_count), template))
}

/// A ReplicaSet as the planner sees it. The API server defaults the pod template of a
/// ReplicaSet (pull policy, termination message path, DNS policy, …) but not the Rollout's, so a
/// ReplicaSet whose hash label is the hash of the Rollout's template is reported with the
/// Rollout's template: it is the desired revision.
fn observe_replica_set(
    rs: &ReplicaSet,
    desired: Option<&(String, PodTemplateSpec)>,
) -> ObservedReplicaSet {
    let annotations = rs.annotations();
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    let hash = rs
        .labels()
        .get(labels::POD_TEMPLATE_HASH)
        .cloned()
        .unwrap_or_default();
    let template = match desired {
        Some((desired_hash, desired_template)) if *desired_hash == hash => desired_template.clone(),
        _ => spec.template.unwrap_or_default(),
    };
    ObservedReplicaSet {
        name: rs.name_any(),
        pod_template_hash: hash,
        revision: annotations
            .get(labels::REVISION)
            .and_then(|revision| revision.parse().ok())
            .unwrap_or(0),
        template,
        spec_replicas: spec.replicas.unwrap_or(1),
        replicas: status.replicas,
        ready_replicas: status.ready_replicas.unwrap_or(0),
        available_replicas: status.available_replicas.unwrap_or(0),
        scale_down_deadline: annotations
            .get(labels::SCALE_DOWN_DEADLINE)
            .and_then(|deadline| Timestamp::from_str(deadline).ok()),
        created_at: rs
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|time| time.0)
            .unwrap_or_default(),
    }
}

fn observe_service(service: &Service) -> ObservedService {
    ObservedService {
        name: service.name_any(),
        selected_pod_template_hash: service
            .spec
            .as_ref()
            .and_then(|spec| spec.selector.as_ref())
            .and_then(|selector| selector.get(labels::POD_TEMPLATE_HASH))
            .cloned(),
        managed_by_rollout: service.annotations().contains_key(labels::MANAGED_BY),
    }
}

/// The Services the strategy names.
pub(crate) fn service_names(rollout: &Rollout) -> Vec<String> {
    let names = if let Some(canary) = rollout.canary() {
        vec![canary.canary_service.clone(), canary.stable_service.clone()]
    } else if let Some(blue_green) = rollout.blue_green() {
        vec![
            Some(blue_green.active_service.clone()),
            blue_green.preview_service.clone(),
        ]
    } else {
        Vec::new()
    };
    names
        .into_iter()
        .flatten()
        .filter(|name| !name.is_empty())
        .collect()
}
