//! The record of what the router manages on a route, kept in an annotation of the route itself
//! (every call runs on a fresh instance, so state lives in Kubernetes).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The annotation holding the [`ManagedRecord`] as JSON.
pub const MANAGED_ROUTES_ANNOTATION: &str = "rollouts.sluice.dev/managed-routes";

/// What one Rollout manages on one route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    /// Header routes: managed route name → names of the rules added for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header_routes: BTreeMap<String, Vec<String>>,
    /// Mirror routes: managed route name → names of the rules added for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mirror_routes: BTreeMap<String, Vec<String>>,
    /// Services added as backendRefs for additional destinations (experiments).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub additional_backends: BTreeSet<String>,
}

impl RolloutRecord {
    fn is_empty(&self) -> bool {
        self.header_routes.is_empty()
            && self.mirror_routes.is_empty()
            && self.additional_backends.is_empty()
    }
}

/// Rollout name → what it manages on the route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ManagedRecord {
    /// Per Rollout (several Rollouts may share a route).
    pub rollouts: BTreeMap<String, RolloutRecord>,
}

impl ManagedRecord {
    /// Parses the annotation value; absent means nothing is managed.
    pub fn parse(annotation: Option<&str>) -> Result<Self, serde_json::Error> {
        annotation.map_or_else(|| Ok(Self::default()), serde_json::from_str)
    }

    /// The annotation value, or `None` when nothing is managed any more.
    pub fn to_annotation(&self) -> Option<String> {
        let kept: BTreeMap<_, _> = self
            .rollouts
            .iter()
            .filter(|(_, record)| !record.is_empty())
            .collect();
        (!kept.is_empty()).then(|| serde_json::to_string(&kept).unwrap_or_default())
    }

    /// The record of `rollout`, created if missing.
    pub fn rollout_mut(&mut self, rollout: &str) -> &mut RolloutRecord {
        self.rollouts.entry(rollout.to_owned()).or_default()
    }

    /// The record of `rollout`, if any.
    pub fn rollout(&self, rollout: &str) -> Option<&RolloutRecord> {
        self.rollouts.get(rollout)
    }

    /// Names of every header rule of every Rollout (these keep their canary-only backend).
    pub fn header_rule_names(&self) -> BTreeSet<&str> {
        self.rollouts
            .values()
            .flat_map(|r| r.header_routes.values().flatten())
            .map(String::as_str)
            .collect()
    }

    /// Names of every header and mirror rule of every Rollout.
    pub fn managed_rule_names(&self) -> BTreeSet<&str> {
        self.rollouts
            .values()
            .flat_map(|r| {
                r.header_routes
                    .values()
                    .chain(r.mirror_routes.values())
                    .flatten()
            })
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_records_leave_no_annotation() {
        let mut record = ManagedRecord::parse(None).unwrap();
        record.rollout_mut("web");
        assert_eq!(record.to_annotation(), None);
        record
            .rollout_mut("web")
            .header_routes
            .insert("h".into(), vec!["h".into(), "h-1".into()]);
        record
            .rollout_mut("api")
            .mirror_routes
            .insert("m".into(), vec!["m".into()]);
        let text = record.to_annotation().unwrap();
        assert_eq!(
            text,
            r#"{"api":{"mirrorRoutes":{"m":["m"]}},"web":{"headerRoutes":{"h":["h","h-1"]}}}"#
        );
        let parsed = ManagedRecord::parse(Some(&text)).unwrap();
        assert_eq!(parsed.header_rule_names(), BTreeSet::from(["h", "h-1"]));
        assert_eq!(
            parsed.managed_rule_names(),
            BTreeSet::from(["h", "h-1", "m"])
        );
        assert!(ManagedRecord::parse(Some("not json")).is_err());
    }
}
