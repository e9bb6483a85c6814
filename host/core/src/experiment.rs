//! Experiments: ReplicaSets run side by side for a while, with analyses, as Argo Rollouts runs
//! them (`experiments/experiment.go`).
//!
//! [`plan_experiment`] is pure: from an Experiment (spec and last written status), what the
//! controller observed (the templates' ReplicaSets, the Services, the AnalysisRuns) and `now`, it
//! returns the objects to create or change, the new status and when to look again.
//!
//! The lifecycle:
//!
//! 1. Every template gets a ReplicaSet `<experiment>-<template>` (and, when it asks for one, a
//!    Service selecting its pods). A template is `Progressing` until all its pods are available,
//!    then `Running`; one still progressing after `progressDeadlineSeconds` (default 600) is
//!    `Failed`.
//! 2. Once every template runs, `status.availableAt` is set, the phase becomes `Running` and
//!    the AnalysisRuns `<experiment>-<analysis>` are created.
//! 3. The experiment completes when `duration` has passed since `availableAt`, or (without a
//!    duration) when every analysis with `requiredForCompletion` completed (every analysis, when
//!    none is required), or when `spec.terminate` is set. Its phase is the worst of the
//!    analyses' outcomes (`Successful` when all passed); a failed template or an analysis that
//!    ends `Failed`, `Error` or `Inconclusive` completes it at once with that phase.
//! 4. A completed experiment terminates its running analyses, marks its templates and scales
//!    their ReplicaSets to zero `scaleDownDelaySeconds` (default 30) after completing.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sluice_api::analysis::{
    AnalysisPhase, AnalysisRun, AnalysisRunSpec, AnalysisTemplateRef, Argument,
};
use sluice_api::duration::{DurationError, DurationString};
use sluice_api::experiment::{
    Experiment, ExperimentAnalysisRunStatus, ExperimentAnalysisTemplateRef, ExperimentStatus,
    TemplateSpec, TemplateStatus,
};
use sluice_api::labels;

use crate::analysis::{BuildError, TemplateCatalog, flatten_templates, merge_args, worst};
use crate::hash::pod_template_hash;
use crate::observed::ObservedAnalysisRun;

/// Annotation on an experiment's ReplicaSets and Services: the Experiment's name (Argo's key).
pub const EXPERIMENT_NAME_ANNOTATION: &str = "experiment-name";
/// Annotation on an experiment's ReplicaSets and Services: the template's name.
pub const TEMPLATE_NAME_ANNOTATION: &str = "experiment-template";

/// Seconds a template may take to become available (Argo's default `progressDeadlineSeconds`).
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Seconds between completion and scale-down (Argo's default `scaleDownDelaySeconds`).
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;

/// Template status while its pods become available.
pub const TEMPLATE_PROGRESSING: &str = "Progressing";
/// Template status once its pods are available.
pub const TEMPLATE_RUNNING: &str = "Running";
/// Template status after a successful experiment.
pub const TEMPLATE_SUCCESSFUL: &str = "Successful";
/// Template status after its progress deadline, or after an unsuccessful experiment.
pub const TEMPLATE_FAILED: &str = "Failed";
/// Template status when its ReplicaSet disappeared while it ran.
pub const TEMPLATE_ERROR: &str = "Error";

/// The message of an experiment stopped with `spec.terminate`.
pub const TERMINATED_MESSAGE: &str = "Experiment was terminated";

/// What the controller saw about one Experiment.
#[derive(Clone, Debug, Default)]
pub struct ObservedExperiment<'a> {
    /// The ReplicaSets the Experiment owns.
    pub replica_sets: Vec<TemplateReplicaSet>,
    /// Names of the Services that exist in the Experiment's namespace among those its templates
    /// ask for.
    pub services: Vec<String>,
    /// The AnalysisRuns the Experiment owns.
    pub analysis_runs: Vec<ObservedAnalysisRun>,
    /// The analysis templates visible to the Experiment.
    pub templates: TemplateCatalog<'a>,
}

/// A ReplicaSet owned by an Experiment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateReplicaSet {
    /// Its name.
    pub name: String,
    /// `spec.replicas`.
    pub spec_replicas: i32,
    /// `status.replicas`.
    pub replicas: i32,
    /// `status.fullyLabeledReplicas` (pods of the current template).
    pub updated_replicas: i32,
    /// `status.readyReplicas`.
    pub ready_replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
}

/// What to do next for one Experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentPlan {
    /// Actions to execute in order; the controller adds the owner reference to created objects.
    pub actions: Vec<ExperimentAction>,
    /// The status to write once every action succeeded.
    pub status: ExperimentStatus,
    /// Reconcile again after this delay (duration end, progress deadline, scale-down).
    pub requeue_after: Option<Duration>,
}

/// One step of an [`ExperimentPlan`].
#[derive(Clone, Debug, PartialEq)]
pub enum ExperimentAction {
    /// Create a template's ReplicaSet.
    CreateReplicaSet(Box<ReplicaSet>),
    /// Set a ReplicaSet's `spec.replicas`.
    ScaleReplicaSet {
        /// ReplicaSet name.
        name: String,
        /// The new `spec.replicas`.
        replicas: i32,
    },
    /// Create a template's Service.
    CreateService(Box<Service>),
    /// Create an analysis's AnalysisRun.
    CreateAnalysisRun(Box<AnalysisRun>),
    /// Set `spec.terminate: true` on an AnalysisRun.
    TerminateAnalysisRun {
        /// AnalysisRun name.
        name: String,
    },
}

/// The ReplicaSet name of a template: `<experiment>-<template>`.
pub fn replica_set_name(experiment: &str, template: &str) -> String {
    format!("{experiment}-{template}")
}

/// The AnalysisRun name of an analysis: `<experiment>-<analysis>`.
pub fn analysis_run_name(experiment: &str, analysis: &str) -> String {
    format!("{experiment}-{analysis}")
}

/// The pod template of a template's ReplicaSet, without its hash label, and the hash.
pub fn template_hash(template: &TemplateSpec, collision_count: Option<i32>) -> String {
    let mut pod_template = template.template.clone();
    if let Some(labels) = pod_template
        .metadata
        .as_mut()
        .and_then(|metadata| metadata.labels.as_mut())
    {
        labels.remove(labels::POD_TEMPLATE_HASH);
    }
    pod_template_hash(&pod_template, collision_count)
}

/// Decides the next actions and the new status of an Experiment.
pub fn plan_experiment(
    experiment: &Experiment,
    observed: &ObservedExperiment<'_>,
    now: Timestamp,
) -> ExperimentPlan {
    let mut planner = Planner {
        experiment,
        name: experiment.metadata.name.clone().unwrap_or_default(),
        observed,
        now,
        previous: experiment.status.clone().unwrap_or_default(),
        actions: Vec::new(),
        wake_at: Vec::new(),
    };
    let status = planner.run();
    let requeue_after = planner
        .wake_at
        .iter()
        .min()
        .map(|at| duration_until(now, *at));
    ExperimentPlan {
        actions: planner.actions,
        status,
        requeue_after,
    }
}

struct Planner<'a, 'o> {
    experiment: &'a Experiment,
    name: String,
    observed: &'a ObservedExperiment<'o>,
    now: Timestamp,
    previous: ExperimentStatus,
    actions: Vec<ExperimentAction>,
    wake_at: Vec<Timestamp>,
}

impl Planner<'_, '_> {
    fn run(&mut self) -> ExperimentStatus {
        let spec = &self.experiment.spec;
        let already_completed = self.previous.phase.is_some_and(AnalysisPhase::is_completed);
        let mut status = self.previous.clone();

        let mut templates: Vec<TemplateStatus> = spec
            .templates
            .iter()
            .map(|template| self.template_status(template, already_completed))
            .collect();
        let all_running = !templates.is_empty()
            && templates
                .iter()
                .all(|template| template.status.as_deref() == Some(TEMPLATE_RUNNING));
        if status.available_at.is_none() && all_running && !already_completed {
            status.available_at = Some(Time(self.now));
        }

        let runs = if status.available_at.is_some() && !already_completed {
            self.analysis_statuses(status.available_at.as_ref().map(|time| time.0))
        } else {
            self.observed_analysis_statuses()
        };

        let (phase, message) = if already_completed {
            (
                self.previous.phase.unwrap_or(AnalysisPhase::Successful),
                self.previous.message.clone(),
            )
        } else {
            self.assess(&templates, &runs, status.available_at.as_ref())
        };
        let completed = phase.is_completed();
        if completed {
            for run in &runs {
                self.terminate_run(&run.analysis_run);
            }
            let outcome = if phase == AnalysisPhase::Successful {
                TEMPLATE_SUCCESSFUL
            } else {
                TEMPLATE_FAILED
            };
            for (template, template_status) in spec.templates.iter().zip(templates.iter_mut()) {
                self.finish_template(template, template_status, outcome);
            }
        }
        status.phase = Some(phase);
        status.message = message;
        status.template_statuses = templates;
        status.analysis_runs = runs;
        status
    }

    /// The status of one template, creating or scaling its ReplicaSet and Service.
    fn template_status(&mut self, template: &TemplateSpec, completed: bool) -> TemplateStatus {
        let previous = self
            .previous
            .template_statuses
            .iter()
            .find(|status| status.name == template.name)
            .cloned();
        let mut status = previous.clone().unwrap_or_else(|| TemplateStatus {
            name: template.name.clone(),
            ..TemplateStatus::default()
        });
        let rs_name = replica_set_name(&self.name, &template.name);
        let desired = template.replicas.unwrap_or(1);
        let replica_set = self
            .observed
            .replica_sets
            .iter()
            .find(|rs| rs.name == rs_name);
        status.pod_template_hash = Some(template_hash(template, status.collision_count));
        if let Some(rs) = replica_set {
            status.replicas = rs.replicas;
            status.updated_replicas = rs.updated_replicas;
            status.ready_replicas = rs.ready_replicas;
            status.available_replicas = rs.available_replicas;
        }
        if completed {
            return status;
        }
        if let Some(service) = &template.service {
            let service_name = service.name.clone().unwrap_or_else(|| rs_name.clone());
            if !self.observed.services.contains(&service_name) {
                self.actions
                    .push(ExperimentAction::CreateService(Box::new(self.service(
                        template,
                        &service_name,
                        &status,
                    ))));
            }
            status.service_name = Some(service_name);
        }
        let current = status.status.clone();
        let (next, message) = match replica_set {
            None if current.as_deref() == Some(TEMPLATE_RUNNING) => (
                TEMPLATE_ERROR.to_string(),
                Some(format!("ReplicaSet {rs_name} was deleted")),
            ),
            None => {
                self.actions
                    .push(ExperimentAction::CreateReplicaSet(Box::new(
                        self.replica_set(template, &rs_name, &status),
                    )));
                (TEMPLATE_PROGRESSING.to_string(), None)
            }
            Some(rs) => {
                if rs.spec_replicas != desired {
                    self.actions.push(ExperimentAction::ScaleReplicaSet {
                        name: rs_name.clone(),
                        replicas: desired,
                    });
                }
                let available = rs.spec_replicas == desired
                    && rs.replicas == desired
                    && rs.available_replicas >= desired;
                match current.as_deref() {
                    Some(TEMPLATE_RUNNING) => (TEMPLATE_RUNNING.to_string(), None),
                    _ if available => (TEMPLATE_RUNNING.to_string(), None),
                    _ => (TEMPLATE_PROGRESSING.to_string(), None),
                }
            }
        };
        if current.as_deref() != Some(next.as_str()) {
            status.last_transition_time = Some(Time(self.now));
        }
        status.status = Some(next);
        status.message = message;
        if status.status.as_deref() == Some(TEMPLATE_PROGRESSING) {
            self.check_progress_deadline(&mut status);
        }
        status
    }

    fn check_progress_deadline(&mut self, status: &mut TemplateStatus) {
        let seconds = self
            .experiment
            .spec
            .progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS);
        let since = status
            .last_transition_time
            .as_ref()
            .map_or(self.now, |time| time.0);
        let deadline = since + SignedDuration::from_secs(i64::from(seconds));
        if self.now >= deadline {
            status.status = Some(TEMPLATE_FAILED.to_string());
            status.message = Some(format!(
                "Template '{}' exceeded its progressDeadlineSeconds ({seconds})",
                status.name
            ));
            status.last_transition_time = Some(Time(self.now));
        } else {
            self.wake_at.push(deadline);
        }
    }

    /// Marks a template after completion and scales it down once the delay passed.
    fn finish_template(
        &mut self,
        template: &TemplateSpec,
        status: &mut TemplateStatus,
        outcome: &str,
    ) {
        if matches!(
            status.status.as_deref(),
            Some(TEMPLATE_PROGRESSING) | Some(TEMPLATE_RUNNING) | None
        ) {
            status.status = Some(outcome.to_string());
            status.last_transition_time = Some(Time(self.now));
        }
        let delay = self
            .experiment
            .spec
            .scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS);
        let finished_at = status
            .last_transition_time
            .as_ref()
            .map_or(self.now, |time| time.0);
        let scale_down_at = finished_at + SignedDuration::from_secs(i64::from(delay.max(0)));
        let rs_name = replica_set_name(&self.name, &template.name);
        let Some(rs) = self
            .observed
            .replica_sets
            .iter()
            .find(|rs| rs.name == rs_name)
        else {
            return;
        };
        if rs.spec_replicas == 0 {
            return;
        }
        if self.now >= scale_down_at {
            self.actions.push(ExperimentAction::ScaleReplicaSet {
                name: rs_name,
                replicas: 0,
            });
        } else {
            self.wake_at.push(scale_down_at);
        }
    }

    /// Statuses of the analyses, creating the missing runs.
    fn analysis_statuses(
        &mut self,
        available_at: Option<Timestamp>,
    ) -> Vec<ExperimentAnalysisRunStatus> {
        let spec = &self.experiment.spec;
        let mut statuses = Vec::new();
        for analysis in &spec.analyses {
            let run_name = analysis_run_name(&self.name, &analysis.name);
            let recorded = self
                .previous
                .analysis_runs
                .iter()
                .find(|status| status.name == analysis.name);
            let status = match (self.observed_run(&run_name), recorded) {
                (Some(run), _) => ExperimentAnalysisRunStatus {
                    name: analysis.name.clone(),
                    analysis_run: run.name.clone(),
                    phase: Some(run.phase),
                    message: run.message.clone(),
                },
                // Created by an earlier reconcile, not yet in the cache: never created twice.
                (None, Some(recorded)) => recorded.clone(),
                (None, None) => match self.analysis_run(analysis, &run_name, available_at) {
                    Ok(run) => {
                        self.actions
                            .push(ExperimentAction::CreateAnalysisRun(Box::new(run)));
                        ExperimentAnalysisRunStatus {
                            name: analysis.name.clone(),
                            analysis_run: run_name,
                            phase: Some(AnalysisPhase::Pending),
                            message: None,
                        }
                    }
                    Err(error) => ExperimentAnalysisRunStatus {
                        name: analysis.name.clone(),
                        analysis_run: run_name,
                        phase: Some(AnalysisPhase::Error),
                        message: Some(error.to_string()),
                    },
                },
            };
            statuses.push(status);
        }
        statuses
    }

    /// Statuses of the analyses already recorded, refreshed from the observed runs.
    fn observed_analysis_statuses(&self) -> Vec<ExperimentAnalysisRunStatus> {
        self.previous
            .analysis_runs
            .iter()
            .map(|recorded| match self.observed_run(&recorded.analysis_run) {
                Some(run) => ExperimentAnalysisRunStatus {
                    phase: Some(run.phase),
                    message: run.message.clone(),
                    ..recorded.clone()
                },
                None => recorded.clone(),
            })
            .collect()
    }

    fn observed_run(&self, name: &str) -> Option<&ObservedAnalysisRun> {
        self.observed
            .analysis_runs
            .iter()
            .find(|run| run.name == name)
    }

    fn terminate_run(&mut self, name: &str) {
        if self
            .observed_run(name)
            .is_some_and(|run| !run.phase.is_completed() && !run.terminating)
        {
            self.actions.push(ExperimentAction::TerminateAnalysisRun {
                name: name.to_string(),
            });
        }
    }

    /// The experiment's phase and message.
    fn assess(
        &mut self,
        templates: &[TemplateStatus],
        runs: &[ExperimentAnalysisRunStatus],
        available_at: Option<&Time>,
    ) -> (AnalysisPhase, Option<String>) {
        let spec = &self.experiment.spec;
        if let Some(broken) = templates.iter().find(|template| {
            matches!(
                template.status.as_deref(),
                Some(TEMPLATE_FAILED) | Some(TEMPLATE_ERROR)
            )
        }) {
            let phase = if broken.status.as_deref() == Some(TEMPLATE_ERROR) {
                AnalysisPhase::Error
            } else {
                AnalysisPhase::Failed
            };
            return (phase, broken.message.clone());
        }
        let outcome = runs
            .iter()
            .filter_map(|run| run.phase)
            .filter(|phase| phase.is_completed())
            .fold(AnalysisPhase::Successful, worst);
        if outcome != AnalysisPhase::Successful {
            let message = runs
                .iter()
                .find(|run| run.phase == Some(outcome))
                .map(|run| {
                    let detail = run
                        .message
                        .as_deref()
                        .map(|message| format!(": {message}"))
                        .unwrap_or_default();
                    format!(
                        "AnalysisRun '{}' completed {}{detail}",
                        run.analysis_run,
                        outcome.as_str()
                    )
                });
            return (outcome, message);
        }
        if spec.terminate {
            return (
                AnalysisPhase::Successful,
                Some(TERMINATED_MESSAGE.to_string()),
            );
        }
        let Some(available_at) = available_at else {
            return (AnalysisPhase::Pending, None);
        };
        if let Some(duration) = spec.duration.as_ref() {
            match planned_end(duration, available_at.0) {
                Ok(Some(ends)) if self.now >= ends => {
                    return (AnalysisPhase::Successful, None);
                }
                Ok(Some(ends)) => self.wake_at.push(ends),
                // Beyond the representable range: it never ends by itself.
                Ok(None) => {}
                Err(error) => {
                    return (
                        AnalysisPhase::Error,
                        Some(format!("invalid spec.duration: {error}")),
                    );
                }
            }
        } else if self.analyses_finished(runs) {
            return (AnalysisPhase::Successful, None);
        }
        (AnalysisPhase::Running, None)
    }

    /// Without a duration: the required analyses (every analysis when none is required) all
    /// completed.
    fn analyses_finished(&self, runs: &[ExperimentAnalysisRunStatus]) -> bool {
        let analyses = &self.experiment.spec.analyses;
        let any_required = analyses
            .iter()
            .any(|analysis| analysis.required_for_completion);
        let mut watched = analyses
            .iter()
            .filter(|analysis| analysis.required_for_completion || !any_required)
            .peekable();
        if watched.peek().is_none() {
            return false;
        }
        watched.all(|analysis| {
            runs.iter().any(|run| {
                run.name == analysis.name && run.phase.is_some_and(AnalysisPhase::is_completed)
            })
        })
    }

    fn replica_set(
        &self,
        template: &TemplateSpec,
        name: &str,
        status: &TemplateStatus,
    ) -> ReplicaSet {
        let hash = status.pod_template_hash.clone().unwrap_or_default();
        let mut pod_template: PodTemplateSpec = template.template.clone();
        let metadata = pod_template
            .metadata
            .get_or_insert_with(ObjectMeta::default);
        let pod_labels = metadata.labels.get_or_insert_with(BTreeMap::new);
        pod_labels.insert(labels::POD_TEMPLATE_HASH.into(), hash.clone());
        let rs_labels = pod_labels.clone();
        let mut selector = template.selector.clone().unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(labels::POD_TEMPLATE_HASH.into(), hash);
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: self.experiment.metadata.namespace.clone(),
                labels: Some(rs_labels),
                annotations: Some(self.annotations(&template.name)),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(template.replicas.unwrap_or(1)),
                min_ready_seconds: template.min_ready_seconds,
                selector,
                template: Some(pod_template),
            }),
            status: None,
        }
    }

    fn service(&self, template: &TemplateSpec, name: &str, status: &TemplateStatus) -> Service {
        let mut selector: BTreeMap<String, String> = template
            .selector
            .as_ref()
            .and_then(|selector| selector.match_labels.clone())
            .unwrap_or_default();
        selector.insert(
            labels::POD_TEMPLATE_HASH.into(),
            status.pod_template_hash.clone().unwrap_or_default(),
        );
        let ports = template
            .template
            .spec
            .iter()
            .flat_map(|spec| &spec.containers)
            .flat_map(|container| container.ports.iter().flatten())
            .map(|port| ServicePort {
                name: port.name.clone(),
                protocol: port.protocol.clone(),
                port: port.container_port,
                target_port: Some(IntOrString::Int(port.container_port)),
                ..ServicePort::default()
            })
            .collect();
        Service {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: self.experiment.metadata.namespace.clone(),
                annotations: Some(self.annotations(&template.name)),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(selector),
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    fn annotations(&self, template: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (EXPERIMENT_NAME_ANNOTATION.to_string(), self.name.clone()),
            (TEMPLATE_NAME_ANNOTATION.to_string(), template.to_string()),
        ])
    }

    fn analysis_run(
        &self,
        analysis: &ExperimentAnalysisTemplateRef,
        name: &str,
        available_at: Option<Timestamp>,
    ) -> Result<AnalysisRun, BuildError> {
        let spec = &self.experiment.spec;
        let args = analysis
            .args
            .iter()
            .map(|argument| {
                let value = argument
                    .value
                    .as_deref()
                    .map(|value| self.substitute(value, available_at))
                    .transpose()?;
                Ok(Argument {
                    value,
                    ..argument.clone()
                })
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let run_spec = experiment_run_spec(analysis, &args, spec, self.observed.templates)?;
        let mut metadata = spec.analysis_run_metadata.clone().unwrap_or_default();
        metadata.labels.extend(labels::instance_id_label(
            self.experiment.metadata.labels.as_ref(),
        ));
        Ok(AnalysisRun {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: self.experiment.metadata.namespace.clone(),
                labels: Some(metadata.labels),
                annotations: Some(metadata.annotations),
                ..ObjectMeta::default()
            },
            spec: run_spec,
            status: None,
        })
    }

    /// Replaces `{{templates.<name>.podTemplateHash}}`, `{{templates.<name>.replicaset.name}}`,
    /// `{{experiment.availableAt}}` and `{{experiment.finishedAt}}` in an argument value.
    ///
    /// As in Argo, `finishedAt` is when the experiment is planned to end, `availableAt` plus
    /// `spec.duration` (both RFC 3339, in seconds); an experiment without a (valid) duration has
    /// none, and an argument that uses it is [`BuildError::UnresolvedPlaceholder`].
    fn substitute(
        &self,
        value: &str,
        available_at: Option<Timestamp>,
    ) -> Result<String, BuildError> {
        let mut resolved = value.to_string();
        for template in &self.experiment.spec.templates {
            let status = self
                .previous
                .template_statuses
                .iter()
                .find(|status| status.name == template.name);
            let hash = status
                .and_then(|status| status.pod_template_hash.clone())
                .unwrap_or_else(|| template_hash(template, None));
            resolved = resolved
                .replace(
                    &format!("{{{{templates.{}.podTemplateHash}}}}", template.name),
                    &hash,
                )
                .replace(
                    &format!("{{{{templates.{}.replicaset.name}}}}", template.name),
                    &replica_set_name(&self.name, &template.name),
                );
        }
        let rfc3339 = |at: Timestamp| at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        if let Some(available_at) = available_at {
            resolved = resolved.replace(AVAILABLE_AT_PLACEHOLDER, &rfc3339(available_at));
        }
        if resolved.contains(FINISHED_AT_PLACEHOLDER) {
            let finished_at = available_at
                .zip(self.experiment.spec.duration.as_ref())
                .and_then(|(available_at, duration)| {
                    planned_end(duration, available_at).ok().flatten()
                });
            let Some(finished_at) = finished_at else {
                return Err(BuildError::UnresolvedPlaceholder(
                    "experiment.finishedAt".to_string(),
                ));
            };
            resolved = resolved.replace(FINISHED_AT_PLACEHOLDER, &rfc3339(finished_at));
        }
        Ok(resolved)
    }
}

/// When an experiment with this `duration` that became available at `available_at` ends; `None`
/// beyond the representable range.
fn planned_end(
    duration: &DurationString,
    available_at: Timestamp,
) -> Result<Option<Timestamp>, DurationError> {
    let duration = duration.parse()?;
    Ok(SignedDuration::try_from(duration)
        .ok()
        .and_then(|duration| available_at.checked_add(duration).ok()))
}

/// The placeholder of the time every template became available.
const AVAILABLE_AT_PLACEHOLDER: &str = "{{experiment.availableAt}}";
/// The placeholder of the time the experiment ends: `availableAt` plus `spec.duration`.
const FINISHED_AT_PLACEHOLDER: &str = "{{experiment.finishedAt}}";

/// The spec of an experiment analysis's AnalysisRun: the template (and the templates it
/// composes) flattened, the experiment's arguments merged into the template's, the experiment's
/// dry-run and retention rules before the template's.
pub fn experiment_run_spec(
    analysis: &ExperimentAnalysisTemplateRef,
    args: &[Argument],
    spec: &sluice_api::experiment::ExperimentSpec,
    catalog: TemplateCatalog<'_>,
) -> Result<AnalysisRunSpec, BuildError> {
    let references = [AnalysisTemplateRef {
        template_name: analysis.template_name.clone(),
        cluster_scope: analysis.cluster_scope,
    }];
    let flattened = flatten_templates(&references, catalog)?;
    let args = merge_args(args, &flattened.args)?;
    Ok(AnalysisRunSpec {
        metrics: flattened.metrics,
        args,
        dry_run: spec
            .dry_run
            .iter()
            .chain(&flattened.dry_run)
            .cloned()
            .collect(),
        measurement_retention: spec
            .measurement_retention
            .iter()
            .chain(&flattened.measurement_retention)
            .cloned()
            .collect(),
        ..AnalysisRunSpec::default()
    })
}

fn duration_until(now: Timestamp, at: Timestamp) -> Duration {
    let remaining = at.duration_since(now);
    Duration::try_from(remaining).unwrap_or(Duration::ZERO)
}

/// Why a Rollout's `experiment` step could not become an Experiment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepExperimentError {
    /// A template copies the stable revision, but no stable ReplicaSet is known.
    #[error("experiment template {0}: the stable ReplicaSet is not known")]
    StableUnknown(String),
    /// An analysis's arguments could not be built.
    #[error("experiment analysis {analysis}: {source}")]
    Args {
        /// The analysis.
        analysis: String,
        /// Why.
        #[source]
        source: crate::analysis::ArgsError,
    },
}

/// The Experiment of a Rollout's `experiment` step (Argo's `GetExperimentFromTemplate`):
/// labelled with the desired revision's pod-template hash and annotated with its revision; each
/// template copies the canary (the Rollout's) or the stable pod template, with the step's extra
/// metadata, the Rollout's selector (unless the step gives one) and `minReadySeconds`; the
/// analyses' arguments are made literal from the Rollout. The caller adds the owner reference.
pub fn experiment_for_step(
    request: &crate::plan::ExperimentRequest,
    rollout: &sluice_api::rollout::Rollout,
    stable_template: Option<&PodTemplateSpec>,
) -> Result<Experiment, StepExperimentError> {
    use sluice_api::rollout::ReplicaSetSpecRef;

    let step = &request.step;
    let templates = step
        .templates
        .iter()
        .map(|template| {
            let mut pod_template = match template.spec_ref {
                ReplicaSetSpecRef::Canary => rollout.spec.template.clone().unwrap_or_default(),
                ReplicaSetSpecRef::Stable => stable_template
                    .cloned()
                    .ok_or_else(|| StepExperimentError::StableUnknown(template.name.clone()))?,
            };
            let metadata = pod_template
                .metadata
                .get_or_insert_with(ObjectMeta::default);
            if let Some(labels) = metadata.labels.as_mut() {
                labels.remove(labels::POD_TEMPLATE_HASH);
            }
            if let Some(extra) = &template.metadata {
                metadata
                    .labels
                    .get_or_insert_with(BTreeMap::new)
                    .extend(extra.labels.clone());
                metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .extend(extra.annotations.clone());
            }
            Ok(TemplateSpec {
                name: template.name.clone(),
                replicas: template.replicas,
                min_ready_seconds: rollout.spec.min_ready_seconds,
                selector: template
                    .selector
                    .clone()
                    .or_else(|| rollout.spec.selector.clone()),
                template: pod_template,
                service: template.service.clone(),
            })
        })
        .collect::<Result<Vec<_>, StepExperimentError>>()?;
    let hashes = crate::analysis::PodTemplateHashes {
        stable: request.stable_pod_template_hash.as_deref(),
        latest: Some(&request.pod_template_hash),
    };
    let analyses = step
        .analyses
        .iter()
        .map(|analysis| {
            let args = crate::analysis::build_rollout_args(&analysis.args, rollout, hashes)
                .map_err(|source| StepExperimentError::Args {
                    analysis: analysis.name.clone(),
                    source,
                })?;
            Ok(ExperimentAnalysisTemplateRef {
                name: analysis.name.clone(),
                template_name: analysis.template_name.clone(),
                cluster_scope: analysis.cluster_scope,
                args,
                required_for_completion: analysis.required_for_completion,
            })
        })
        .collect::<Result<Vec<_>, StepExperimentError>>()?;
    Ok(Experiment {
        metadata: ObjectMeta {
            name: Some(request.name.clone()),
            namespace: rollout.metadata.namespace.clone(),
            labels: Some(
                [(
                    labels::POD_TEMPLATE_HASH.to_string(),
                    request.pod_template_hash.clone(),
                )]
                .into_iter()
                .chain(labels::instance_id_label(rollout.metadata.labels.as_ref()))
                .collect(),
            ),
            annotations: Some(BTreeMap::from([(
                labels::RUN_REVISION.to_string(),
                request.revision.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: sluice_api::experiment::ExperimentSpec {
            templates,
            duration: step.duration.clone(),
            progress_deadline_seconds: rollout.spec.progress_deadline_seconds,
            analyses,
            dry_run: step.dry_run.clone(),
            analysis_run_metadata: step.analysis_run_metadata.clone(),
            ..sluice_api::experiment::ExperimentSpec::default()
        },
        status: None,
    })
}
