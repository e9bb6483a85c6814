//! The pure DestinationRule transformation of `update-hash`.

use std::collections::BTreeMap;

use serde_json::Map;
use sluice_plugin_sdk::WeightDestination;

use crate::config::DestinationRuleRef;
use crate::model::Subset;

/// The pod label that carries the pod-template hash.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";

/// The annotation naming the Rollout that manages a DestinationRule.
pub const MANAGED_BY_ANNOTATION: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";

fn pin(subset: &mut Subset, hash: &str) {
    let labels = subset.labels.get_or_insert_with(BTreeMap::new);
    if hash.is_empty() {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    } else {
        labels.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    }
}

/// The subsets after `update-hash`, as Argo computes them: the canary and stable subsets get
/// `rollouts-pod-template-hash` = their hash (removed when the hash is empty); experiment
/// subsets (named after their service) get theirs and are appended when missing; every other
/// subset is dropped.
pub fn pinned_subsets(
    subsets: &[Subset],
    rule: &DestinationRuleRef,
    canary_hash: &str,
    stable_hash: &str,
    additional: &[WeightDestination],
) -> Vec<Subset> {
    let mut missing: Vec<&WeightDestination> = additional.iter().collect();
    let mut pinned = Vec::new();
    for subset in subsets {
        let mut subset = subset.clone();
        if subset.name == rule.canary_subset_name {
            pin(&mut subset, canary_hash);
        } else if subset.name == rule.stable_subset_name {
            pin(&mut subset, stable_hash);
        } else if let Some(position) = missing.iter().position(|d| d.service_name == subset.name) {
            pin(&mut subset, &missing.remove(position).pod_template_hash);
        } else {
            continue;
        }
        pinned.push(subset);
    }
    for experiment in missing {
        pinned.push(Subset {
            name: experiment.service_name.clone(),
            labels: Some(BTreeMap::from([(
                POD_TEMPLATE_HASH_LABEL.to_owned(),
                experiment.pod_template_hash.clone(),
            )])),
            other: Map::new(),
        });
    }
    pinned
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule() -> DestinationRuleRef {
        DestinationRuleRef {
            name: "web".into(),
            canary_subset_name: "canary".into(),
            stable_subset_name: "stable".into(),
        }
    }

    fn subsets() -> Vec<Subset> {
        serde_json::from_value(json!([
            {"name": "stable", "labels": {"app": "web"}, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}},
            {"name": "canary", "labels": {"app": "web", "rollouts-pod-template-hash": "old"}},
            {"name": "leftover", "labels": {"app": "web"}}
        ]))
        .unwrap()
    }

    #[test]
    fn canary_and_stable_subsets_are_pinned_and_extras_dropped() {
        let pinned = pinned_subsets(&subsets(), &rule(), "c1", "s1", &[]);
        assert_eq!(
            serde_json::to_value(&pinned).unwrap(),
            json!([
                {"name": "stable", "labels": {"app": "web", "rollouts-pod-template-hash": "s1"}, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}},
                {"name": "canary", "labels": {"app": "web", "rollouts-pod-template-hash": "c1"}}
            ])
        );
    }

    #[test]
    fn experiment_subsets_are_added_and_empty_hashes_unpin() {
        let experiment = WeightDestination {
            service_name: "exp".into(),
            pod_template_hash: "e1".into(),
            weight: 10,
        };
        let pinned = pinned_subsets(&subsets(), &rule(), "", "s1", &[experiment]);
        assert_eq!(
            serde_json::to_value(&pinned).unwrap(),
            json!([
                {"name": "stable", "labels": {"app": "web", "rollouts-pod-template-hash": "s1"}, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}},
                {"name": "canary", "labels": {"app": "web"}},
                {"name": "exp", "labels": {"rollouts-pod-template-hash": "e1"}}
            ])
        );
    }
}
