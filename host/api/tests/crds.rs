//! The generated CRDs are structural, carry no defaults or CEL rules (which API servers before
//! 1.25 and kubectl disagree on), and match the YAML committed under `crds/`.

use std::path::PathBuf;

use serde_json::Value;

/// Every schema node has a type, unless it is int-or-string or preserves unknown fields; no
/// `default`, no CEL rules, and no `anyOf`/`oneOf` outside int-or-string nodes.
fn structural_problems(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(map) = node.as_object() else { return };
    let flag = |key: &str| map.get(key).and_then(Value::as_bool).unwrap_or(false);
    let int_or_string = flag("x-kubernetes-int-or-string");
    if !map.contains_key("type") && !int_or_string && !flag("x-kubernetes-preserve-unknown-fields")
    {
        problems.push(format!("{path}: no type"));
    }
    for key in ["default", "x-kubernetes-validations"] {
        if map.contains_key(key) {
            problems.push(format!("{path}: has {key}"));
        }
    }
    for key in ["oneOf", "allOf", "not"] {
        if map.contains_key(key) {
            problems.push(format!("{path}: has {key}"));
        }
    }
    if map.contains_key("anyOf") && !int_or_string {
        problems.push(format!("{path}: has anyOf"));
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            structural_problems(child, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(items) = map.get("items") {
        structural_problems(items, &format!("{path}[]"), problems);
    }
    if let Some(additional) = map.get("additionalProperties") {
        structural_problems(additional, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn crds_are_structural() {
    let crds = sluice_api::crd::all();
    assert_eq!(crds.len(), 5);
    for crd in &crds {
        let json = serde_json::to_value(crd).expect("serializes");
        let name = crd.metadata.name.clone().expect("named");
        for version in json["spec"]["versions"].as_array().expect("versions") {
            let schema = &version["schema"]["openAPIV3Schema"];
            let mut problems = Vec::new();
            structural_problems(schema, &name, &mut problems);
            assert!(problems.is_empty(), "{problems:#?}");
        }
    }
}

#[test]
fn rollout_crd_has_argo_names_and_subresources() {
    let crds = sluice_api::crd::all();
    let rollout = serde_json::to_value(&crds[0]).expect("serializes");
    assert_eq!(rollout["metadata"]["name"], "rollouts.argoproj.io");
    assert_eq!(rollout["spec"]["names"]["shortNames"][0], "ro");
    let version = &rollout["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    let scale = &version["subresources"]["scale"];
    assert_eq!(scale["specReplicasPath"], ".spec.replicas");
    assert_eq!(scale["statusReplicasPath"], ".status.HPAReplicas");
    assert_eq!(scale["labelSelectorPath"], ".status.selector");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|column| column["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        columns,
        ["Desired", "Current", "Up-to-date", "Available", "Age"]
    );
    let short_names: Vec<String> = crds
        .iter()
        .map(|crd| {
            crd.spec
                .names
                .short_names
                .clone()
                .unwrap_or_default()
                .join(",")
        })
        .collect();
    assert_eq!(short_names, ["ro", "at", "cat", "ar", "exp"]);
    assert_eq!(crds[2].spec.scope, "Cluster");
}

#[test]
fn committed_crds_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    for crd in sluice_api::crd::all() {
        let path = dir.join(sluice_api::crd::file_name(&crd));
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(
            committed == sluice_api::crd::to_yaml(&crd),
            "{} is out of date: run `cargo run -p sluice -- crds --output-dir crds`",
            path.display()
        );
    }
}
