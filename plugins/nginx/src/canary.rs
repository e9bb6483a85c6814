//! The pure part of the router: the desired canary Ingress for a stable Ingress and the merge
//! patch that brings an existing canary Ingress there.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sluice_plugin_sdk::PluginError;

use crate::config::RouterInput;

/// Suffix of every canary Ingress name (Argo `CanaryIngressSuffix`).
pub const CANARY_INGRESS_SUFFIX: &str = "-canary";

/// Longest object name the API server accepts.
pub const MAX_NAME_LENGTH: usize = 253;

/// The legacy ingress-class annotation, copied from the stable Ingress.
pub const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// `<rollout>-<stableIngress>-canary`, with the prefix trimmed so the name fits 253 characters.
pub fn canary_ingress_name(rollout_name: &str, stable_ingress_name: &str) -> String {
    let mut prefix = format!("{rollout_name}-{stable_ingress_name}");
    let limit = MAX_NAME_LENGTH - CANARY_INGRESS_SUFFIX.len();
    if prefix.len() > limit {
        let mut cut = limit;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    prefix + CANARY_INGRESS_SUFFIX
}

/// The controller reference the canary Ingress carries, so it is garbage-collected with the
/// Rollout and recognised as ours.
pub fn rollout_owner_reference(input: &RouterInput) -> OwnerReference {
    OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: input.rollout_name.clone(),
        uid: input.rollout_uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `ingress` has a controller owner reference to the Rollout with `rollout_uid`.
pub fn is_controlled_by(ingress: &Ingress, rollout_uid: &str) -> bool {
    ingress
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.controller == Some(true) && owner.uid == rollout_uid)
}

/// The annotations the canary Ingress must carry at `weight`, in Argo's precedence:
/// `additionalIngressAnnotations` (prefixed), then `canary`, `canary-weight` and
/// `canary-weight-total`, then `canaryIngressAnnotations` verbatim.
pub fn canary_annotations(
    input: &RouterInput,
    stable: &Ingress,
    weight: i32,
) -> BTreeMap<String, String> {
    let prefix = input.config.prefix();
    let mut annotations = BTreeMap::new();
    if let Some(class) = stable
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INGRESS_CLASS_ANNOTATION))
    {
        annotations.insert(INGRESS_CLASS_ANNOTATION.to_owned(), class.clone());
    }
    for (key, value) in &input.config.additional_ingress_annotations {
        let key = if key.starts_with(prefix) {
            key.clone()
        } else {
            format!("{prefix}/{key}")
        };
        annotations.insert(key, value.clone());
    }
    annotations.insert(format!("{prefix}/canary"), "true".into());
    annotations.insert(format!("{prefix}/canary-weight"), weight.to_string());
    if let Some(total) = input.max_traffic_weight {
        annotations.insert(format!("{prefix}/canary-weight-total"), total.to_string());
    }
    for (key, value) in &input.config.canary_ingress_annotations {
        annotations.insert(key.clone(), value.clone());
    }
    annotations
}

/// The canary Ingress for `stable` at `weight`: the rules whose backends include the stable
/// service (those backends rewritten to the canary service), the TLS section, the ingress
/// class and the canary annotations, owned by the Rollout.
///
/// A stable Ingress without a rule for the stable service is an `invalid-config` error.
pub fn desired_canary_ingress(
    input: &RouterInput,
    stable_ingress_name: &str,
    stable: &Ingress,
    weight: i32,
) -> Result<Ingress, PluginError> {
    let stable_spec = stable.spec.clone().unwrap_or_default();
    let mut rules = Vec::new();
    for mut rule in stable_spec.rules.into_iter().flatten() {
        let mut uses_stable_service = false;
        for path in rule.http.iter_mut().flat_map(|http| http.paths.iter_mut()) {
            if let Some(service) = path.backend.service.as_mut()
                && service.name == input.stable_service
            {
                service.name = input.canary_service.clone();
                uses_stable_service = true;
            }
        }
        if uses_stable_service {
            rules.push(rule);
        }
    }
    if rules.is_empty() {
        return Err(PluginError::InvalidConfig(format!(
            "ingress `{stable_ingress_name}` has no rules using service {} backend",
            input.stable_service
        )));
    }
    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(canary_ingress_name(
                &input.rollout_name,
                stable_ingress_name,
            )),
            namespace: Some(input.namespace.clone()),
            annotations: Some(canary_annotations(input, stable, weight)),
            owner_references: Some(vec![rollout_owner_reference(input)]),
            ..ObjectMeta::default()
        },
        spec: Some(IngressSpec {
            rules: Some(rules),
            tls: stable_spec.tls,
            ingress_class_name: stable_spec.ingress_class_name,
            default_backend: None,
        }),
        status: None,
    })
}

fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The JSON merge patch from `current` to `desired`, or `None` when nothing differs.
///
/// Only the desired annotations are written, so annotations added by others stay; `rules`,
/// `tls` and `ingressClassName` are replaced (or removed) when they differ.
pub fn canary_update_patch(current: &Ingress, desired: &Ingress) -> Option<Value> {
    let current_annotations = current.metadata.annotations.clone().unwrap_or_default();
    let annotations: Map<String, Value> = desired
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(key, value)| current_annotations.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
        .collect();

    let current_spec = current.spec.clone().unwrap_or_default();
    let desired_spec = desired.spec.clone().unwrap_or_default();
    let mut spec = Map::new();
    let fields = [
        (
            "rules",
            to_json(&current_spec.rules),
            to_json(&desired_spec.rules),
        ),
        (
            "tls",
            to_json(&current_spec.tls),
            to_json(&desired_spec.tls),
        ),
        (
            "ingressClassName",
            to_json(&current_spec.ingress_class_name),
            to_json(&desired_spec.ingress_class_name),
        ),
    ];
    for (field, current_value, desired_value) in fields {
        if current_value != desired_value {
            spec.insert(field.to_owned(), desired_value);
        }
    }

    let mut patch = Map::new();
    if !annotations.is_empty() {
        patch.insert("metadata".into(), json!({ "annotations": annotations }));
    }
    if !spec.is_empty() {
        patch.insert("spec".into(), Value::Object(spec));
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NginxConfig;

    fn input(config: NginxConfig) -> RouterInput {
        RouterInput {
            config,
            namespace: "shop".into(),
            rollout_name: "web".into(),
            rollout_uid: "uid-1".into(),
            stable_service: "web-stable".into(),
            canary_service: "web-canary".into(),
            max_traffic_weight: None,
        }
    }

    fn stable_ingress() -> Ingress {
        serde_json::from_value(json!({
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "annotations": {"kubernetes.io/ingress.class": "nginx", "owner": "team-a"}
            },
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
                "rules": [
                    {"host": "web.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-stable", "port": {"number": 80}}}},
                        {"path": "/static", "pathType": "Prefix", "backend": {"service": {"name": "assets", "port": {"number": 80}}}}
                    ]}},
                    {"host": "other.example.com", "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}
                    ]}}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn names_are_argo_names_trimmed_to_253_characters() {
        assert_eq!(
            canary_ingress_name("web", "web-ingress"),
            "web-web-ingress-canary"
        );
        let long = canary_ingress_name(&"r".repeat(200), &"s".repeat(100));
        assert_eq!(long.len(), 253);
        assert!(long.ends_with("-canary"));
        assert!(long.starts_with(&"r".repeat(200)));
    }

    #[test]
    fn the_canary_copies_only_stable_service_rules_rewritten_to_the_canary_service() {
        let canary =
            desired_canary_ingress(&input(NginxConfig::default()), "web", &stable_ingress(), 5)
                .unwrap();
        let value = serde_json::to_value(&canary).unwrap();
        assert_eq!(value["metadata"]["name"], "web-web-canary");
        assert_eq!(
            value["spec"]["rules"],
            json!([{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-canary", "port": {"number": 80}}}},
                {"path": "/static", "pathType": "Prefix", "backend": {"service": {"name": "assets", "port": {"number": 80}}}}
            ]}}])
        );
        assert_eq!(
            value["spec"]["tls"],
            json!([{"hosts": ["web.example.com"], "secretName": "web-tls"}])
        );
        assert_eq!(value["spec"]["ingressClassName"], "nginx");
        assert_eq!(
            value["metadata"]["annotations"],
            json!({
                "kubernetes.io/ingress.class": "nginx",
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "5"
            })
        );
        assert_eq!(
            value["metadata"]["ownerReferences"],
            json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": "uid-1", "controller": true, "blockOwnerDeletion": true}])
        );
    }

    #[test]
    fn annotations_follow_argo_precedence() {
        let config = NginxConfig {
            annotation_prefix: Some("custom.nginx.io".into()),
            additional_ingress_annotations: [
                ("canary-by-header".to_owned(), "X-Canary".to_owned()),
                (
                    "custom.nginx.io/canary-by-cookie".to_owned(),
                    "beta".to_owned(),
                ),
            ]
            .into(),
            canary_ingress_annotations: [
                ("custom.nginx.io/canary-weight".to_owned(), "77".to_owned()),
                ("team".to_owned(), "web".to_owned()),
            ]
            .into(),
            ..NginxConfig::default()
        };
        let mut with_total = input(config);
        with_total.max_traffic_weight = Some(1000);
        let annotations = canary_annotations(&with_total, &stable_ingress(), 50);
        let expected: BTreeMap<String, String> = [
            ("kubernetes.io/ingress.class", "nginx"),
            ("custom.nginx.io/canary-by-header", "X-Canary"),
            ("custom.nginx.io/canary-by-cookie", "beta"),
            ("custom.nginx.io/canary", "true"),
            ("custom.nginx.io/canary-weight", "77"),
            ("custom.nginx.io/canary-weight-total", "1000"),
            ("team", "web"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(annotations, expected);
    }

    #[test]
    fn a_stable_ingress_without_the_stable_service_is_an_error() {
        let mut other = input(NginxConfig::default());
        other.stable_service = "missing".into();
        let err = desired_canary_ingress(&other, "web", &stable_ingress(), 5).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidConfig(m) if m == "ingress `web` has no rules using service missing backend"),
            "{err:?}"
        );
    }

    #[test]
    fn update_patches_keep_foreign_annotations_and_skip_no_ops() {
        let input = input(NginxConfig::default());
        let mut current = desired_canary_ingress(&input, "web", &stable_ingress(), 5).unwrap();
        current
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("argocd.argoproj.io/tracking-id".into(), "x".into());
        let same = desired_canary_ingress(&input, "web", &stable_ingress(), 5).unwrap();
        assert_eq!(canary_update_patch(&current, &same), None);

        let heavier = desired_canary_ingress(&input, "web", &stable_ingress(), 50).unwrap();
        assert_eq!(
            canary_update_patch(&current, &heavier),
            Some(
                json!({"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "50"}}})
            )
        );

        let mut no_tls = stable_ingress();
        no_tls.spec.as_mut().unwrap().tls = None;
        let without_tls = desired_canary_ingress(&input, "web", &no_tls, 5).unwrap();
        assert_eq!(
            canary_update_patch(&current, &without_tls),
            Some(json!({"spec": {"tls": null}}))
        );
    }

    #[test]
    fn control_is_recognised_by_uid() {
        let input = input(NginxConfig::default());
        let canary = desired_canary_ingress(&input, "web", &stable_ingress(), 5).unwrap();
        assert!(is_controlled_by(&canary, "uid-1"));
        assert!(!is_controlled_by(&canary, "uid-2"));
        assert!(!is_controlled_by(&stable_ingress(), "uid-1"));
    }
}
