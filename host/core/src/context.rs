//! The working state of one planning pass, shared by the canary and blue-green planners: the
//! ReplicaSets as they will be after the actions planned so far, effective Service selectors,
//! pause/abort decisions and the action list.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sluice_api::labels;
use sluice_api::rollout::{PauseCondition, PauseReason, Rollout, RolloutStatus};

use crate::hash::pod_template_hash;
use crate::observed::{Observed, ObservedReplicaSet};
use crate::plan::{Action, NewReplicaSet};

/// `t + seconds`, saturating at the end of time.
pub(crate) fn add_seconds(time: Timestamp, seconds: i64) -> Timestamp {
    time.checked_add(SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MAX)
}

/// The time left until `deadline` (zero when it passed).
pub(crate) fn until(now: Timestamp, deadline: Timestamp) -> Duration {
    let remaining = now.duration_until(deadline);
    Duration::try_from(remaining).unwrap_or(Duration::ZERO)
}

/// One ReplicaSet as it will be once the actions planned so far are executed.
#[derive(Clone, Debug)]
pub(crate) struct ReplicaSetState {
    pub name: String,
    pub hash: String,
    pub revision: i64,
    /// `spec.replicas` after the planned actions.
    pub spec: i32,
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub deadline: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl ReplicaSetState {
    fn from_observed(rs: &ObservedReplicaSet) -> Self {
        Self {
            name: rs.name.clone(),
            hash: rs.pod_template_hash.clone(),
            revision: rs.revision,
            spec: rs.spec_replicas,
            replicas: rs.replicas,
            ready: rs.ready_replicas,
            available: rs.available_replicas,
            deadline: rs.scale_down_deadline,
            created_at: rs.created_at,
        }
    }

    /// Argo's `IsReplicaSetAvailable`: every desired pod is available.
    pub fn fully_available(&self) -> bool {
        self.available >= self.spec
    }
}

/// Pause and abort decisions taken during a pass (Argo's pause context).
#[derive(Clone, Debug, Default)]
pub(crate) struct PauseDecisions {
    pub add: Vec<PauseReason>,
    pub remove: Vec<PauseReason>,
    pub clear: bool,
    pub add_abort: bool,
    pub abort_message: Option<String>,
    pub remove_abort: bool,
}

impl PauseDecisions {
    pub fn is_aborted(&self, previous: &RolloutStatus) -> bool {
        !self.remove_abort && (self.add_abort || previous.abort)
    }

    pub fn abort(&mut self, message: Option<String>) {
        self.add_abort = true;
        self.abort_message = message;
    }

    /// Writes `abort`, `abortedAt`, `pauseConditions` and `controllerPause`.
    pub fn apply(&self, previous: &RolloutStatus, status: &mut RolloutStatus, now: Timestamp) {
        let aborted_at = previous.aborted_at.clone().unwrap_or(Time(now));
        if self.add_abort || (!self.remove_abort && previous.abort) {
            status.abort = true;
            status.aborted_at = Some(aborted_at);
            status.pause_conditions.clear();
            status.controller_pause = false;
            return;
        }
        status.abort = false;
        status.aborted_at = None;
        status.pause_conditions.clear();
        status.controller_pause = false;
        if self.clear {
            return;
        }
        let mut controller_pause = previous.controller_pause;
        let mut conditions: Vec<PauseCondition> = previous
            .pause_conditions
            .iter()
            .filter(|condition| !self.remove.contains(&condition.reason))
            .cloned()
            .collect();
        for reason in &self.add {
            let exists = previous
                .pause_conditions
                .iter()
                .any(|condition| condition.reason == *reason);
            if !exists
                && !conditions
                    .iter()
                    .any(|condition| condition.reason == *reason)
            {
                conditions.push(PauseCondition {
                    reason: *reason,
                    start_time: Time(now),
                });
                controller_pause = true;
            }
        }
        if conditions.is_empty() {
            return;
        }
        status.controller_pause = controller_pause;
        status.pause_conditions = conditions;
    }
}

/// The working state of a planning pass.
pub(crate) struct Context<'a> {
    pub observed: &'a Observed,
    pub rollout: &'a Rollout,
    pub previous: &'a RolloutStatus,
    pub now: Timestamp,
    pub replicas: i32,
    pub replica_sets: Vec<ReplicaSetState>,
    pub new_index: Option<usize>,
    pub stable_index: Option<usize>,
    pub collision_count: Option<i32>,
    pub actions: Vec<Action>,
    pub requeue: Option<Duration>,
    pub pause: PauseDecisions,
    pub selectors: BTreeMap<String, Option<String>>,
}

fn without_hash_label(metadata: &Option<ObjectMeta>) -> Option<ObjectMeta> {
    let mut metadata = metadata.clone()?;
    if let Some(labels) = metadata.labels.as_mut() {
        labels.remove(labels::POD_TEMPLATE_HASH);
        if labels.is_empty() {
            metadata.labels = None;
        }
    }
    if metadata == ObjectMeta::default() {
        None
    } else {
        Some(metadata)
    }
}

/// Whether a ReplicaSet's template is the Rollout's, ignoring the hash label.
fn template_matches(rs: &PodTemplateSpec, desired: &PodTemplateSpec) -> bool {
    rs.spec == desired.spec
        && without_hash_label(&rs.metadata) == without_hash_label(&desired.metadata)
}

impl<'a> Context<'a> {
    pub fn new(observed: &'a Observed, previous: &'a RolloutStatus, now: Timestamp) -> Self {
        let rollout = &observed.rollout;
        let mut replica_sets: Vec<ReplicaSetState> = observed
            .replica_sets
            .iter()
            .map(ReplicaSetState::from_observed)
            .collect();
        replica_sets.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
        let new_index = rollout.spec.template.as_ref().and_then(|desired| {
            replica_sets.iter().position(|state| {
                observed
                    .replica_sets
                    .iter()
                    .find(|rs| rs.name == state.name)
                    .is_some_and(|rs| template_matches(&rs.template, desired))
            })
        });
        let stable_index = previous
            .stable_rs
            .as_ref()
            .and_then(|stable| replica_sets.iter().position(|state| &state.hash == stable));
        let selectors = observed
            .services
            .iter()
            .map(|service| {
                (
                    service.name.clone(),
                    service.selected_pod_template_hash.clone(),
                )
            })
            .collect();
        Self {
            observed,
            rollout,
            previous,
            now,
            replicas: rollout.replicas(),
            replica_sets,
            new_index,
            stable_index,
            collision_count: previous.collision_count,
            actions: Vec::new(),
            requeue: None,
            pause: PauseDecisions::default(),
            selectors,
        }
    }

    pub fn rollout_name(&self) -> &str {
        self.rollout.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn new_rs(&self) -> Option<&ReplicaSetState> {
        self.new_index.map(|index| &self.replica_sets[index])
    }

    pub fn stable_rs(&self) -> Option<&ReplicaSetState> {
        self.stable_index.map(|index| &self.replica_sets[index])
    }

    /// The stable ReplicaSet when it exists and is not the new one (`CheckStableRSExists`).
    pub fn distinct_stable_index(&self) -> Option<usize> {
        match (self.stable_index, self.new_index) {
            (Some(stable), Some(new)) if stable == new => None,
            (stable, _) => stable,
        }
    }

    /// Indices of the ReplicaSets that are neither new nor stable.
    pub fn other_indices(&self) -> Vec<usize> {
        (0..self.replica_sets.len())
            .filter(|index| Some(*index) != self.new_index && Some(*index) != self.stable_index)
            .collect()
    }

    pub fn aborted(&self) -> bool {
        self.pause.is_aborted(self.previous)
    }

    /// The hash of the desired revision: its ReplicaSet's, or computed from the template.
    pub fn desired_hash(&self) -> String {
        match self.new_rs() {
            Some(rs) => rs.hash.clone(),
            None => self.computed_hash(),
        }
    }

    fn computed_hash(&self) -> String {
        match &self.rollout.spec.template {
            Some(template) => pod_template_hash(template, self.collision_count),
            None => String::new(),
        }
    }

    pub fn requeue_after(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |current| current.min(after)));
    }

    /// Creates the ReplicaSet of the desired revision when it does not exist yet. On a hash
    /// collision with a foreign template, bumps `collisionCount` and retries on the next pass.
    pub fn create_new_rs_if_missing(&mut self, initial_replicas: impl FnOnce(&Self) -> i32) {
        if self.new_index.is_some() {
            return;
        }
        let Some(template) = self.rollout.spec.template.as_ref() else {
            return;
        };
        let hash = self.computed_hash();
        if self.replica_sets.iter().any(|rs| rs.hash == hash) {
            self.collision_count = Some(self.collision_count.unwrap_or(0) + 1);
            self.requeue_after(Duration::ZERO);
            return;
        }
        let revision = self
            .replica_sets
            .iter()
            .map(|rs| rs.revision)
            .max()
            .unwrap_or(0)
            + 1;
        let mut template = template.clone();
        template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(labels::POD_TEMPLATE_HASH.to_string(), hash.clone());
        let name = format!("{}-{}", self.rollout_name(), hash);
        self.replica_sets.push(ReplicaSetState {
            name: name.clone(),
            hash: hash.clone(),
            revision,
            spec: 0,
            replicas: 0,
            ready: 0,
            available: 0,
            deadline: None,
            created_at: self.now,
        });
        let index = self.replica_sets.len() - 1;
        self.new_index = Some(index);
        let replicas = initial_replicas(self);
        self.replica_sets[index].spec = replicas;
        self.actions
            .push(Action::CreateReplicaSet(Box::new(NewReplicaSet {
                name,
                pod_template_hash: hash,
                revision,
                replicas,
                template,
            })));
    }

    /// Gives the desired ReplicaSet the newest revision (undo moves an old revision to the front)
    /// and mirrors it on the Rollout's own revision annotation.
    pub fn sync_revision(&mut self) {
        let Some(new_index) = self.new_index else {
            return;
        };
        let max_old = self
            .replica_sets
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != new_index)
            .map(|(_, rs)| rs.revision)
            .max()
            .unwrap_or(0);
        let new_rs = &mut self.replica_sets[new_index];
        if new_rs.revision < max_old + 1 {
            new_rs.revision = max_old + 1;
            self.actions.push(Action::SetReplicaSetRevision {
                name: new_rs.name.clone(),
                revision: new_rs.revision,
            });
        }
        let revision = new_rs.revision;
        let annotated = self
            .rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(labels::REVISION))
            .and_then(|value| value.parse::<i64>().ok());
        if annotated != Some(revision) {
            self.actions.push(Action::SetRolloutRevision { revision });
        }
    }

    /// The revision of the desired ReplicaSet (0 before it exists).
    pub fn revision(&self) -> i64 {
        self.new_rs().map_or(0, |rs| rs.revision)
    }

    /// Scales a ReplicaSet; returns whether its size changed.
    pub fn scale(&mut self, index: usize, to: i32, keep_deadline: bool) -> bool {
        let rs = &mut self.replica_sets[index];
        if rs.spec == to {
            return false;
        }
        self.actions.push(Action::ScaleReplicaSet {
            name: rs.name.clone(),
            from: rs.spec,
            to,
        });
        rs.spec = to;
        if to == 0 && rs.deadline.is_some() && !keep_deadline {
            rs.deadline = None;
            self.actions.push(Action::RemoveScaleDownDeadline {
                name: rs.name.clone(),
            });
        }
        true
    }

    pub fn set_deadline(&mut self, index: usize, deadline: Timestamp) {
        let rs = &mut self.replica_sets[index];
        rs.deadline = Some(deadline);
        self.actions.push(Action::SetScaleDownDeadline {
            name: rs.name.clone(),
            deadline,
        });
    }

    pub fn remove_deadline(&mut self, index: usize) {
        let rs = &mut self.replica_sets[index];
        if rs.deadline.take().is_some() {
            self.actions.push(Action::RemoveScaleDownDeadline {
                name: rs.name.clone(),
            });
        }
    }

    /// The hash a Service selects after the actions planned so far.
    pub fn selector(&self, service: &str) -> Option<&str> {
        self.selectors.get(service).and_then(Option::as_deref)
    }

    /// Points a Service at a revision (when it exists and does not already).
    pub fn switch_service(&mut self, service: &str, hash: &str) {
        if service.is_empty() || !self.selectors.contains_key(service) {
            return;
        }
        if self.selector(service) == Some(hash) {
            return;
        }
        self.selectors
            .insert(service.to_string(), Some(hash.to_string()));
        self.actions.push(Action::SetServiceSelector {
            service: service.to_string(),
            pod_template_hash: hash.to_string(),
        });
    }

    /// Argo's `ensureSVCTargets`: switch only to a ReplicaSet with available pods (fully
    /// available when adopting a Service the Rollout does not manage yet).
    pub fn ensure_service_targets(
        &mut self,
        service: &str,
        index: Option<usize>,
        check_availability: bool,
    ) {
        let Some(index) = index else {
            return;
        };
        let rs = &self.replica_sets[index];
        if self.selector(service) == Some(rs.hash.as_str()) {
            return;
        }
        let managed = self
            .observed
            .service(service)
            .is_some_and(|observed| observed.managed_by_rollout);
        if check_availability && !managed && !rs.fully_available() {
            return;
        }
        if check_availability && rs.available == 0 {
            return;
        }
        let hash = rs.hash.clone();
        self.switch_service(service, &hash);
    }

    /// Whether a ReplicaSet is still referenced by the status or a Service (so it must not be
    /// scaled down).
    pub fn is_referenced(&self, index: usize, services: &[&str]) -> bool {
        let hash = self.replica_sets[index].hash.as_str();
        let previous = self.previous;
        let mut references = vec![
            previous.stable_rs.as_deref(),
            previous.current_pod_hash.as_deref(),
            previous.blue_green.active_selector.as_deref(),
            previous.blue_green.preview_selector.as_deref(),
        ];
        if let Some(weights) = &previous.canary.weights {
            references.push(weights.canary.pod_template_hash.as_deref());
            references.push(weights.stable.pod_template_hash.as_deref());
        }
        references
            .into_iter()
            .flatten()
            .any(|reference| reference == hash)
            || services
                .iter()
                .any(|service| self.selector(service) == Some(hash))
    }

    /// Argo's `scaleDownDelayHelper`: annotate a scaled-up old ReplicaSet with a scale-down
    /// deadline (within `scaleDownDelayRevisionLimit`), keep it until the deadline, then let it
    /// go. Returns the desired size.
    pub fn scale_down_delay(
        &mut self,
        index: usize,
        annotated: &mut i32,
        delay_seconds: i32,
        revision_limit: i32,
        keep_size: i32,
    ) -> i32 {
        let rs = &self.replica_sets[index];
        match rs.deadline {
            None if rs.spec > 0 && *annotated < revision_limit && delay_seconds > 0 => {
                *annotated += 1;
                let deadline = add_seconds(self.now, i64::from(delay_seconds));
                let keep = rs.spec;
                self.set_deadline(index, deadline);
                self.requeue_after(Duration::from_secs(delay_seconds.unsigned_abs().into()));
                keep
            }
            None => 0,
            Some(deadline) => {
                *annotated += 1;
                if *annotated > revision_limit || deadline <= self.now {
                    0
                } else {
                    let remaining = until(self.now, deadline);
                    self.requeue_after(remaining);
                    keep_size
                }
            }
        }
    }

    /// Total available pods over every ReplicaSet.
    pub fn total_available(&self) -> i32 {
        self.replica_sets.iter().map(|rs| rs.available).sum()
    }

    /// Writes the counters shared by both strategies into `status`.
    pub fn base_counters(&self, status: &mut RolloutStatus) {
        status.replicas = self.replica_sets.iter().map(|rs| rs.replicas).sum();
        status.updated_replicas = self.new_rs().map_or(0, |rs| rs.replicas);
        status.ready_replicas = self.replica_sets.iter().map(|rs| rs.ready).sum();
        status.available_replicas = self.total_available();
        status.collision_count = self.collision_count;
    }
}

/// `metav1.FormatLabelSelector` of the Rollout's selector (`status.selector`).
pub(crate) fn format_selector(rollout: &Rollout) -> String {
    let Some(selector) = rollout.spec.selector.as_ref() else {
        return String::new();
    };
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.clone().unwrap_or_default().join(",");
        parts.push(match expression.operator.as_str() {
            "In" => format!("{} in ({values})", expression.key),
            "NotIn" => format!("{} notin ({values})", expression.key),
            "Exists" => expression.key.clone(),
            _ => format!("!{}", expression.key),
        });
    }
    parts.join(",")
}
