//! `get rollout`: the header and the tree revision → ReplicaSets → Pods, Experiments and
//! AnalysisRuns, rendered by a pure function from the objects, in the layout of Argo's
//! `kubectl argo rollouts get rollout`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use sluice_api::analysis::{AnalysisPhase, AnalysisRun};
use sluice_api::experiment::Experiment;
use sluice_api::labels;
use sluice_api::rollout::{Rollout, RolloutPhase};

use crate::rollout_info::{
    ReplicaSetRoles, current_step_index, replica_set_roles, rollout_phase, set_weight, step_text,
};
use crate::text::{Color, Style, align_columns, human_duration};

/// Tree icons (Argo's).
mod icons {
    pub const ROLLOUT: &str = "⟳";
    pub const REVISION: &str = "#";
    pub const REPLICA_SET: &str = "⧉";
    pub const POD: &str = "□";
    pub const JOB: &str = "⊞";
    pub const EXPERIMENT: &str = "Σ";
    pub const ANALYSIS_RUN: &str = "α";
    pub const METRIC: &str = "⊙";
    pub const WAITING: &str = "◷";
    pub const PROGRESSING: &str = "◌";
    pub const WARNING: &str = "⚠";
    pub const UNKNOWN: &str = "?";
    pub const OK: &str = "✔";
    pub const BAD: &str = "✖";
    pub const PAUSED: &str = "॥";
    pub const NEUTRAL: &str = "•";
}

/// Annotation on an experiment's ReplicaSets: the experiment template it runs.
const EXPERIMENT_TEMPLATE: &str = "experiment-template";
/// Measurement metadata naming the Job a Job-provider measurement ran.
const JOB_NAME: &str = "job-name";

/// Everything `get rollout` shows: the Rollout and the objects of its namespace (those it does not
/// own are ignored).
#[derive(Clone, Debug, Default)]
pub struct RolloutObjects {
    /// The rollout.
    pub rollout: Rollout,
    /// ReplicaSets (the rollout's and its experiments').
    pub replica_sets: Vec<ReplicaSet>,
    /// Pods of those ReplicaSets.
    pub pods: Vec<Pod>,
    /// AnalysisRuns (the rollout's and its experiments').
    pub analysis_runs: Vec<AnalysisRun>,
    /// Experiments of the rollout.
    pub experiments: Vec<Experiment>,
}

fn icon_color(icon: &str) -> Option<Color> {
    match icon {
        icons::WAITING | icons::UNKNOWN => Some(Color::Yellow),
        icons::PROGRESSING => Some(Color::BrightBlue),
        icons::WARNING | icons::BAD => Some(Color::Red),
        icons::OK => Some(Color::Green),
        _ => None,
    }
}

fn tag_color(tag: &str) -> Option<Color> {
    match tag {
        "canary" => Some(Color::Yellow),
        "stable" | "active" => Some(Color::Green),
        "preview" | "ping" | "pong" => Some(Color::BrightBlue),
        _ => None,
    }
}

fn analysis_name_color(phase: Option<AnalysisPhase>) -> Option<Color> {
    matches!(phase, Some(AnalysisPhase::Pending | AnalysisPhase::Running))
        .then_some(Color::BrightBlue)
}

/// The icon of a rollout phase.
pub fn rollout_icon(phase: RolloutPhase) -> &'static str {
    match phase {
        RolloutPhase::Progressing => icons::PROGRESSING,
        RolloutPhase::Paused => icons::PAUSED,
        RolloutPhase::Healthy => icons::OK,
        RolloutPhase::Degraded => icons::BAD,
    }
}

fn analysis_icon(phase: Option<AnalysisPhase>) -> &'static str {
    match phase {
        Some(AnalysisPhase::Successful) => icons::OK,
        Some(AnalysisPhase::Inconclusive) => icons::UNKNOWN,
        Some(AnalysisPhase::Failed) => icons::BAD,
        Some(AnalysisPhase::Error) => icons::WARNING,
        Some(AnalysisPhase::Running) => icons::PROGRESSING,
        Some(AnalysisPhase::Pending) => icons::WAITING,
        None => " ",
    }
}

fn replica_set_icon(status: &str) -> &'static str {
    match status {
        "Progressing" => icons::PROGRESSING,
        "Healthy" => icons::OK,
        "ReplicaFailure" => icons::BAD,
        "ScaledDown" => icons::NEUTRAL,
        _ => " ",
    }
}

fn pod_icon(status: &str) -> &'static str {
    if status.starts_with("Init:") {
        return icons::PROGRESSING;
    }
    if status.starts_with("Signal:") || status.starts_with("ExitCode:") {
        return icons::BAD;
    }
    if status.ends_with("Error") || status.starts_with("Err") {
        return icons::WARNING;
    }
    match status {
        "Pending" | "Terminating" | "ContainerCreating" => icons::PROGRESSING,
        "Running" | "Completed" => icons::OK,
        "Failed" | "InvalidImageName" | "CrashLoopBackOff" => icons::BAD,
        "ImagePullBackOff" | "RegistryUnavailable" => icons::WARNING,
        "Unknown" => icons::UNKNOWN,
        _ => " ",
    }
}

fn age(meta: &ObjectMeta, now: Timestamp) -> String {
    meta.creation_timestamp
        .as_ref()
        .map(|Time(created)| human_duration(now.duration_since(*created).as_secs()))
        .unwrap_or_default()
}

fn is_owned_by(meta: &ObjectMeta, owner_uid: Option<&str>) -> bool {
    let Some(owner_uid) = owner_uid else {
        return false;
    };
    meta.owner_references
        .iter()
        .flatten()
        .any(|owner| owner.uid == owner_uid)
}

fn revision_of(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|annotations| annotations.get(labels::REVISION))
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|annotations| annotations.get(key))
        .map(String::as_str)
}

fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// A ReplicaSet with what the tree shows about it.
struct ReplicaSetView<'a> {
    replica_set: &'a ReplicaSet,
    status: &'static str,
    roles: ReplicaSetRoles,
    revision: i64,
    pods: Vec<&'a Pod>,
}

impl ReplicaSetView<'_> {
    fn replicas(&self) -> i32 {
        self.replica_set
            .status
            .as_ref()
            .map_or(0, |status| status.replicas)
    }

    fn available(&self) -> i32 {
        self.replica_set
            .status
            .as_ref()
            .and_then(|status| status.available_replicas)
            .unwrap_or(0)
    }

    fn images(&self) -> Vec<String> {
        self.replica_set
            .spec
            .as_ref()
            .and_then(|spec| spec.template.as_ref())
            .and_then(|template| template.spec.as_ref())
            .map(|spec| {
                spec.containers
                    .iter()
                    .map(|container| container.image.clone().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Argo's `getReplicaSetHealth`.
fn replica_set_health(replica_set: &ReplicaSet) -> &'static str {
    let status = replica_set.status.clone().unwrap_or_default();
    let desired = replica_set.spec.as_ref().and_then(|spec| spec.replicas);
    let generation = replica_set.metadata.generation.unwrap_or(0);
    if generation > status.observed_generation.unwrap_or(0) {
        return "Progressing";
    }
    let failed = status
        .conditions
        .iter()
        .flatten()
        .any(|condition| condition.type_ == "ReplicaFailure" && condition.status == "True");
    if failed {
        return "ReplicaFailure";
    }
    if desired.is_some_and(|desired| status.available_replicas.unwrap_or(0) < desired) {
        return "Progressing";
    }
    if desired == Some(0) {
        return "ScaledDown";
    }
    "Healthy"
}

/// A Pod's status as kubectl shows it (Argo's `newPodInfo`): the phase or reason, overridden by
/// init and container states; plus `ready/total` and restarts.
fn pod_status(pod: &Pod) -> (String, String, i32) {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .filter(|reason| !reason.is_empty())
        .or_else(|| status.phase.clone())
        .unwrap_or_default();
    let mut restarts = 0;
    let mut ready = 0;
    let mut initializing = false;
    let init_total = spec.init_containers.as_ref().map_or(0, Vec::len);
    for (index, container) in status.init_container_statuses.iter().flatten().enumerate() {
        restarts += container.restart_count;
        let state = container.state.clone().unwrap_or_default();
        if let Some(terminated) = &state.terminated {
            if terminated.exit_code == 0 {
                continue;
            }
            reason = match terminated.reason.as_deref() {
                Some(text) if !text.is_empty() => format!("Init:{text}"),
                _ if terminated.signal.unwrap_or(0) != 0 => {
                    format!("Init:Signal:{}", terminated.signal.unwrap_or(0))
                }
                _ => format!("Init:ExitCode:{}", terminated.exit_code),
            };
        } else if let Some(waiting) = state
            .waiting
            .as_ref()
            .and_then(|waiting| waiting.reason.as_deref())
            .filter(|text| !text.is_empty() && *text != "PodInitializing")
        {
            reason = format!("Init:{waiting}");
        } else {
            reason = format!("Init:{index}/{init_total}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        restarts = 0;
        let mut has_running = false;
        for container in status.container_statuses.iter().flatten().rev() {
            restarts += container.restart_count;
            let state = container.state.clone().unwrap_or_default();
            let waiting = state
                .waiting
                .as_ref()
                .and_then(|waiting| waiting.reason.clone())
                .filter(|text| !text.is_empty());
            if let Some(waiting) = waiting {
                reason = waiting;
            } else if let Some(terminated) = &state.terminated {
                reason = match terminated.reason.as_deref() {
                    Some(text) if !text.is_empty() => text.to_owned(),
                    _ if terminated.signal.unwrap_or(0) != 0 => {
                        format!("Signal:{}", terminated.signal.unwrap_or(0))
                    }
                    _ => format!("ExitCode:{}", terminated.exit_code),
                };
            } else if container.ready && state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".to_owned();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.reason.as_deref() == Some("NodeLost") {
            "Unknown".to_owned()
        } else {
            "Terminating".to_owned()
        };
    }
    (
        reason,
        format!("{ready}/{}", spec.containers.len()),
        restarts,
    )
}

fn replica_set_views<'a>(
    owner_uid: Option<&str>,
    rollout: Option<&Rollout>,
    objects: &'a RolloutObjects,
) -> Vec<ReplicaSetView<'a>> {
    let mut views: Vec<ReplicaSetView<'a>> = objects
        .replica_sets
        .iter()
        .filter(|rs| is_owned_by(&rs.metadata, owner_uid))
        .map(|rs| {
            let mut pods: Vec<&Pod> = objects
                .pods
                .iter()
                .filter(|pod| is_owned_by(&pod.metadata, rs.metadata.uid.as_deref()))
                .collect();
            pods.sort_by(|a, b| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
                    .then_with(|| a.metadata.name.cmp(&b.metadata.name))
            });
            ReplicaSetView {
                replica_set: rs,
                status: replica_set_health(rs),
                roles: rollout
                    .map(|ro| replica_set_roles(ro, rs))
                    .unwrap_or_default(),
                revision: revision_of(&rs.metadata),
                pods,
            }
        })
        .collect();
    views.sort_by(|a, b| {
        b.revision.cmp(&a.revision).then_with(|| {
            a.replica_set
                .metadata
                .name
                .cmp(&b.replica_set.metadata.name)
        })
    });
    views
}

fn owned_analysis_runs<'a>(
    owner_uid: Option<&str>,
    objects: &'a RolloutObjects,
) -> Vec<&'a AnalysisRun> {
    let mut runs: Vec<&AnalysisRun> = objects
        .analysis_runs
        .iter()
        .filter(|run| is_owned_by(&run.metadata, owner_uid))
        .collect();
    runs.sort_by(|a, b| {
        revision_of(&b.metadata)
            .cmp(&revision_of(&a.metadata))
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
            .then_with(|| b.metadata.name.cmp(&a.metadata.name))
    });
    runs
}

/// Images with their tags, sorted by image, as Argo's `Images`.
fn images(
    rollout_sets: &[ReplicaSetView<'_>],
    experiment_sets: &[ReplicaSetView<'_>],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut images: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for view in rollout_sets.iter().filter(|view| view.replicas() > 0) {
        for image in view.images() {
            let tags = images.entry(image).or_default();
            tags.extend(view.roles.tags().into_iter().map(str::to_owned));
        }
    }
    for view in experiment_sets.iter().filter(|view| view.replicas() > 0) {
        let template = annotation(&view.replica_set.metadata, EXPERIMENT_TEMPLATE);
        for image in view.images() {
            let tags = images.entry(image).or_default();
            if let Some(template) = template.filter(|name| !name.is_empty()) {
                tags.insert(format!("Σ:{template}"));
            }
        }
    }
    images
}

/// The `ActualWeight` line (Argo's `NewRolloutInfo`).
fn actual_weight(rollout: &Rollout, sets: &[ReplicaSetView<'_>], set_weight: i32) -> String {
    let Some(canary) = rollout.canary() else {
        return String::new();
    };
    let status = rollout.status.clone().unwrap_or_default();
    let has_current_step =
        current_step_index(rollout).is_some_and(|index| (index as usize) < canary.steps.len());
    if !has_current_step {
        return "100".to_owned();
    }
    if status.available_replicas <= 0 {
        return "0".to_owned();
    }
    if canary.traffic_routing.is_none() {
        return sets
            .iter()
            .rev()
            .find(|view| view.roles.canary)
            .map_or_else(
                || "0".to_owned(),
                |view| (view.available() * 100 / status.available_replicas).to_string(),
            );
    }
    match &status.canary.weights {
        Some(weights) => weights.canary.weight.to_string(),
        None => set_weight.to_string(),
    }
}

struct TreeWriter<'a> {
    style: Style,
    now: Timestamp,
    objects: &'a RolloutObjects,
    rows: Vec<Vec<String>>,
}

impl<'a> TreeWriter<'a> {
    /// A tree with only the column titles NAME, KIND, STATUS, AGE and INFO.
    fn new(style: Style, now: Timestamp, objects: &'a RolloutObjects) -> Self {
        Self {
            style,
            now,
            objects,
            rows: vec![
                ["NAME", "KIND", "STATUS", "AGE", "INFO"]
                    .map(str::to_owned)
                    .to_vec(),
            ],
        }
    }
}

fn prefixes(is_last: bool, parent: &str) -> (String, String) {
    if is_last {
        (format!("{parent}└──"), format!("{parent}   "))
    } else {
        (format!("{parent}├──"), format!("{parent}│  "))
    }
}

impl TreeWriter<'_> {
    fn row(
        &mut self,
        name: String,
        kind: &str,
        icon: &str,
        status: &str,
        age: String,
        info: String,
    ) {
        let icon = self.style.paint(icon, icon_color(icon));
        self.rows.push(vec![
            name,
            kind.to_owned(),
            format!("{icon} {status}"),
            age,
            info,
        ]);
    }

    fn replica_set(&mut self, view: &ReplicaSetView<'_>, prefix: &str, child_prefix: &str) {
        let meta = &view.replica_set.metadata;
        let mut name = name_of(meta).to_owned();
        let mut info = Vec::new();
        for tag in view.roles.tags() {
            info.push(self.style.paint(tag, tag_color(tag)));
            name = self.style.paint(name_of(meta), tag_color(tag));
        }
        if let Some(Ok(deadline)) =
            annotation(meta, labels::SCALE_DOWN_DEADLINE).map(str::parse::<Timestamp>)
        {
            let delay = if deadline < self.now {
                "passed".to_owned()
            } else {
                human_duration(deadline.duration_since(self.now).as_secs())
            };
            info.push(format!("delay:{delay}"));
        }
        self.row(
            format!("{prefix}{} {name}", icons::REPLICA_SET),
            "ReplicaSet",
            replica_set_icon(view.status),
            view.status,
            age(meta, self.now),
            info.join(","),
        );
        for (index, pod) in view.pods.iter().enumerate() {
            let (pod_prefix, _) = prefixes(index + 1 == view.pods.len(), child_prefix);
            let (status, ready, restarts) = pod_status(pod);
            let mut info = format!("ready:{ready}");
            if restarts > 0 {
                info.push_str(&format!(",restarts:{restarts}"));
            }
            self.row(
                format!("{pod_prefix}{} {}", icons::POD, name_of(&pod.metadata)),
                "Pod",
                pod_icon(&status),
                &status,
                age(&pod.metadata, self.now),
                info,
            );
        }
    }

    fn analysis_run(&mut self, run: &AnalysisRun, prefix: &str, child_prefix: &str) {
        let status = run.status.clone().unwrap_or_default();
        let style = self.style;
        let counts = |successful: i32, failed: i32, inconclusive: i32, error: i32| {
            [
                (icons::OK, successful),
                (icons::BAD, failed),
                (icons::UNKNOWN, inconclusive),
                (icons::WARNING, error),
            ]
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|(icon, count)| format!("{} {count}", style.paint(icon, icon_color(icon))))
            .collect::<Vec<_>>()
        };
        let totals = status.metric_results.iter().fold((0, 0, 0, 0), |acc, m| {
            (
                acc.0 + m.successful,
                acc.1 + m.failed,
                acc.2 + m.inconclusive,
                acc.3 + m.error,
            )
        });
        let name = self
            .style
            .paint(name_of(&run.metadata), analysis_name_color(status.phase));
        self.row(
            format!("{prefix}{} {name}", icons::ANALYSIS_RUN),
            "AnalysisRun",
            analysis_icon(status.phase),
            status.phase.map_or("", AnalysisPhase::as_str),
            age(&run.metadata, self.now),
            counts(totals.0, totals.1, totals.2, totals.3).join(","),
        );
        for (index, metric) in status.metric_results.iter().enumerate() {
            let (metric_prefix, metric_child_prefix) =
                prefixes(index + 1 == status.metric_results.len(), child_prefix);
            let mut info = Vec::new();
            if let Some(value) = metric
                .measurements
                .iter()
                .rev()
                .find_map(|measurement| measurement.value.as_deref())
            {
                info.push(format!("last:{value}"));
            }
            info.extend(counts(
                metric.successful,
                metric.failed,
                metric.inconclusive,
                metric.error,
            ));
            self.row(
                format!("{metric_prefix}{} {}", icons::METRIC, metric.name),
                "Metric",
                analysis_icon(metric.phase),
                metric.phase.map_or("", AnalysisPhase::as_str),
                String::new(),
                info.join(","),
            );
            let jobs: Vec<_> = metric
                .measurements
                .iter()
                .filter_map(|m| m.metadata.get(JOB_NAME).map(|job| (job, m)))
                .collect();
            for (job_index, (job, measurement)) in jobs.iter().enumerate() {
                let (job_prefix, _) = prefixes(job_index + 1 == jobs.len(), &metric_child_prefix);
                let job_age = measurement
                    .started_at
                    .as_ref()
                    .map(|Time(started)| {
                        human_duration(self.now.duration_since(*started).as_secs())
                    })
                    .unwrap_or_default();
                let job_name = self
                    .style
                    .paint(job, analysis_name_color(measurement.phase));
                self.row(
                    format!("{job_prefix}{} {job_name}", icons::JOB),
                    "Job",
                    analysis_icon(measurement.phase),
                    measurement.phase.map_or("", AnalysisPhase::as_str),
                    job_age,
                    String::new(),
                );
            }
        }
    }

    fn experiment(&mut self, experiment: &Experiment, prefix: &str, child_prefix: &str) {
        let status = experiment.status.clone().unwrap_or_default();
        let uid = experiment.metadata.uid.as_deref();
        let sets = replica_set_views(uid, None, self.objects);
        let runs = owned_analysis_runs(uid, self.objects);
        let name = self.style.paint(
            name_of(&experiment.metadata),
            analysis_name_color(status.phase),
        );
        self.row(
            format!("{prefix}{} {name}", icons::EXPERIMENT),
            "Experiment",
            analysis_icon(status.phase),
            status.phase.map_or("", AnalysisPhase::as_str),
            age(&experiment.metadata, self.now),
            String::new(),
        );
        let total = sets.len() + runs.len();
        for (index, view) in sets.iter().enumerate() {
            let (p, c) = prefixes(index + 1 == total, child_prefix);
            self.replica_set(view, &p, &c);
        }
        for (index, run) in runs.iter().enumerate() {
            let (p, c) = prefixes(sets.len() + index + 1 == total, child_prefix);
            self.analysis_run(run, &p, &c);
        }
    }
}

/// Renders `get rollout`: the header (name, namespace, status, strategy, step and weights,
/// images, replica counts), a blank line, then the tree with columns NAME, KIND, STATUS, AGE and
/// INFO. Ages are computed against `now`; `style` decides whether ANSI colours are used.
pub fn render_rollout(objects: &RolloutObjects, now: Timestamp, style: Style) -> String {
    let rollout = &objects.rollout;
    let status = rollout.status.clone().unwrap_or_default();
    let uid = rollout.metadata.uid.as_deref();
    let rollout_sets = replica_set_views(uid, Some(rollout), objects);
    let runs = owned_analysis_runs(uid, objects);
    let mut experiments: Vec<&Experiment> = objects
        .experiments
        .iter()
        .filter(|experiment| is_owned_by(&experiment.metadata, uid))
        .collect();
    experiments.sort_by(|a, b| {
        revision_of(&b.metadata)
            .cmp(&revision_of(&a.metadata))
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let experiment_sets: Vec<ReplicaSetView<'_>> = experiments
        .iter()
        .flat_map(|experiment| replica_set_views(experiment.metadata.uid.as_deref(), None, objects))
        .collect();

    let (phase, message) = rollout_phase(rollout);
    let icon = rollout_icon(phase);
    let painted_icon = style.paint(icon, icon_color(icon));
    let mut header = Header::of(&rollout.metadata);
    header.line("Status:", &format!("{painted_icon} {}", phase.as_str()));
    if !message.is_empty() {
        header.line("Message:", &message);
    }
    if rollout.canary().is_some() {
        let weight = set_weight(rollout);
        header.line("Strategy:", "Canary");
        header.line("  Step:", &step_text(rollout).unwrap_or_default());
        header.line("  SetWeight:", &weight.to_string());
        header.line(
            "  ActualWeight:",
            &actual_weight(rollout, &rollout_sets, weight),
        );
    } else if rollout.blue_green().is_some() {
        header.line("Strategy:", "BlueGreen");
    } else {
        header.line("Strategy:", "");
    }
    for (index, (image, tags)) in images(&rollout_sets, &experiment_sets).iter().enumerate() {
        let label = if index == 0 { "Images:" } else { "" };
        let text = if tags.is_empty() {
            image.clone()
        } else {
            let tags: Vec<String> = tags
                .iter()
                .map(|tag| style.paint(tag, tag_color(tag)))
                .collect();
            format!("{image} ({})", tags.join(", "))
        };
        header.line(label, &text);
    }
    header.line("Replicas:", "");
    header.line("  Desired:", &rollout.replicas().to_string());
    header.line("  Current:", &status.replicas.to_string());
    header.line("  Updated:", &status.updated_replicas.to_string());
    header.line("  Ready:", &status.ready_replicas.to_string());
    header.line("  Available:", &status.available_replicas.to_string());

    let mut tree = TreeWriter::new(style, now, objects);
    tree.row(
        format!("{} {}", icons::ROLLOUT, name_of(&rollout.metadata)),
        "Rollout",
        icon,
        phase.as_str(),
        age(&rollout.metadata, now),
        String::new(),
    );
    let revisions: BTreeSet<i64> = rollout_sets
        .iter()
        .map(|view| view.revision)
        .chain(experiments.iter().map(|e| revision_of(&e.metadata)))
        .chain(runs.iter().map(|run| revision_of(&run.metadata)))
        .collect();
    for (index, revision) in revisions.iter().rev().enumerate() {
        let (prefix, child_prefix) = prefixes(index + 1 == revisions.len(), "");
        let mut revision_row = vec![String::new(); 5];
        revision_row[0] = format!("{prefix}{} revision:{revision}", icons::REVISION);
        tree.rows.push(revision_row);
        let sets: Vec<_> = rollout_sets
            .iter()
            .filter(|view| view.revision == *revision)
            .collect();
        let revision_experiments: Vec<_> = experiments
            .iter()
            .filter(|e| revision_of(&e.metadata) == *revision)
            .collect();
        let revision_runs: Vec<_> = runs
            .iter()
            .filter(|run| revision_of(&run.metadata) == *revision)
            .collect();
        let total = sets.len() + revision_experiments.len() + revision_runs.len();
        let mut current = 0;
        for view in sets {
            current += 1;
            let (p, c) = prefixes(current == total, &child_prefix);
            tree.replica_set(view, &p, &c);
        }
        for experiment in revision_experiments {
            current += 1;
            let (p, c) = prefixes(current == total, &child_prefix);
            tree.experiment(experiment, &p, &c);
        }
        for run in revision_runs {
            current += 1;
            let (p, c) = prefixes(current == total, &child_prefix);
            tree.analysis_run(run, &p, &c);
        }
    }
    header.with_tree(&tree)
}

/// Renders `get experiment`: the header (name, namespace, status, message), a blank line, then
/// the tree Experiment → ReplicaSets → Pods and AnalysisRuns, with the columns of
/// [`render_rollout`]. `objects.rollout` is not read.
pub fn render_experiment(
    experiment: &Experiment,
    objects: &RolloutObjects,
    now: Timestamp,
    style: Style,
) -> String {
    let status = experiment.status.clone().unwrap_or_default();
    let phase = status.phase.map_or("", AnalysisPhase::as_str);
    let icon = analysis_icon(status.phase);
    let mut header = Header::of(&experiment.metadata);
    header.line(
        "Status:",
        &format!("{} {phase}", style.paint(icon, icon_color(icon))),
    );
    if let Some(message) = status
        .message
        .as_deref()
        .filter(|message| !message.is_empty())
    {
        header.line("Message:", message);
    }
    let mut tree = TreeWriter::new(style, now, objects);
    tree.experiment(experiment, "", "");
    header.with_tree(&tree)
}

/// The header of `get rollout` and `get experiment`: `Label:` padded to 17 columns, then the
/// value, starting with the object's name and namespace.
struct Header(String);

impl Header {
    fn of(meta: &ObjectMeta) -> Self {
        let mut header = Self(String::new());
        header.line("Name:", name_of(meta));
        header.line("Namespace:", meta.namespace.as_deref().unwrap_or(""));
        header
    }

    fn line(&mut self, label: &str, value: &str) {
        self.0.push_str(format!("{label:<17}{value}").trim_end());
        self.0.push('\n');
    }

    /// The header, a blank line, then the tree's aligned columns.
    fn with_tree(mut self, tree: &TreeWriter<'_>) -> String {
        self.0.push('\n');
        self.0.push_str(&align_columns(&tree.rows, 2));
        self.0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::{
        analysis_run, blue_green_rollout, canary_rollout, experiment, now, pod, replica_set,
    };

    /// A canary paused at its pause step: two revisions, pods, an experiment and analysis runs.
    fn paused_canary() -> RolloutObjects {
        let rollout = canary_rollout(
            json!({}),
            json!({
                "phase": "Paused", "message": "CanaryPauseStep", "observedGeneration": "3",
                "currentStepIndex": 1, "currentPodHash": "5b8c4d", "stableRS": "7d9f6c",
                "controllerPause": true,
                "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2025-03-01T11:58:00Z"}],
                "replicas": 5, "updatedReplicas": 1, "readyReplicas": 5, "availableReplicas": 5
            }),
        );
        let mut old = replica_set(
            "ro-uid",
            "guestbook-7d9f6c",
            "7d9f6c",
            1,
            "guestbook:blue",
            (4, 4),
            3 * 3600,
        );
        old.metadata.annotations.get_or_insert_default().insert(
            labels::SCALE_DOWN_DEADLINE.to_owned(),
            "2025-03-01T12:00:30Z".to_owned(),
        );
        RolloutObjects {
            rollout,
            replica_sets: vec![
                old,
                replica_set(
                    "ro-uid",
                    "guestbook-5b8c4d",
                    "5b8c4d",
                    2,
                    "guestbook:yellow",
                    (1, 1),
                    130,
                ),
                replica_set(
                    "exp-uid-not-used",
                    "unrelated-1",
                    "x",
                    2,
                    "other:1",
                    (1, 1),
                    10,
                ),
                replica_set(
                    "guestbook-exp-uid",
                    "guestbook-exp-baseline",
                    "e1",
                    0,
                    "guestbook:blue",
                    (1, 0),
                    100,
                ),
            ],
            pods: vec![
                pod("guestbook-7d9f6c", "a1b2c", None, 3 * 3600),
                pod("guestbook-7d9f6c", "d3e4f", None, 3 * 3600),
                pod("guestbook-7d9f6c", "g5h6i", None, 3 * 3600 - 30),
                pod("guestbook-7d9f6c", "j7k8l", None, 3 * 3600 - 60),
                pod("guestbook-5b8c4d", "m9n0p", None, 125),
                pod(
                    "guestbook-exp-baseline",
                    "q1r2s",
                    Some("CrashLoopBackOff"),
                    95,
                ),
            ],
            analysis_runs: vec![
                analysis_run(
                    "ro-uid",
                    "guestbook-5b8c4d-2-0",
                    2,
                    json!({
                        "phase": "Successful",
                        "metricResults": [{
                            "name": "success-rate", "phase": "Successful", "count": 3, "successful": 3,
                            "measurements": [
                                {"phase": "Successful", "value": "0.97"},
                                {"phase": "Successful", "value": "0.99"}
                            ]
                        }]
                    }),
                ),
                analysis_run(
                    "ro-uid",
                    "guestbook-7d9f6c-1-2",
                    1,
                    json!({
                        "phase": "Failed",
                        "metricResults": [
                            {"name": "success-rate", "phase": "Failed", "count": 2, "successful": 1, "failed": 1,
                             "measurements": [{"phase": "Failed", "value": "0.41"}]},
                            {"name": "smoke", "phase": "Error", "error": 1,
                             "measurements": [{"phase": "Error", "metadata": {"job-name": "smoke-job-1"}, "startedAt": "2025-03-01T11:59:00Z"}]}
                        ]
                    }),
                ),
            ],
            experiments: vec![experiment("ro-uid", "guestbook-exp", 2, "Running")],
        }
    }

    #[test]
    fn an_experiment_renders_its_replica_sets_pods_and_runs() {
        let objects = paused_canary();
        let mut experiment = experiment("ro-uid", "guestbook-exp", 2, "Failed");
        experiment.status.get_or_insert_default().message =
            Some("Template 'baseline' exceeded its progressDeadlineSeconds (600)".into());
        let rendered = render_experiment(&experiment, &objects, now(), Style::Plain);
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines[0], "Name:            guestbook-exp");
        assert_eq!(lines[1], "Namespace:       shop");
        assert!(lines[2].starts_with("Status:") && lines[2].ends_with(" Failed"));
        assert_eq!(
            lines[3],
            "Message:         Template 'baseline' exceeded its progressDeadlineSeconds (600)"
        );
        assert!(lines[6].starts_with("Σ guestbook-exp") && lines[6].contains("Experiment"));
        assert!(
            rendered.contains("└──⧉ guestbook-exp-baseline"),
            "the experiment's ReplicaSet: {rendered}"
        );
        assert!(rendered.contains("q1r2s"), "its pod: {rendered}");
        assert!(
            !rendered.contains("guestbook-5b8c4d"),
            "the rollout's objects are not shown: {rendered}"
        );
    }

    #[test]
    fn a_paused_canary_renders_like_argo() {
        let rendered = render_rollout(&paused_canary(), now(), Style::Plain);
        assert_eq!(
            rendered,
            r#"Name:            guestbook
Namespace:       shop
Status:          ॥ Paused
Message:         CanaryPauseStep
Strategy:        Canary
  Step:          1/4
  SetWeight:     20
  ActualWeight:  20
Images:          guestbook:blue (stable)
                 guestbook:yellow (canary)
Replicas:
  Desired:       5
  Current:       5
  Updated:       1
  Ready:         5
  Available:     5

NAME                                        KIND         STATUS              AGE    INFO
⟳ guestbook                                 Rollout      ॥ Paused            3h
├──# revision:2
│  ├──⧉ guestbook-5b8c4d                    ReplicaSet   ✔ Healthy           2m10s  canary
│  │  └──□ guestbook-5b8c4d-m9n0p           Pod          ✔ Running           2m5s   ready:1/1
│  ├──Σ guestbook-exp                       Experiment   ◌ Running           2m
│  │  └──⧉ guestbook-exp-baseline           ReplicaSet   ◌ Progressing       100s
│  │     └──□ guestbook-exp-baseline-q1r2s  Pod          ✖ CrashLoopBackOff  95s    ready:0/1,restarts:3
│  └──α guestbook-5b8c4d-2-0                AnalysisRun  ✔ Successful        5m     ✔ 3
│     └──⊙ success-rate                     Metric       ✔ Successful               last:0.99,✔ 3
└──# revision:1
   ├──⧉ guestbook-7d9f6c                    ReplicaSet   ✔ Healthy           3h     stable,delay:30s
   │  ├──□ guestbook-7d9f6c-a1b2c           Pod          ✔ Running           3h     ready:1/1
   │  ├──□ guestbook-7d9f6c-d3e4f           Pod          ✔ Running           3h     ready:1/1
   │  ├──□ guestbook-7d9f6c-g5h6i           Pod          ✔ Running           179m   ready:1/1
   │  └──□ guestbook-7d9f6c-j7k8l           Pod          ✔ Running           179m   ready:1/1
   └──α guestbook-7d9f6c-1-2                AnalysisRun  ✖ Failed            5m     ✔ 1,✖ 1,⚠ 1
      ├──⊙ success-rate                     Metric       ✖ Failed                   last:0.41,✔ 1,✖ 1
      └──⊙ smoke                            Metric       ⚠ Error                    ⚠ 1
         └──⊞ smoke-job-1                   Job          ⚠ Error             60s
"#
        );
    }

    #[test]
    fn a_blue_green_preview_renders_like_argo() {
        let rollout = blue_green_rollout(json!({
            "phase": "Paused", "message": "BlueGreenPause", "currentPodHash": "new2", "stableRS": "old1",
            "blueGreen": {"activeSelector": "old1", "previewSelector": "new2"},
            "replicas": 4, "updatedReplicas": 2, "readyReplicas": 4, "availableReplicas": 4
        }));
        let objects = RolloutObjects {
            rollout,
            replica_sets: vec![
                replica_set(
                    "bg-uid",
                    "checkout-old1",
                    "old1",
                    1,
                    "checkout:1",
                    (2, 2),
                    86400,
                ),
                replica_set(
                    "bg-uid",
                    "checkout-new2",
                    "new2",
                    2,
                    "checkout:2",
                    (2, 2),
                    600,
                ),
            ],
            ..RolloutObjects::default()
        };
        let rendered = render_rollout(&objects, now(), Style::Plain);
        assert_eq!(
            rendered,
            r#"Name:            checkout
Namespace:       shop
Status:          ॥ Paused
Message:         BlueGreenPause
Strategy:        BlueGreen
Images:          checkout:1 (active, stable)
                 checkout:2 (preview)
Replicas:
  Desired:       2
  Current:       4
  Updated:       2
  Ready:         4
  Available:     4

NAME                   KIND        STATUS     AGE  INFO
⟳ checkout             Rollout     ॥ Paused   24h
├──# revision:2
│  └──⧉ checkout-new2  ReplicaSet  ✔ Healthy  10m  preview
└──# revision:1
   └──⧉ checkout-old1  ReplicaSet  ✔ Healthy  24h  stable,active
"#
        );
    }

    #[test]
    fn colours_are_added_only_in_colored_style() {
        let plain = render_rollout(&paused_canary(), now(), Style::Plain);
        let colored = render_rollout(&paused_canary(), now(), Style::Colored);
        assert!(!plain.contains('\x1b'));
        assert!(colored.contains("\x1b[33mcanary\x1b[0m"));
        assert!(colored.contains("\x1b[32m✔\x1b[0m Healthy"));
        let strip = |text: &str| {
            let mut out = String::new();
            let mut in_escape = false;
            for c in text.chars() {
                match (in_escape, c) {
                    (false, '\x1b') => in_escape = true,
                    (true, c) if c.is_ascii_alphabetic() => in_escape = false,
                    (true, _) => {}
                    (false, c) => out.push(c),
                }
            }
            out
        };
        assert_eq!(strip(&colored), plain);
    }
}
