//! Experiments: templates' ReplicaSets and Services, analyses, phases, duration, progress
//! deadline, terminate and scale-down, as [`plan_experiment`] decides them.
//!
//! Each table row describes an Experiment (spec and last written status), what the controller
//! observed and the time, then the actions (as short descriptions), phase, message and requeue
//! the plan must have. A scenario at the end walks one experiment to `Successful`.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sluice_api::analysis::{AnalysisPhase, AnalysisTemplate};
use sluice_api::experiment::Experiment;
use sluice_api::labels;
use sluice_core::analysis::TemplateCatalog;
use sluice_core::events::{Event, experiment_events};
use sluice_core::experiment::{
    EXPERIMENT_NAME_ANNOTATION, ExperimentAction, ExperimentPlan, ObservedExperiment,
    TEMPLATE_NAME_ANNOTATION, TemplateReplicaSet, plan_experiment,
};
use sluice_core::observed::ObservedAnalysisRun;

use AnalysisPhase::{Error, Failed, Inconclusive, Pending, Running, Successful};

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("timestamp")
}

fn at(seconds: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(seconds)
}

fn time(seconds: i64) -> String {
    at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn pod_template(app: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": format!("{app}:1"),
                                 "ports": [{"name": "http", "containerPort": 8080}]}]}
    })
}

/// An experiment `exp` with templates `baseline` and `canary` (one pod each) and `extra` merged
/// into its spec.
fn experiment(extra: Value, status: Value) -> Experiment {
    let mut spec = json!({
        "templates": [
            {"name": "baseline", "selector": {"matchLabels": {"app": "baseline"}},
             "template": pod_template("baseline")},
            {"name": "canary", "selector": {"matchLabels": {"app": "canary"}},
             "template": pod_template("canary")},
        ],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "exp", "namespace": "ns"},
        "spec": spec,
        "status": status,
    }))
    .expect("experiment")
}

fn running_templates(since: i64) -> Value {
    json!([
        {"name": "baseline", "status": "Running", "lastTransitionTime": time(since)},
        {"name": "canary", "status": "Running", "lastTransitionTime": time(since)},
    ])
}

fn available(name: &str) -> TemplateReplicaSet {
    TemplateReplicaSet {
        name: name.to_string(),
        spec_replicas: 1,
        replicas: 1,
        updated_replicas: 1,
        ready_replicas: 1,
        available_replicas: 1,
    }
}

fn starting(name: &str) -> TemplateReplicaSet {
    TemplateReplicaSet {
        available_replicas: 0,
        ready_replicas: 0,
        ..available(name)
    }
}

fn both_available() -> Vec<TemplateReplicaSet> {
    vec![available("exp-baseline"), available("exp-canary")]
}

fn run(name: &str, phase: AnalysisPhase) -> ObservedAnalysisRun {
    ObservedAnalysisRun {
        name: name.to_string(),
        phase,
        message: (phase == Failed).then(|| "metric \"m\" assessed Failed".to_string()),
        terminating: false,
        created_at: t0(),
    }
}

fn template(name: &str) -> AnalysisTemplate {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "args": [{"name": "hash"}],
            "metrics": [{"name": "m", "provider": {"prometheus": {"query": "up{hash=\"{{args.hash}}\"}"}}}],
        },
    }))
    .expect("template")
}

fn describe(action: &ExperimentAction) -> String {
    match action {
        ExperimentAction::CreateReplicaSet(rs) => {
            format!(
                "create-rs {}",
                rs.metadata.name.as_deref().unwrap_or_default()
            )
        }
        ExperimentAction::ScaleReplicaSet { name, replicas } => format!("scale {name} {replicas}"),
        ExperimentAction::CreateService(service) => {
            format!(
                "create-svc {}",
                service.metadata.name.as_deref().unwrap_or_default()
            )
        }
        ExperimentAction::CreateAnalysisRun(run) => {
            format!(
                "create-run {}",
                run.metadata.name.as_deref().unwrap_or_default()
            )
        }
        ExperimentAction::TerminateAnalysisRun { name } => format!("terminate {name}"),
    }
}

struct Case {
    name: &'static str,
    spec: Value,
    status: Value,
    replica_sets: Vec<TemplateReplicaSet>,
    services: Vec<&'static str>,
    runs: Vec<ObservedAnalysisRun>,
    now: i64,
    actions: Vec<&'static str>,
    phase: AnalysisPhase,
    /// Text the status message must contain.
    message: Option<&'static str>,
    requeue: Option<u64>,
}

impl Default for Case {
    fn default() -> Self {
        Self {
            name: "",
            spec: json!({}),
            status: json!({}),
            replica_sets: Vec::new(),
            services: Vec::new(),
            runs: Vec::new(),
            now: 0,
            actions: Vec::new(),
            phase: Pending,
            message: None,
            requeue: None,
        }
    }
}

fn observed_of<'a>(case: &Case, templates: &'a [AnalysisTemplate]) -> ObservedExperiment<'a> {
    ObservedExperiment {
        replica_sets: case.replica_sets.clone(),
        services: case.services.iter().map(ToString::to_string).collect(),
        analysis_runs: case.runs.clone(),
        templates: TemplateCatalog {
            templates,
            cluster_templates: &[],
        },
    }
}

fn plan_case(case: &Case, templates: &[AnalysisTemplate]) -> ExperimentPlan {
    let experiment = experiment(case.spec.clone(), case.status.clone());
    plan_experiment(&experiment, &observed_of(case, templates), at(case.now))
}

fn running_status(available_at: i64, runs: Value) -> Value {
    json!({
        "phase": "Running",
        "availableAt": time(available_at),
        "templateStatuses": running_templates(available_at),
        "analysisRuns": runs,
    })
}

fn one_analysis(required: bool) -> Value {
    json!([{"name": "check", "templateName": "check", "requiredForCompletion": required,
            "args": [{"name": "hash", "value": "{{templates.canary.podTemplateHash}}"}]}])
}

fn recorded_run(analysis: &str, phase: &str) -> Value {
    json!([{"name": analysis, "analysisRun": format!("exp-{analysis}"), "phase": phase}])
}

#[test]
fn experiment_table() {
    let cases = vec![
        Case {
            name: "a new experiment creates one ReplicaSet per template named <experiment>-<template>",
            actions: vec!["create-rs exp-baseline", "create-rs exp-canary"],
            phase: Pending,
            requeue: Some(600),
            ..Case::default()
        },
        Case {
            name: "a template asking for a Service gets one named after its ReplicaSet",
            spec: json!({"templates": [{"name": "canary", "service": {},
                                        "template": pod_template("canary")}]}),
            actions: vec!["create-svc exp-canary", "create-rs exp-canary"],
            phase: Pending,
            requeue: Some(600),
            ..Case::default()
        },
        Case {
            name: "a template Service with a name uses that name, and an existing one is not created again",
            spec: json!({"templates": [
                {"name": "canary", "service": {"name": "preview"}, "template": pod_template("canary")},
                {"name": "baseline", "service": {"name": "base"}, "template": pod_template("baseline")},
            ]}),
            services: vec!["base"],
            actions: vec![
                "create-svc preview",
                "create-rs exp-canary",
                "create-rs exp-baseline",
            ],
            phase: Pending,
            requeue: Some(600),
            ..Case::default()
        },
        Case {
            name: "templates whose pods are not available yet keep the experiment Pending without analyses",
            spec: json!({"analyses": one_analysis(false)}),
            status: json!({"templateStatuses": [
                {"name": "baseline", "status": "Progressing", "lastTransitionTime": time(0)},
                {"name": "canary", "status": "Progressing", "lastTransitionTime": time(0)},
            ]}),
            replica_sets: vec![starting("exp-baseline"), available("exp-canary")],
            now: 100,
            phase: Pending,
            requeue: Some(500),
            ..Case::default()
        },
        Case {
            name: "every template available makes the experiment Running and creates the AnalysisRuns",
            spec: json!({"analyses": one_analysis(false), "duration": "1m"}),
            replica_sets: both_available(),
            now: 10,
            actions: vec!["create-run exp-check"],
            phase: Running,
            requeue: Some(60),
            ..Case::default()
        },
        Case {
            name: "a ReplicaSet with the wrong replica count is scaled to the template's replicas",
            spec: json!({"templates": [{"name": "canary", "replicas": 3, "template": pod_template("canary")}]}),
            replica_sets: vec![available("exp-canary")],
            actions: vec!["scale exp-canary 3"],
            phase: Pending,
            requeue: Some(600),
            ..Case::default()
        },
        Case {
            name: "before the duration has passed the experiment runs and requeues at its end",
            spec: json!({"duration": "30s"}),
            status: running_status(0, json!([])),
            replica_sets: both_available(),
            now: 20,
            phase: Running,
            requeue: Some(10),
            ..Case::default()
        },
        Case {
            name: "once the duration has passed the experiment is Successful and its running analyses are terminated",
            spec: json!({"duration": "30s", "analyses": one_analysis(false)}),
            status: running_status(0, recorded_run("check", "Running")),
            replica_sets: both_available(),
            runs: vec![run("exp-check", Running)],
            now: 30,
            actions: vec!["terminate exp-check"],
            phase: Successful,
            requeue: Some(30),
            ..Case::default()
        },
        Case {
            name: "a failed analysis fails the experiment at once, before the duration",
            spec: json!({"duration": "1h", "analyses": one_analysis(false)}),
            status: running_status(0, recorded_run("check", "Running")),
            replica_sets: both_available(),
            runs: vec![run("exp-check", Failed)],
            now: 5,
            phase: Failed,
            message: Some("AnalysisRun 'exp-check' completed Failed: metric \"m\" assessed Failed"),
            requeue: Some(30),
            ..Case::default()
        },
        Case {
            name: "an inconclusive analysis makes the experiment Inconclusive",
            spec: json!({"duration": "1h", "analyses": one_analysis(false)}),
            status: running_status(0, recorded_run("check", "Running")),
            replica_sets: both_available(),
            runs: vec![run("exp-check", Inconclusive)],
            now: 5,
            phase: Inconclusive,
            message: Some("AnalysisRun 'exp-check' completed Inconclusive"),
            requeue: Some(30),
            ..Case::default()
        },
        Case {
            name: "an analysis in Error makes the experiment Error",
            spec: json!({"duration": "1h", "analyses": one_analysis(false)}),
            status: running_status(0, recorded_run("check", "Running")),
            replica_sets: both_available(),
            runs: vec![run("exp-check", Error)],
            now: 5,
            phase: Error,
            requeue: Some(30),
            ..Case::default()
        },
        Case {
            name: "without a duration the experiment succeeds when its required analysis succeeds",
            spec: json!({"analyses": [
                {"name": "check", "templateName": "check", "requiredForCompletion": true},
                {"name": "side", "templateName": "check"},
            ]}),
            status: running_status(
                0,
                json!([
                    {"name": "check", "analysisRun": "exp-check", "phase": "Running"},
                    {"name": "side", "analysisRun": "exp-side", "phase": "Running"},
                ]),
            ),
            replica_sets: both_available(),
            runs: vec![run("exp-check", Successful), run("exp-side", Running)],
            now: 50,
            actions: vec!["terminate exp-side"],
            phase: Successful,
            requeue: Some(30),
            ..Case::default()
        },
        Case {
            name: "without a duration a completed optional analysis does not end the experiment while a required one runs",
            spec: json!({"analyses": [
                {"name": "check", "templateName": "check", "requiredForCompletion": true},
                {"name": "side", "templateName": "check"},
            ]}),
            status: running_status(
                0,
                json!([
                    {"name": "check", "analysisRun": "exp-check", "phase": "Running"},
                    {"name": "side", "analysisRun": "exp-side", "phase": "Running"},
                ]),
            ),
            replica_sets: both_available(),
            runs: vec![run("exp-check", Running), run("exp-side", Successful)],
            now: 50,
            phase: Running,
            ..Case::default()
        },
        Case {
            name: "without a duration or analyses a running experiment runs until terminated, with no requeue",
            status: running_status(0, json!([])),
            replica_sets: both_available(),
            now: 5000,
            phase: Running,
            ..Case::default()
        },
        Case {
            name: "terminate stops a running experiment as Successful with Argo's message and terminates its runs",
            spec: json!({"terminate": true, "analyses": one_analysis(false), "scaleDownDelaySeconds": 0}),
            status: running_status(0, recorded_run("check", "Running")),
            replica_sets: both_available(),
            runs: vec![run("exp-check", Running)],
            now: 5,
            actions: vec![
                "terminate exp-check",
                "scale exp-baseline 0",
                "scale exp-canary 0",
            ],
            phase: Successful,
            message: Some("Experiment was terminated"),
            ..Case::default()
        },
        Case {
            name: "a template still progressing after progressDeadlineSeconds fails the experiment",
            spec: json!({"progressDeadlineSeconds": 60, "scaleDownDelaySeconds": 0}),
            status: json!({"templateStatuses": [
                {"name": "baseline", "status": "Progressing", "lastTransitionTime": time(0)},
                {"name": "canary", "status": "Running", "lastTransitionTime": time(0)},
            ]}),
            replica_sets: vec![starting("exp-baseline"), available("exp-canary")],
            now: 60,
            actions: vec!["scale exp-baseline 0", "scale exp-canary 0"],
            phase: Failed,
            message: Some("Template 'baseline' exceeded its progressDeadlineSeconds (60)"),
            ..Case::default()
        },
        Case {
            name: "a completed experiment scales its ReplicaSets down only after scaleDownDelaySeconds",
            spec: json!({"duration": "10s", "scaleDownDelaySeconds": 20}),
            status: json!({
                "phase": "Successful",
                "availableAt": time(0),
                "templateStatuses": [
                    {"name": "baseline", "status": "Successful", "lastTransitionTime": time(10)},
                    {"name": "canary", "status": "Successful", "lastTransitionTime": time(10)},
                ],
            }),
            replica_sets: both_available(),
            now: 25,
            phase: Successful,
            requeue: Some(5),
            ..Case::default()
        },
        Case {
            name: "a completed experiment past its scale-down delay scales every template to zero",
            spec: json!({"duration": "10s", "scaleDownDelaySeconds": 20}),
            status: json!({
                "phase": "Successful",
                "availableAt": time(0),
                "templateStatuses": [
                    {"name": "baseline", "status": "Successful", "lastTransitionTime": time(10)},
                    {"name": "canary", "status": "Successful", "lastTransitionTime": time(10)},
                ],
            }),
            replica_sets: both_available(),
            now: 30,
            actions: vec!["scale exp-baseline 0", "scale exp-canary 0"],
            phase: Successful,
            ..Case::default()
        },
        Case {
            name: "a completed experiment never recreates missing ReplicaSets or AnalysisRuns",
            spec: json!({"duration": "10s", "analyses": one_analysis(false)}),
            status: json!({
                "phase": "Failed",
                "message": "boom",
                "availableAt": time(0),
                "templateStatuses": [
                    {"name": "baseline", "status": "Failed", "lastTransitionTime": time(5)},
                    {"name": "canary", "status": "Failed", "lastTransitionTime": time(5)},
                ],
            }),
            now: 500,
            phase: Failed,
            message: Some("boom"),
            ..Case::default()
        },
        Case {
            name: "an analysis whose template does not exist is an Error naming the template",
            spec: json!({"duration": "1m", "analyses": [{"name": "check", "templateName": "missing"}]}),
            replica_sets: both_available(),
            now: 10,
            phase: Error,
            message: Some(
                "AnalysisRun 'exp-check' completed Error: analysistemplate.argoproj.io \"missing\" not found",
            ),
            requeue: Some(30),
            ..Case::default()
        },
        Case {
            name: "a ReplicaSet deleted while its template ran puts the experiment in Error",
            spec: json!({"duration": "1m", "scaleDownDelaySeconds": 0}),
            status: running_status(0, json!([])),
            replica_sets: vec![available("exp-canary")],
            now: 10,
            actions: vec!["scale exp-canary 0"],
            phase: Error,
            message: Some("ReplicaSet exp-baseline was deleted"),
            ..Case::default()
        },
        Case {
            name: "a running experiment with everything in place plans nothing",
            spec: json!({"duration": "1m", "analyses": one_analysis(false)}),
            status: running_status(0, recorded_run("check", "Running")),
            replica_sets: both_available(),
            runs: vec![run("exp-check", Running)],
            now: 10,
            phase: Running,
            requeue: Some(50),
            ..Case::default()
        },
        Case {
            name: "a run recorded in the status but not yet in the cache is not created twice",
            spec: json!({"duration": "1m", "analyses": one_analysis(false)}),
            status: running_status(0, recorded_run("check", "Pending")),
            replica_sets: both_available(),
            now: 10,
            phase: Running,
            requeue: Some(50),
            ..Case::default()
        },
    ];
    assert!(cases.len() >= 15);
    let templates = [template("check")];
    let mut failures = Vec::new();
    for case in &cases {
        let plan = plan_case(case, &templates);
        let actions: Vec<String> = plan.actions.iter().map(describe).collect();
        let phase = plan.status.phase;
        let message = plan.status.message.clone();
        let requeue = plan.requeue_after.map(|delay| delay.as_secs());
        let message_ok = case.message.is_none_or(|expected| {
            message
                .as_deref()
                .is_some_and(|message| message.contains(expected))
        });
        if actions != case.actions
            || phase != Some(case.phase)
            || !message_ok
            || requeue != case.requeue
        {
            failures.push(format!(
                "{}:\n  actions {actions:?} (want {:?})\n  phase {phase:?} (want {:?})\n  message {message:?} (want {:?})\n  requeue {requeue:?} (want {:?})",
                case.name, case.actions, case.phase, case.message, case.requeue
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn created_replica_set_carries_the_hash_label_and_argo_annotations() {
    let experiment = experiment(json!({}), json!({}));
    let plan = plan_experiment(&experiment, &ObservedExperiment::default(), t0());
    let Some(ExperimentAction::CreateReplicaSet(rs)) = plan.actions.first() else {
        panic!("expected a ReplicaSet first, got {:?}", plan.actions);
    };
    let hash = plan.status.template_statuses[0]
        .pod_template_hash
        .clone()
        .expect("hash recorded in the template status");
    let spec = rs.spec.as_ref().expect("spec");
    let selector = spec.selector.match_labels.as_ref().expect("selector");
    assert_eq!(selector.get(labels::POD_TEMPLATE_HASH), Some(&hash));
    assert_eq!(selector.get("app").map(String::as_str), Some("baseline"));
    let pod_labels = spec
        .template
        .as_ref()
        .and_then(|template| template.metadata.as_ref())
        .and_then(|metadata| metadata.labels.as_ref())
        .expect("pod labels");
    assert_eq!(pod_labels.get(labels::POD_TEMPLATE_HASH), Some(&hash));
    let annotations = rs.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(
        annotations
            .get(EXPERIMENT_NAME_ANNOTATION)
            .map(String::as_str),
        Some("exp")
    );
    assert_eq!(
        annotations
            .get(TEMPLATE_NAME_ANNOTATION)
            .map(String::as_str),
        Some("baseline")
    );
    assert_eq!(spec.replicas, Some(1));
}

#[test]
fn analysis_run_arguments_resolve_template_placeholders() {
    let case = Case {
        spec: json!({"analyses": one_analysis(false), "duration": "1m",
                     "dryRun": [{"metricName": "m"}]}),
        replica_sets: both_available(),
        now: 10,
        ..Case::default()
    };
    let templates = [template("check")];
    let plan = plan_case(&case, &templates);
    let Some(ExperimentAction::CreateAnalysisRun(run)) = plan.actions.first() else {
        panic!("expected an AnalysisRun, got {:?}", plan.actions);
    };
    let canary_hash = plan.status.template_statuses[1]
        .pod_template_hash
        .clone()
        .expect("canary hash");
    assert_eq!(run.spec.args.len(), 1);
    assert_eq!(
        run.spec.args[0].value.as_deref(),
        Some(canary_hash.as_str())
    );
    assert_eq!(run.spec.metrics.len(), 1);
    assert_eq!(
        run.spec.dry_run.len(),
        1,
        "the experiment's dry-run rules reach the run"
    );
}

/// The value an analysis argument gets when every template became available at 0 and the plan
/// runs at 10, or the message of the analysis's Error.
fn resolved_argument(value: &str, duration: Option<&str>) -> Result<String, String> {
    let mut spec = json!({"analyses": [{"name": "check", "templateName": "check",
                                        "args": [{"name": "hash", "value": value}]}]});
    if let Some(duration) = duration {
        spec["duration"] = json!(duration);
    }
    let case = Case {
        spec,
        status: json!({"availableAt": time(0), "templateStatuses": running_templates(0)}),
        replica_sets: both_available(),
        now: 10,
        ..Case::default()
    };
    let plan = plan_case(&case, &[template("check")]);
    match plan.actions.iter().find_map(|action| match action {
        ExperimentAction::CreateAnalysisRun(run) => Some(run),
        _ => None,
    }) {
        Some(run) => Ok(run.spec.args[0].value.clone().unwrap_or_default()),
        None => Err(plan.status.analysis_runs[0]
            .message
            .clone()
            .unwrap_or_default()),
    }
}

#[test]
fn experiment_argument_placeholders() {
    let rows: [(&str, Option<&str>, Result<String, String>); 6] = [
        (
            "rs={{templates.baseline.replicaset.name}}",
            None,
            Ok("rs=exp-baseline".into()),
        ),
        ("{{experiment.availableAt}}", Some("1m"), Ok(time(0))),
        ("{{experiment.finishedAt}}", Some("1m"), Ok(time(60))),
        (
            "from {{experiment.availableAt}} to {{experiment.finishedAt}}",
            Some("1h30m"),
            Ok(format!("from {} to {}", time(0), time(5400))),
        ),
        (
            "{{experiment.finishedAt}}",
            None,
            Err("failed to resolve {{experiment.finishedAt}}".into()),
        ),
        (
            "{{experiment.finishedAt}}",
            Some("soon"),
            Err("failed to resolve {{experiment.finishedAt}}".into()),
        ),
    ];
    for (value, duration, expected) in rows {
        assert_eq!(
            resolved_argument(value, duration),
            expected,
            "{value} with duration {duration:?}"
        );
    }
}

/// Executes a plan against a tiny simulated cluster.
#[derive(Default)]
struct World {
    replica_sets: Vec<TemplateReplicaSet>,
    runs: Vec<ObservedAnalysisRun>,
}

impl World {
    fn apply(&mut self, plan: &ExperimentPlan) {
        for action in &plan.actions {
            match action {
                ExperimentAction::CreateReplicaSet(rs) => {
                    self.replica_sets.push(TemplateReplicaSet {
                        name: rs.metadata.name.clone().unwrap_or_default(),
                        spec_replicas: rs.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1),
                        ..TemplateReplicaSet::default()
                    })
                }
                ExperimentAction::ScaleReplicaSet { name, replicas } => {
                    for rs in self.replica_sets.iter_mut().filter(|rs| &rs.name == name) {
                        rs.spec_replicas = *replicas;
                        rs.replicas = *replicas;
                        rs.available_replicas = rs.available_replicas.min(*replicas);
                    }
                }
                ExperimentAction::CreateService(_) => {}
                ExperimentAction::CreateAnalysisRun(run) => self.runs.push(ObservedAnalysisRun {
                    name: run.metadata.name.clone().unwrap_or_default(),
                    phase: Pending,
                    message: None,
                    terminating: false,
                    created_at: t0(),
                }),
                ExperimentAction::TerminateAnalysisRun { name } => {
                    for run in self.runs.iter_mut().filter(|run| &run.name == name) {
                        run.terminating = true;
                    }
                }
            }
        }
    }

    fn pods_ready(&mut self) {
        for rs in &mut self.replica_sets {
            rs.replicas = rs.spec_replicas;
            rs.ready_replicas = rs.spec_replicas;
            rs.available_replicas = rs.spec_replicas;
        }
    }
}

#[test]
fn scenario_an_experiment_runs_to_successful_and_scales_down() {
    let templates = [template("check")];
    let mut experiment = experiment(
        json!({"duration": "30s", "scaleDownDelaySeconds": 10, "analyses": one_analysis(false)}),
        json!({}),
    );
    let mut world = World::default();
    let events = std::cell::RefCell::new(Vec::new());
    let step = |experiment: &mut Experiment, world: &mut World, seconds: i64| {
        let observed = ObservedExperiment {
            replica_sets: world.replica_sets.clone(),
            services: Vec::new(),
            analysis_runs: world.runs.clone(),
            templates: TemplateCatalog {
                templates: &templates,
                cluster_templates: &[],
            },
        };
        let plan = plan_experiment(experiment, &observed, at(seconds));
        events
            .borrow_mut()
            .extend(experiment_events(experiment, &observed, &plan));
        world.apply(&plan);
        experiment.status = Some(plan.status.clone());
        plan
    };

    let plan = step(&mut experiment, &mut world, 0);
    assert_eq!(plan.status.phase, Some(Pending));
    assert_eq!(world.replica_sets.len(), 2);

    let plan = step(&mut experiment, &mut world, 1);
    assert!(
        plan.actions.is_empty(),
        "nothing to do while pods start: {:?}",
        plan.actions
    );

    world.pods_ready();
    let plan = step(&mut experiment, &mut world, 5);
    assert_eq!(plan.status.phase, Some(Running));
    assert_eq!(
        plan.status.available_at.as_ref().map(|time| time.0),
        Some(at(5))
    );
    assert_eq!(
        world.runs.len(),
        1,
        "the analysis starts once every template is available"
    );
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(30)));
    assert!(
        plan.status
            .template_statuses
            .iter()
            .all(|template| template.status.as_deref() == Some("Running"))
    );

    world.runs[0].phase = Running;
    let plan = step(&mut experiment, &mut world, 20);
    assert_eq!(plan.status.phase, Some(Running));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(15)));

    let plan = step(&mut experiment, &mut world, 35);
    assert_eq!(plan.status.phase, Some(Successful));
    assert!(
        world.runs[0].terminating,
        "the running analysis is terminated"
    );
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(10)));
    assert!(world.replica_sets.iter().all(|rs| rs.spec_replicas == 1));
    assert!(
        plan.status
            .template_statuses
            .iter()
            .all(|template| template.status.as_deref() == Some("Successful"))
    );

    world.runs[0].phase = Successful;
    let plan = step(&mut experiment, &mut world, 45);
    assert_eq!(plan.status.phase, Some(Successful));
    assert!(world.replica_sets.iter().all(|rs| rs.spec_replicas == 0));

    let plan = step(&mut experiment, &mut world, 60);
    assert!(
        plan.actions.is_empty(),
        "a finished experiment is quiet: {:?}",
        plan.actions
    );
    assert_eq!(plan.requeue_after, None);
    assert_eq!(plan.status, experiment.status.clone().expect("status"));

    // One event per transition, none for the reconciles that changed nothing.
    let n = |reason: &str, message: &str| (reason.to_string(), false, message.to_string());
    let events: Vec<(String, bool, String)> = events
        .into_inner()
        .into_iter()
        .map(|event| (event.reason, event.warning, event.message))
        .collect();
    assert_eq!(
        events,
        [
            n(
                "NewReplicaSetCreated",
                "Created ReplicaSet exp-baseline with size 1"
            ),
            n(
                "NewReplicaSetCreated",
                "Created ReplicaSet exp-canary with size 1"
            ),
            n(
                "TemplateProgressing",
                "Template 'baseline' transitioned from  -> Progressing"
            ),
            n(
                "TemplateProgressing",
                "Template 'canary' transitioned from  -> Progressing"
            ),
            n(
                "ExperimentPending",
                "Experiment transitioned from  -> Pending"
            ),
            // every template available (t=5)
            n(
                "TemplateRunning",
                "Template 'baseline' transitioned from Progressing -> Running"
            ),
            n(
                "TemplateRunning",
                "Template 'canary' transitioned from Progressing -> Running"
            ),
            n(
                "AnalysisRunPending",
                "AnalysisRun 'check' transitioned from  -> Pending"
            ),
            n(
                "ExperimentRunning",
                "Experiment transitioned from Pending -> Running"
            ),
            n(
                "AnalysisRunRunning",
                "AnalysisRun 'check' transitioned from Pending -> Running"
            ),
            // the duration passed (t=35)
            n("AnalysisRunTerminating", "Terminating check (exp-check)"),
            n(
                "TemplateSuccessful",
                "Template 'baseline' transitioned from Running -> Successful"
            ),
            n(
                "TemplateSuccessful",
                "Template 'canary' transitioned from Running -> Successful"
            ),
            n(
                "ExperimentSuccessful",
                "Experiment transitioned from Running -> Successful"
            ),
            // the scale-down delay passed (t=45)
            n(
                "ScalingReplicaSet",
                "Scaled down ReplicaSet exp-baseline from 1 to 0"
            ),
            n(
                "ScalingReplicaSet",
                "Scaled down ReplicaSet exp-canary from 1 to 0"
            ),
            n(
                "AnalysisRunSuccessful",
                "AnalysisRun 'check' transitioned from Running -> Successful"
            ),
        ]
    );
}

#[test]
fn experiment_events_of_failures_are_warnings() {
    let w = |reason: &str, message: &str| (reason.to_string(), true, message.to_string());
    let n = |reason: &str, message: &str| (reason.to_string(), false, message.to_string());
    // a running experiment whose analysis is now in `phase`
    let running = |phase| Case {
        spec: json!({"duration": "1h", "analyses": one_analysis(false)}),
        status: running_status(0, recorded_run("check", "Running")),
        replica_sets: both_available(),
        runs: vec![run("exp-check", phase)],
        now: 5,
        ..Case::default()
    };
    let rows = [
        (
            running(Failed),
            vec![
                w(
                    "TemplateFailed",
                    "Template 'baseline' transitioned from Running -> Failed",
                ),
                w(
                    "TemplateFailed",
                    "Template 'canary' transitioned from Running -> Failed",
                ),
                w(
                    "AnalysisRunFailed",
                    "AnalysisRun 'check' transitioned from Running -> Failed: metric \"m\" assessed Failed",
                ),
                w(
                    "ExperimentFailed",
                    "Experiment transitioned from Running -> Failed",
                ),
            ],
        ),
        (
            running(Inconclusive),
            vec![
                w(
                    "TemplateFailed",
                    "Template 'baseline' transitioned from Running -> Failed",
                ),
                w(
                    "TemplateFailed",
                    "Template 'canary' transitioned from Running -> Failed",
                ),
                w(
                    "AnalysisRunInconclusive",
                    "AnalysisRun 'check' transitioned from Running -> Inconclusive",
                ),
                w(
                    "ExperimentInconclusive",
                    "Experiment transitioned from Running -> Inconclusive",
                ),
            ],
        ),
        (
            running(Error),
            vec![
                w(
                    "TemplateFailed",
                    "Template 'baseline' transitioned from Running -> Failed",
                ),
                w(
                    "TemplateFailed",
                    "Template 'canary' transitioned from Running -> Failed",
                ),
                w(
                    "AnalysisRunError",
                    "AnalysisRun 'check' transitioned from Running -> Error",
                ),
                w(
                    "ExperimentError",
                    "Experiment transitioned from Running -> Error",
                ),
            ],
        ),
        (
            Case {
                spec: json!({"progressDeadlineSeconds": 60, "scaleDownDelaySeconds": 0}),
                status: json!({"phase": "Pending", "templateStatuses": [
                    {"name": "baseline", "status": "Progressing", "lastTransitionTime": time(0)},
                    {"name": "canary", "status": "Running", "lastTransitionTime": time(0)},
                ]}),
                replica_sets: vec![starting("exp-baseline"), available("exp-canary")],
                now: 60,
                ..Case::default()
            },
            vec![
                n(
                    "ScalingReplicaSet",
                    "Scaled down ReplicaSet exp-baseline from 1 to 0",
                ),
                n(
                    "ScalingReplicaSet",
                    "Scaled down ReplicaSet exp-canary from 1 to 0",
                ),
                w(
                    "TemplateFailed",
                    "Template 'baseline' transitioned from Progressing -> Failed: Template 'baseline' exceeded its progressDeadlineSeconds (60)",
                ),
                w(
                    "TemplateFailed",
                    "Template 'canary' transitioned from Running -> Failed",
                ),
                w(
                    "ExperimentFailed",
                    "Experiment transitioned from Pending -> Failed",
                ),
            ],
        ),
        (running(Running), vec![]),
    ];
    let templates = [template("check")];
    for (index, (case, expected)) in rows.iter().enumerate() {
        let experiment = experiment(case.spec.clone(), case.status.clone());
        let observed = observed_of(case, &templates);
        let plan = plan_experiment(&experiment, &observed, at(case.now));
        let events: Vec<(String, bool, String)> = experiment_events(&experiment, &observed, &plan)
            .into_iter()
            .map(
                |Event {
                     reason,
                     warning,
                     message,
                 }| (reason, warning, message),
            )
            .collect();
        assert_eq!(&events, expected, "row {index}");
    }
}

fn step_request(step: Value) -> sluice_core::plan::ExperimentRequest {
    sluice_core::plan::ExperimentRequest {
        name: "web-6f7c-2-1".to_string(),
        step_index: 1,
        step: serde_json::from_value(step).expect("experiment step"),
        pod_template_hash: "6f7c".to_string(),
        stable_pod_template_hash: Some("5d9b".to_string()),
        revision: 2,
    }
}

fn step_rollout() -> sluice_api::rollout::Rollout {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "replicas": 2,
            "minReadySeconds": 5,
            "progressDeadlineSeconds": 120,
            "selector": {"matchLabels": {"app": "web"}},
            "template": pod_template("web"),
            "strategy": {"canary": {"steps": []}},
        },
    }))
    .expect("rollout")
}

#[test]
fn a_rollout_experiment_step_becomes_an_experiment_labelled_and_templated_as_argo_does() {
    let mut stable: k8s_openapi::api::core::v1::PodTemplateSpec =
        serde_json::from_value(pod_template("web-old")).expect("template");
    stable
        .metadata
        .get_or_insert_default()
        .labels
        .get_or_insert_default()
        .insert(labels::POD_TEMPLATE_HASH.into(), "5d9b".into());
    let request = step_request(json!({
        "duration": "5m",
        "templates": [
            {"name": "canary", "specRef": "canary", "replicas": 2,
             "metadata": {"labels": {"role": "canary"}}, "service": {}},
            {"name": "baseline", "specRef": "stable"},
        ],
        "analyses": [{"name": "compare", "templateName": "check", "requiredForCompletion": true,
                      "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]}],
    }));
    let experiment =
        sluice_core::experiment::experiment_for_step(&request, &step_rollout(), Some(&stable))
            .expect("experiment");
    assert_eq!(experiment.metadata.name.as_deref(), Some("web-6f7c-2-1"));
    assert_eq!(
        experiment
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(labels::POD_TEMPLATE_HASH))
            .map(String::as_str),
        Some("6f7c")
    );
    assert_eq!(
        experiment
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(labels::RUN_REVISION))
            .map(String::as_str),
        Some("2")
    );
    let spec = &experiment.spec;
    assert_eq!(spec.duration.as_ref().map(|d| d.0.as_str()), Some("5m"));
    assert_eq!(spec.progress_deadline_seconds, Some(120));
    let canary = &spec.templates[0];
    let canary_labels = canary
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(
        canary_labels.get("role").map(String::as_str),
        Some("canary")
    );
    assert_eq!(canary_labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(canary.replicas, Some(2));
    assert_eq!(canary.min_ready_seconds, Some(5));
    assert!(canary.service.is_some());
    let baseline = &spec.templates[1];
    let baseline_labels = baseline
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(
        baseline_labels.get("app").map(String::as_str),
        Some("web-old"),
        "the stable pod template"
    );
    assert!(
        !baseline_labels.contains_key(labels::POD_TEMPLATE_HASH),
        "the stable ReplicaSet's hash label is not copied"
    );
    assert_eq!(
        baseline
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("web"),
        "the Rollout's selector"
    );
    assert_eq!(spec.analyses.len(), 1);
    assert!(spec.analyses[0].required_for_completion);
    assert_eq!(
        spec.analyses[0].args[0].value.as_deref(),
        Some("6f7c"),
        "args made literal"
    );
}

#[test]
fn a_stable_template_without_a_stable_replica_set_is_an_error() {
    let request = step_request(json!({"templates": [{"name": "baseline", "specRef": "stable"}]}));
    let error = sluice_core::experiment::experiment_for_step(&request, &step_rollout(), None)
        .expect_err("no stable template");
    assert_eq!(
        error.to_string(),
        "experiment template baseline: the stable ReplicaSet is not known"
    );
}

/// An Experiment created for a Rollout of a controller instance (`--instance-id`) carries the
/// instance label, and so do the AnalysisRuns the Experiment creates, so the same instance
/// reconciles all of them.
#[test]
fn the_instance_label_is_inherited_by_experiments_and_their_runs() {
    let mut rollout = step_rollout();
    rollout.metadata.labels = Some([(labels::INSTANCE_ID.to_string(), "blue".to_string())].into());
    let request = step_request(json!({
        "templates": [{"name": "canary", "specRef": "canary"}],
    }));
    let created =
        sluice_core::experiment::experiment_for_step(&request, &rollout, None).expect("experiment");
    let instance = |labels: Option<&std::collections::BTreeMap<String, String>>| {
        labels
            .and_then(|labels| labels.get(labels::INSTANCE_ID))
            .cloned()
    };
    assert_eq!(
        instance(created.metadata.labels.as_ref()),
        Some("blue".into())
    );

    let case = Case {
        spec: json!({"analyses": one_analysis(false), "duration": "1m"}),
        replica_sets: both_available(),
        now: 10,
        ..Case::default()
    };
    let mut labelled = experiment(case.spec.clone(), case.status.clone());
    labelled.metadata.labels = Some([(labels::INSTANCE_ID.to_string(), "blue".to_string())].into());
    let templates = [template("check")];
    let plan = plan_experiment(&labelled, &observed_of(&case, &templates), at(case.now));
    let Some(ExperimentAction::CreateAnalysisRun(run)) = plan.actions.first() else {
        panic!("expected an AnalysisRun, got {:?}", plan.actions);
    };
    assert_eq!(instance(run.metadata.labels.as_ref()), Some("blue".into()));
}
