//! Every manifest under `examples/` parses into the typed API, serializes back to the same
//! document with Argo's field names, and is valid.

use std::path::PathBuf;

use serde_json::Value;
use sluice_api::manifest::{self, Object};

fn example_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the example manifests, found {files:?}"
    );
    files
}

/// The raw documents of a file, as JSON, skipping empty documents.
fn raw_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|document| serde_yaml::Value::deserialize(document).expect("valid YAML"))
        .filter(|value| !value.is_null())
        .map(|value| serde_json::to_value(value).expect("YAML maps to JSON"))
        .collect()
}

fn sluice_objects(text: &str) -> Vec<Object> {
    manifest::parse_documents(text)
        .into_iter()
        .map(|parsed| parsed.expect("every example parses"))
        .collect()
}

#[test]
fn examples_round_trip_to_identical_documents() {
    let mut typed = 0;
    for file in example_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        let raw = raw_documents(&text);
        let objects = sluice_objects(&text);
        assert_eq!(raw.len(), objects.len(), "{}", file.display());
        for (original, object) in raw.iter().zip(&objects) {
            if matches!(object, Object::Other(_)) {
                continue;
            }
            typed += 1;
            let serialized = object.to_json();
            assert_eq!(
                &serialized,
                original,
                "{}: {} does not serialize back to the document it was read from",
                file.display(),
                object.describe()
            );
            let reparsed = manifest::parse_object(1, serialized).expect("serialized form parses");
            assert_eq!(
                &reparsed,
                object,
                "{}: {}",
                file.display(),
                object.describe()
            );
        }
    }
    assert!(typed >= 15, "only {typed} Sluice objects in the examples");
}

#[test]
fn serialized_json_keeps_argo_field_names() {
    let text = [
        "canary-istio.yaml",
        "bluegreen.yaml",
        "canary-gatewayapi.yaml",
        "analysistemplate-prometheus.yaml",
    ]
    .map(|name| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name);
        std::fs::read_to_string(path).expect("example exists")
    })
    .join("\n---\n");
    let objects: Vec<Value> = sluice_objects(&text)
        .into_iter()
        .filter(|object| !matches!(object, Object::Other(_)))
        .map(|object| object.to_json())
        .collect();
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind}/{name} in the examples"))
    };
    let istio = find("Rollout", "reviews");
    let routing = &istio["spec"]["strategy"]["canary"]["trafficRouting"];
    assert_eq!(routing["istio"]["virtualService"]["name"], "reviews");
    assert_eq!(
        routing["istio"]["destinationRule"]["canarySubsetName"],
        "canary"
    );
    assert_eq!(routing["managedRoutes"][0]["name"], "beta-testers");
    assert!(
        istio["spec"]["strategy"]["canary"]["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .any(|step| step["setHeaderRoute"]["match"][0]["headerValue"].is_object())
    );

    let blue_green = find("Rollout", "payments");
    let strategy = &blue_green["spec"]["strategy"]["blueGreen"];
    assert_eq!(strategy["autoPromotionEnabled"], false);
    assert!(strategy["prePromotionAnalysis"]["templates"][0]["templateName"].is_string());
    assert!(
        strategy["prePromotionAnalysis"]["args"]
            .as_array()
            .expect("args")
            .iter()
            .any(|arg| arg["valueFrom"]["podTemplateHashValue"] == "Latest")
    );

    let gateway = find("Rollout", "checkout");
    let plugins = &gateway["spec"]["strategy"]["canary"]["trafficRouting"]["plugins"];
    assert_eq!(plugins["argoproj-labs/gatewayAPI"]["httpRoute"], "checkout");

    let template = find("AnalysisTemplate", "success-rate");
    let metric = &template["spec"]["metrics"][0];
    assert!(metric["successCondition"].is_string());
    assert!(
        metric["provider"]["prometheus"]["query"]
            .as_str()
            .expect("query")
            .contains("{{args.service-name}}")
    );
}

#[test]
fn every_example_is_valid() {
    for file in example_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        for object in sluice_objects(&text) {
            let violations = object.violations();
            assert!(
                violations.is_empty(),
                "{}: {}: {violations:?}",
                file.display(),
                object.describe()
            );
        }
    }
}
