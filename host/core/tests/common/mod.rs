//! A small cluster simulator for planner scenarios: it executes a plan's actions against the
//! observed state, makes pods ready on demand, moves time, and applies the status patches the
//! CLI writes (promote, abort, retry, promote --full).

#![allow(
    dead_code,
    reason = "each scenario file uses a different subset of the simulator"
)]

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sluice_api::analysis::{AnalysisPhase, AnalysisTemplateRef};
use sluice_api::labels;
use sluice_api::rollout::{
    BlueGreenStrategy, CanaryStep, CanaryStrategy, Rollout, RolloutAnalysis, RolloutPause,
    RolloutSpec, RolloutStatus, RolloutStrategy, RolloutTrafficRouting, StepPluginOperation,
};
use sluice_core::events::{Event, rollout_events};
use sluice_core::observed::{
    ObservedAnalysisRun, ObservedExperiment, ObservedReplicaSet, ObservedService,
    WeightVerification,
};
use sluice_core::restart::ObservedPod;
use sluice_core::step_plugin::{self, StepPluginCall, StepPluginOutcome};
use sluice_core::{Action, Observed, Plan, RouterCall, plan};

/// 2026-01-01T00:00:00Z.
pub fn start_time() -> Timestamp {
    Timestamp::from_second(1_767_225_600).expect("valid timestamp")
}

pub fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_string(), "demo".to_string())])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
    }
}

pub fn rollout(replicas: i32, strategy: RolloutStrategy) -> Rollout {
    let mut rollout = Rollout::new(
        "demo",
        RolloutSpec {
            replicas: Some(replicas),
            selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), "demo".to_string())])),
                ..LabelSelector::default()
            }),
            template: Some(template("demo:blue")),
            strategy,
            ..RolloutSpec::default()
        },
    );
    rollout.metadata.namespace = Some("default".into());
    rollout.metadata.generation = Some(1);
    rollout
}

pub fn weight(weight: i32) -> CanaryStep {
    CanaryStep {
        set_weight: Some(weight),
        ..CanaryStep::default()
    }
}

pub fn pause_forever() -> CanaryStep {
    CanaryStep {
        pause: Some(RolloutPause::default()),
        ..CanaryStep::default()
    }
}

pub fn pause_seconds(seconds: i32) -> CanaryStep {
    CanaryStep {
        pause: Some(RolloutPause {
            duration: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(seconds)),
        }),
        ..CanaryStep::default()
    }
}

pub fn analysis(template_name: &str) -> RolloutAnalysis {
    RolloutAnalysis {
        templates: vec![AnalysisTemplateRef {
            template_name: template_name.into(),
            cluster_scope: false,
        }],
        ..RolloutAnalysis::default()
    }
}

pub fn analysis_step(template_name: &str) -> CanaryStep {
    CanaryStep {
        analysis: Some(analysis(template_name)),
        ..CanaryStep::default()
    }
}

pub fn basic_canary(steps: Vec<CanaryStep>) -> RolloutStrategy {
    RolloutStrategy {
        canary: Some(CanaryStrategy {
            steps,
            ..CanaryStrategy::default()
        }),
        blue_green: None,
    }
}

pub fn routed_canary(steps: Vec<CanaryStep>) -> RolloutStrategy {
    RolloutStrategy {
        canary: Some(CanaryStrategy {
            steps,
            canary_service: Some("demo-canary".into()),
            stable_service: Some("demo-stable".into()),
            traffic_routing: Some(RolloutTrafficRouting {
                plugins: Some(BTreeMap::from([(
                    "sluice/test".to_string(),
                    serde_json::json!({}),
                )])),
                ..RolloutTrafficRouting::default()
            }),
            ..CanaryStrategy::default()
        }),
        blue_green: None,
    }
}

pub fn blue_green(strategy: BlueGreenStrategy) -> RolloutStrategy {
    RolloutStrategy {
        canary: None,
        blue_green: Some(strategy),
    }
}

/// The simulated cluster around one Rollout.
pub struct Sim {
    pub observed: Observed,
    pub now: Timestamp,
    /// Canary weight currently applied by the (simulated) routers.
    pub router_weight: i32,
    /// Every plan, in order.
    pub plans: Vec<Plan>,
    /// Every event the plans emitted, in order.
    pub events: Vec<Event>,
    /// What each step plugin answers, by name and operation (unscripted calls fail).
    pub step_plugin_outcomes: HashMap<(String, StepPluginOperation), StepPluginOutcome>,
    /// Every step plugin call made, in order.
    pub step_plugin_calls: Vec<StepPluginCall>,
}

impl Sim {
    pub fn new(rollout: Rollout) -> Self {
        let mut services = Vec::new();
        if let Some(canary) = rollout.canary() {
            for name in [&canary.canary_service, &canary.stable_service]
                .into_iter()
                .flatten()
            {
                services.push(ObservedService {
                    name: name.clone(),
                    ..ObservedService::default()
                });
            }
        }
        if let Some(blue_green) = rollout.blue_green() {
            services.push(ObservedService {
                name: blue_green.active_service.clone(),
                ..ObservedService::default()
            });
            if let Some(preview) = &blue_green.preview_service {
                services.push(ObservedService {
                    name: preview.clone(),
                    ..ObservedService::default()
                });
            }
        }
        Self {
            observed: Observed {
                rollout,
                services,
                ..Observed::default()
            },
            now: start_time(),
            router_weight: 0,
            plans: Vec::new(),
            events: Vec::new(),
            step_plugin_outcomes: HashMap::new(),
            step_plugin_calls: Vec::new(),
        }
    }

    pub fn status(&self) -> &RolloutStatus {
        self.observed
            .rollout
            .status
            .as_ref()
            .expect("status written")
    }

    /// Plans once and executes the plan.
    pub fn reconcile(&mut self) -> Plan {
        let plan = plan(&self.observed, self.now);
        self.events.extend(rollout_events(&self.observed, &plan));
        self.apply(&plan);
        self.plans.push(plan.clone());
        plan
    }

    /// Reconciles, makes every pod ready and moves time forward by a second, `times` times.
    pub fn run(&mut self, times: usize) {
        for _ in 0..times {
            self.reconcile();
            self.make_pods_ready();
            self.advance(1);
        }
    }

    /// Runs until `done` holds (panics after `limit` reconciles).
    pub fn run_until(&mut self, limit: usize, done: impl Fn(&Sim) -> bool) {
        for _ in 0..limit {
            self.reconcile();
            self.make_pods_ready();
            if done(self) {
                return;
            }
            self.advance(1);
        }
        panic!(
            "condition not reached after {limit} reconciles; status: {:#?}",
            self.observed.rollout.status
        );
    }

    pub fn advance(&mut self, seconds: i64) {
        self.now += SignedDuration::from_secs(seconds);
    }

    pub fn make_pods_ready(&mut self) {
        for rs in &mut self.observed.replica_sets {
            rs.replicas = rs.spec_replicas;
            rs.ready_replicas = rs.spec_replicas;
            rs.available_replicas = rs.spec_replicas;
        }
        self.make_listed_pods_ready();
    }

    pub fn apply(&mut self, plan: &Plan) {
        let mut reports = Vec::new();
        for action in &plan.actions {
            match action {
                Action::CreateReplicaSet(new) => {
                    self.observed.replica_sets.push(ObservedReplicaSet {
                        name: new.name.clone(),
                        pod_template_hash: new.pod_template_hash.clone(),
                        revision: new.revision,
                        template: new.template.clone(),
                        spec_replicas: new.replicas,
                        created_at: self.now,
                        ..ObservedReplicaSet::default()
                    })
                }
                Action::ScaleReplicaSet { name, to, .. } => {
                    self.replica_set(name).spec_replicas = *to
                }
                Action::SetReplicaSetRevision { name, revision } => {
                    self.replica_set(name).revision = *revision
                }
                Action::SetScaleDownDeadline { name, deadline } => {
                    self.replica_set(name).scale_down_deadline = Some(*deadline);
                }
                Action::RemoveScaleDownDeadline { name } => {
                    self.replica_set(name).scale_down_deadline = None
                }
                Action::DeleteReplicaSet { name } => {
                    self.observed.replica_sets.retain(|rs| rs.name != *name)
                }
                Action::SetRolloutRevision { revision } => {
                    self.observed
                        .rollout
                        .metadata
                        .annotations
                        .get_or_insert_with(BTreeMap::new)
                        .insert(labels::REVISION.to_string(), revision.to_string());
                }
                Action::SetServiceSelector {
                    service,
                    pod_template_hash,
                } => {
                    let service = self
                        .observed
                        .services
                        .iter_mut()
                        .find(|candidate| candidate.name == *service)
                        .expect("planned service exists");
                    service.selected_pod_template_hash = Some(pod_template_hash.clone());
                    service.managed_by_rollout = true;
                }
                Action::Router(RouterCall::SetWeight { weight, .. }) => {
                    self.router_weight = *weight
                }
                Action::Router(RouterCall::VerifyWeight { weight, .. }) => {
                    self.observed.weight_verification = Some(WeightVerification {
                        weight: *weight,
                        verified: Some(self.router_weight == *weight),
                    });
                }
                Action::Router(_) => {}
                Action::CreateAnalysisRun(request) => {
                    self.observed.analysis_runs.push(ObservedAnalysisRun {
                        name: request.name.clone(),
                        phase: AnalysisPhase::Running,
                        message: None,
                        terminating: false,
                        created_at: self.now,
                    })
                }
                Action::TerminateAnalysisRun { name } => {
                    if let Some(run) = self
                        .observed
                        .analysis_runs
                        .iter_mut()
                        .find(|run| run.name == *name)
                    {
                        run.terminating = true;
                    }
                }
                Action::CreateExperiment(request) => {
                    self.observed.experiments.push(ObservedExperiment {
                        name: request.name.clone(),
                        phase: AnalysisPhase::Running,
                        message: None,
                        terminating: false,
                        created_at: self.now,
                        templates: Vec::new(),
                    })
                }
                Action::TerminateExperiment { name } => {
                    if let Some(experiment) = self
                        .observed
                        .experiments
                        .iter_mut()
                        .find(|e| e.name == *name)
                    {
                        experiment.terminating = true;
                    }
                }
                Action::EvictPod { name } => self.evict(name),
                Action::DeleteAnalysisRun { name } => {
                    self.observed.analysis_runs.retain(|run| run.name != *name)
                }
                Action::DeleteExperiment { name } => {
                    self.observed.experiments.retain(|e| e.name != *name)
                }
                Action::StepPlugin(call) => {
                    let outcome = self
                        .step_plugin_outcomes
                        .get(&(call.name.clone(), call.operation))
                        .cloned()
                        .unwrap_or_else(|| StepPluginOutcome::CallFailed("not scripted".into()));
                    reports.push(step_plugin::record(call, outcome, self.now));
                    self.step_plugin_calls.push(call.clone());
                }
            }
        }
        self.observed.rollout.status = Some(plan.status.clone());
        self.observed.step_plugin_reports = plan.status.canary.step_plugin_statuses.clone();
        for report in reports {
            step_plugin::merge(&mut self.observed.step_plugin_reports, report);
        }
    }

    /// Lists the pods of every ReplicaSet, as the controller does while a restart is due:
    /// `<rs>-<i>`, created with their ReplicaSet.
    pub fn list_pods(&mut self) {
        let pods = self
            .observed
            .replica_sets
            .iter()
            .flat_map(|rs| {
                (0..rs.spec_replicas).map(|index| ObservedPod {
                    name: format!("{}-{index}", rs.name),
                    pod_template_hash: rs.pod_template_hash.clone(),
                    created_at: rs.created_at,
                    terminating: false,
                    ready: index < rs.available_replicas,
                })
            })
            .collect();
        self.observed.pods = Some(pods);
    }

    /// An eviction: the pod terminates and its ReplicaSet has one pod fewer available.
    fn evict(&mut self, name: &str) {
        let Some(pod) = self
            .observed
            .pods
            .iter_mut()
            .flatten()
            .find(|pod| pod.name == name)
        else {
            return;
        };
        pod.terminating = true;
        let hash = pod.pod_template_hash.clone();
        if let Some(rs) = self
            .observed
            .replica_sets
            .iter_mut()
            .find(|rs| rs.pod_template_hash == hash)
        {
            rs.available_replicas -= 1;
            rs.ready_replicas -= 1;
        }
    }

    /// Every listed pod that is not terminating becomes ready.
    fn make_listed_pods_ready(&mut self) {
        for pod in self.observed.pods.iter_mut().flatten() {
            pod.ready = !pod.terminating;
        }
    }

    /// The ReplicaSets replace their terminated pods with new ones, created now.
    pub fn replace_evicted_pods(&mut self) {
        let now = self.now;
        for pod in self.observed.pods.iter_mut().flatten() {
            if pod.terminating {
                pod.name = format!("{}-new", pod.name);
                pod.created_at = now;
                pod.terminating = false;
                pod.ready = false;
            }
        }
    }

    fn replica_set(&mut self, name: &str) -> &mut ObservedReplicaSet {
        self.observed
            .replica_sets
            .iter_mut()
            .find(|rs| rs.name == name)
            .expect("planned ReplicaSet exists")
    }

    /// A spec change (the API server bumps the generation).
    pub fn edit_spec(&mut self, edit: impl FnOnce(&mut RolloutSpec)) {
        edit(&mut self.observed.rollout.spec);
        let generation = self.observed.rollout.metadata.generation.unwrap_or(1);
        self.observed.rollout.metadata.generation = Some(generation + 1);
    }

    pub fn set_image(&mut self, image: &str) {
        self.edit_spec(|spec| spec.template = Some(template(image)));
    }

    fn patch_status(&mut self, patch: impl FnOnce(&mut RolloutStatus)) {
        let status = self
            .observed
            .rollout
            .status
            .get_or_insert_with(RolloutStatus::default);
        patch(status);
    }

    /// `kubectl argo rollouts promote`, as the CLI patches it.
    pub fn promote(&mut self) {
        if self.observed.rollout.spec.paused {
            self.edit_spec(|spec| spec.paused = false);
        }
        let is_canary = self.observed.rollout.canary().is_some();
        self.patch_status(|status| {
            let inconclusive = status.pause_conditions.iter().any(|condition| {
                condition.reason == sluice_api::rollout::PauseReason::InconclusiveAnalysisRun
            });
            let index = status.current_step_index.unwrap_or(0);
            if is_canary && inconclusive && status.controller_pause {
                status.pause_conditions.clear();
                status.controller_pause = false;
                status.current_step_index = Some(index + 1);
            } else if !status.pause_conditions.is_empty() {
                status.pause_conditions.clear();
            } else if is_canary {
                status.current_step_index = Some(index + 1);
            }
        });
    }

    /// `kubectl argo rollouts promote --full`.
    pub fn promote_full(&mut self) {
        self.patch_status(|status| status.promote_full = true);
    }

    /// `kubectl argo rollouts abort`.
    pub fn abort(&mut self) {
        self.patch_status(|status| status.abort = true);
    }

    /// `kubectl argo rollouts retry rollout`.
    pub fn retry(&mut self) {
        self.patch_status(|status| status.abort = false);
    }

    pub fn set_run_phase(&mut self, name: &str, phase: AnalysisPhase, message: Option<&str>) {
        let run = self
            .observed
            .analysis_runs
            .iter_mut()
            .find(|run| run.name == name)
            .unwrap_or_else(|| panic!("no AnalysisRun {name}"));
        run.phase = phase;
        run.message = message.map(str::to_string);
    }

    pub fn replica_set_by_hash(&self, hash: &str) -> &ObservedReplicaSet {
        self.observed
            .replica_set_by_hash(hash)
            .expect("ReplicaSet exists")
    }

    pub fn selector(&self, service: &str) -> Option<&str> {
        self.observed
            .service(service)
            .and_then(|service| service.selected_pod_template_hash.as_deref())
    }

    pub fn phase(&self) -> Option<sluice_api::rollout::RolloutPhase> {
        self.status().phase
    }

    pub fn healthy(&self) -> bool {
        self.phase() == Some(sluice_api::rollout::RolloutPhase::Healthy)
    }

    /// The events emitted so far with this reason.
    pub fn events_with_reason(&self, reason: &str) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|event| event.reason == reason)
            .collect()
    }

    pub fn condition(&self, type_: &str) -> Option<&sluice_api::rollout::RolloutCondition> {
        self.status()
            .conditions
            .iter()
            .find(|condition| condition.type_ == type_)
    }
}
