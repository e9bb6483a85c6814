//! Installing CustomResourceDefinitions and waiting until they are served.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde::Deserialize;
use serde_json::Value;

use crate::Error;

/// Field manager used for server-side apply of CRDs.
const FIELD_MANAGER: &str = "sluice-localcluster";
/// How long a CRD may take to become Established and served.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository's CRD directories that exist: `crds/` (Sluice's generated CRDs) and
/// `tests/crds/` (minimal third-party CRDs: Gateway API routes, Istio networking).
pub fn workspace_crd_dirs() -> Vec<PathBuf> {
    let root = workspace_root();
    [root.join("crds"), root.join("tests/crds")]
        .into_iter()
        .filter(|dir| dir.is_dir())
        .collect()
}

/// The workspace being tested: found from the package `cargo test` runs (its
/// `CARGO_MANIFEST_DIR` at run time), else this crate's. Build artefacts are shared between
/// checkouts that use the same target directory, so the compile-time path may name another one.
fn workspace_root() -> PathBuf {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(package) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return built_from;
    };
    package
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|manifest| manifest.contains("[workspace]"))
        })
        .map_or(built_from, Path::to_path_buf)
}

/// Server-side applies every CRD in the `*.yaml`/`*.yml` files of `dir` (sorted by file name) and
/// waits until each is Established and served. Returns the CRD names.
pub async fn install_crds_from_dir(client: &Client, dir: &Path) -> Result<Vec<String>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(format!("reading {}", dir.display())))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for file in &files {
        let yaml = std::fs::read_to_string(file)
            .map_err(Error::io(format!("reading {}", file.display())))?;
        crds.extend(parse_crds(&yaml, &file.display().to_string())?);
    }
    apply_and_wait(client, crds).await
}

/// Server-side applies the CRDs in a (multi-document) YAML string and waits until each is
/// Established and served. Returns the CRD names.
pub async fn install_crd_yaml(client: &Client, yaml: &str) -> Result<Vec<String>, Error> {
    apply_and_wait(client, parse_crds(yaml, "CRD YAML")?).await
}

/// Parses the CRD documents of `yaml`, dropping `x-kubernetes-validations` (CEL rules, which
/// Kubernetes 1.20 does not know).
fn parse_crds(yaml: &str, context: &str) -> Result<Vec<Value>, Error> {
    let mut crds = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let mut value = Value::deserialize(document).map_err(|e| Error::Manifest {
            context: context.to_owned(),
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        if value.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            return Err(Error::Manifest {
                context: context.to_owned(),
                message: format!(
                    "expected only CustomResourceDefinition documents, found kind {}",
                    value.get("kind").unwrap_or(&Value::Null)
                ),
            });
        }
        strip_key(&mut value, "x-kubernetes-validations");
        crds.push(value);
    }
    Ok(crds)
}

fn strip_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| strip_key(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_key(v, key)),
        _ => {}
    }
}

async fn apply_and_wait(client: &Client, crds: Vec<Value>) -> Result<Vec<String>, Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for crd in crds {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Manifest {
                context: "CustomResourceDefinition".to_owned(),
                message: "metadata.name is missing".to_owned(),
            })?
            .to_owned();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(Error::kube(format!("applying CRD {name}")))?;
        names.push(name);
    }
    for name in &names {
        wait_served(client, &api, name).await?;
    }
    Ok(names)
}

/// Waits until the CRD is Established and a list of each served version succeeds.
async fn wait_served(
    client: &Client,
    api: &Api<CustomResourceDefinition>,
    name: &str,
) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    let mut last_problem = String::from("not checked yet");
    while tokio::time::Instant::now() < deadline {
        match served_problem(client, api, name).await {
            Ok(None) => return Ok(()),
            Ok(Some(problem)) => last_problem = problem,
            Err(e) => last_problem = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::Timeout(format!(
        "CRD {name} to be established and served ({last_problem})"
    )))
}

async fn served_problem(
    client: &Client,
    api: &Api<CustomResourceDefinition>,
    name: &str,
) -> Result<Option<String>, kube::Error> {
    let crd = api.get(name).await?;
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    if !established {
        return Ok(Some("not Established".to_owned()));
    }
    for version in crd.spec.versions.iter().filter(|v| v.served) {
        let gvk = GroupVersionKind::gvk(&crd.spec.group, &version.name, &crd.spec.names.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
        let objects: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        if let Err(e) = objects.list(&ListParams::default().limit(1)).await {
            return Ok(Some(format!(
                "listing {}/{}: {e}",
                version.name, crd.spec.names.plural
            )));
        }
    }
    Ok(None)
}
