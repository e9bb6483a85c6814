//! The install manifests in `deploy/`: the plugin ConfigMap is the built-ins' defaults, the RBAC
//! covers every default plugin grant, the namespaced Role keeps step with the ClusterRole, the API
//! server accepts both kustomizations, and the controller runs a Gateway API canary with a
//! Prometheus analysis to Healthy with nothing but the ClusterRole's permissions. The Helm chart
//! (`deploy/helm/sluice`) lints, renders the kustomize install's objects, passes values on, and
//! installs into the local control plane with the same permissions (helm from
//! `scripts/install-helm.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_api::analysis::AnalysisRun;
use sluice_api::rollout::Rollout;
use sluice_builtins::{
    BUILTINS, DEFAULT_METRIC_PROVIDER_PLUGINS, DEFAULT_STEP_PLUGINS, DEFAULT_TRAFFIC_ROUTER_PLUGINS,
};
use sluice_controller::{ControllerOptions, LeaderElection, PluginConfigMap, SluiceController};
use sluice_localcluster::{LocalCluster, LocalPrometheus};
use sluice_runtime::{
    Limits, METRIC_PROVIDER_PLUGINS_KEY, PluginLocation, STEP_PLUGINS_KEY,
    TRAFFIC_ROUTER_PLUGINS_KEY, parse_plugin_config,
};

/// The controller's ServiceAccount, as the API server names it.
const CONTROLLER_USER: &str = "system:serviceaccount:sluice:sluice-controller";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("valid YAML"))
        .filter(|value| !value.is_null())
        .collect()
}

fn document(path: &Path, kind: &str) -> Value {
    documents(path)
        .into_iter()
        .find(|document| document["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {}", path.display()))
}

/// The kustomization file of a directory (`kustomization.yaml` or `Kustomization`).
fn kustomization_file(dir: &Path) -> PathBuf {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("no kustomization in {}", dir.display()))
}

/// Renders a kustomization as `kubectl kustomize` does for the features `deploy/` uses:
/// `resources` (files and directories) and JSON 6902 `patches` with a kind/name target.
fn render(dir: &Path) -> Vec<Value> {
    let kustomization = &documents(&kustomization_file(dir))[0];
    let mut objects = Vec::new();
    for resource in kustomization["resources"].as_array().into_iter().flatten() {
        let path = dir.join(resource.as_str().expect("a resource path"));
        if path.is_dir() {
            objects.extend(render(&path));
        } else {
            objects.extend(documents(&path));
        }
    }
    for patch in kustomization["patches"].as_array().into_iter().flatten() {
        let operations: json_patch::Patch =
            serde_yaml::from_str(patch["patch"].as_str().expect("an inline patch"))
                .expect("a JSON 6902 patch");
        let target = &patch["target"];
        let mut matched = 0;
        for object in objects.iter_mut().filter(|object| {
            object["kind"] == target["kind"] && object["metadata"]["name"] == target["name"]
        }) {
            json_patch::patch(object, &operations).expect("the patch applies");
            matched += 1;
        }
        assert_eq!(matched, 1, "patch target {target} in {}", dir.display());
    }
    objects
}

/// `(group, resource, verb)` triples allowed by RBAC rules (deploy/ uses no wildcards).
fn allowed(rules: &Value) -> BTreeSet<(String, String, String)> {
    let mut allowed = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        for group in rule["apiGroups"].as_array().expect("apiGroups") {
            for resource in rule["resources"].as_array().expect("resources") {
                for verb in rule["verbs"].as_array().expect("verbs") {
                    let text = |value: &Value| value.as_str().expect("a string").to_owned();
                    assert_ne!(verb, "*", "no wildcard verbs");
                    assert_ne!(resource, "*", "no wildcard resources");
                    allowed.insert((text(group), text(resource), text(verb)));
                }
            }
        }
    }
    allowed
}

fn cluster_role_rules() -> BTreeSet<(String, String, String)> {
    allowed(&document(&root().join("deploy/clusterrole.yaml"), "ClusterRole")["rules"])
}

#[test]
fn the_plugin_configmap_is_the_builtin_defaults() {
    let config_map = document(&root().join("deploy/base/plugin-config.yaml"), "ConfigMap");
    assert_eq!(config_map["metadata"]["name"], "argo-rollouts-config");
    assert_eq!(config_map["metadata"]["namespace"], "sluice");
    assert_eq!(
        config_map["data"][TRAFFIC_ROUTER_PLUGINS_KEY],
        DEFAULT_TRAFFIC_ROUTER_PLUGINS
    );
    assert_eq!(
        config_map["data"][METRIC_PROVIDER_PLUGINS_KEY],
        DEFAULT_METRIC_PROVIDER_PLUGINS
    );
    assert_eq!(config_map["data"][STEP_PLUGINS_KEY], DEFAULT_STEP_PLUGINS);
    let data: BTreeMap<String, String> =
        serde_json::from_value(config_map["data"].clone()).expect("string data");
    let config = parse_plugin_config(&data, &Limits::default()).expect("a valid plugin config");
    assert!(config.invalid.is_empty(), "{:?}", config.invalid);
    let listed: BTreeSet<String> = config
        .entries
        .iter()
        .filter_map(|entry| match &entry.location {
            PluginLocation::Builtin(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let builtins: BTreeSet<String> = BUILTINS.iter().map(|b| b.name.to_owned()).collect();
    assert_eq!(
        listed, builtins,
        "every built-in is configured, and only those"
    );
}

#[test]
fn the_crd_kustomization_lists_every_crd() {
    let kustomization = &documents(&root().join("crds/Kustomization"))[0];
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name").to_owned())
        .collect();
    assert_eq!(listed, crd_files());
}

/// The file names of the CRDs in `crds/`.
fn crd_files() -> BTreeSet<String> {
    std::fs::read_dir(root().join("crds"))
        .expect("crds/")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect()
}

#[test]
fn the_namespaced_role_has_the_cluster_roles_rules() {
    let path = root().join("deploy/namespaced/role.yaml");
    let role = allowed(&document(&path, "Role")["rules"]);
    let cluster_scoped = allowed(&document(&path, "ClusterRole")["rules"]);
    let mut together = role.clone();
    together.extend(cluster_scoped.iter().cloned());
    assert_eq!(together, cluster_role_rules());
    assert!(
        cluster_scoped
            .iter()
            .all(|(_, resource, _)| resource == "clusteranalysistemplates"),
        "only cluster-scoped reads are cluster-wide: {cluster_scoped:?}"
    );
    let deployment = render(&root().join("deploy/namespaced"))
        .into_iter()
        .find(|object| object["kind"] == "Deployment")
        .expect("a Deployment");
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .expect("args")
            .iter()
            .any(|a| a == "--namespaced"),
        "{args}"
    );
}

#[test]
fn the_deployment_is_probed_non_root_and_read_only() {
    let deployment = document(&root().join("deploy/base/deployment.yaml"), "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"][0], "controller");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let ports: BTreeMap<String, i64> = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_owned(),
                p["containerPort"].as_i64().expect("port"),
            )
        })
        .collect();
    assert_eq!(ports["healthz"], 8080);
    assert_eq!(ports["metrics"], 8090);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(container["resources"]["requests"].is_object());
    assert!(container["resources"]["limits"]["memory"].is_string());
}

/// Every kube grant of the default plugins maps, through discovery, to resources the ClusterRole
/// (and so the namespaced Role) allows with the same verbs.
#[tokio::test]
async fn the_cluster_role_covers_every_default_plugin_grant() {
    let client = LocalCluster::shared().client().expect("client");
    let discovery = Discovery::new(client).run().await.expect("discovery");
    let data = BTreeMap::from([
        (
            TRAFFIC_ROUTER_PLUGINS_KEY.to_owned(),
            DEFAULT_TRAFFIC_ROUTER_PLUGINS.to_owned(),
        ),
        (
            METRIC_PROVIDER_PLUGINS_KEY.to_owned(),
            DEFAULT_METRIC_PROVIDER_PLUGINS.to_owned(),
        ),
        (STEP_PLUGINS_KEY.to_owned(), DEFAULT_STEP_PLUGINS.to_owned()),
    ]);
    let config = parse_plugin_config(&data, &Limits::default()).expect("defaults parse");
    let rules = cluster_role_rules();
    let mut checked = 0;
    for entry in &config.entries {
        for rule in &entry.spec.grants.kube {
            let kinds = rule.kinds.clone().expect("default grants name their kinds");
            for kind in kinds {
                let resource = discovery
                    .groups()
                    .filter(|group| group.name() == rule.group)
                    .flat_map(|group| group.recommended_resources())
                    .find(|(resource, _)| resource.kind == kind)
                    .map(|(resource, _)| resource.plural)
                    .unwrap_or_else(|| panic!("discovery has no {kind} in {:?}", rule.group));
                for verb in &rule.verbs {
                    let triple = (
                        rule.group.clone(),
                        resource.clone(),
                        verb.as_str().to_owned(),
                    );
                    assert!(
                        rules.contains(&triple),
                        "plugin {} is granted {triple:?}, which the ClusterRole does not allow",
                        entry.spec.name
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} grants checked");
}

/// Runs kubectl against the local cluster; `None` when kubectl is not installed.
fn kubectl(cluster: &LocalCluster, args: &[&str]) -> Option<std::process::Output> {
    match Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args)
        .current_dir(root())
        .output()
    {
        Ok(output) => Some(output),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => panic!("running kubectl: {error}"),
    }
}

fn object_key(object: &Value) -> String {
    format!(
        "{}/{}/{}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Both kustomizations are accepted by the API server (a server-side dry run of every object,
/// through kube-rs), and, where kubectl is installed, `kubectl apply -k DIR --dry-run=server`
/// succeeds and kubectl's kustomize renders exactly the objects this file's renderer applies.
#[tokio::test]
async fn the_api_server_accepts_both_kustomizations() {
    let cluster = LocalCluster::shared();
    let admin = cluster.client().expect("client");
    create_sluice_namespace(&admin).await;
    for dir in ["deploy/", "deploy/namespaced/"] {
        let mut ours = render(&root().join(dir));
        assert!(ours.len() >= 14, "{dir}: {} objects", ours.len());
        apply_all(&admin, &ours, true).await;

        let Some(output) = kubectl(cluster, &["apply", "-k", dir, "--dry-run=server"]) else {
            eprintln!("kubectl is not installed: checked {dir} with kube-rs only");
            continue;
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "kubectl apply -k {dir} --dry-run=server\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("deployment.apps/sluice-controller"),
            "{stdout}"
        );
        assert!(
            stdout.contains("configmap/argo-rollouts-config"),
            "{stdout}"
        );
        let rendered = kubectl(cluster, &["kustomize", dir]).expect("kubectl");
        assert!(rendered.status.success());
        let mut theirs: Vec<Value> = serde_yaml::Deserializer::from_slice(&rendered.stdout)
            .map(|document| Value::deserialize(document).expect("YAML"))
            .collect();
        ours.sort_by_key(object_key);
        theirs.sort_by_key(object_key);
        assert_eq!(ours, theirs, "{dir}");
    }
}

/// Creates the namespace `sluice` if it does not exist yet: a dry run creates nothing, so the
/// objects in a new namespace need it to exist already.
async fn create_sluice_namespace(admin: &Client) {
    match Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "sluice"}})).expect("namespace"),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("creating the sluice namespace: {error}"),
    }
}

/// Server-side applies objects as the cluster's admin (discovery finds each kind's resource);
/// `dry_run` only validates them.
async fn apply_all(client: &Client, objects: &[Value], dry_run: bool) {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let mut params = PatchParams::apply("sluice-deploy-test").force();
    params.dry_run = dry_run;
    for object in objects {
        let api_version = object["apiVersion"].as_str().expect("apiVersion");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().expect("kind"));
        let (resource, capabilities) = discovery.resolve_gvk(&gvk).expect("a served kind");
        let api: Api<DynamicObject> =
            match (capabilities.scope, object["metadata"]["namespace"].as_str()) {
                (Scope::Namespaced, Some(namespace)) => {
                    Api::namespaced_with(client.clone(), namespace, &resource)
                }
                _ => Api::all_with(client.clone(), &resource),
            };
        let name = object["metadata"]["name"].as_str().expect("name");
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .unwrap_or_else(|e| panic!("applying {gvk:?} {name} (dry run: {dry_run}): {e}"));
    }
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The controller, authenticated as the install's ServiceAccount, takes a Gateway API canary with
/// a Prometheus analysis step to Healthy: the ClusterRole and the config Role are enough.
#[tokio::test]
async fn the_controller_runs_a_canary_with_only_the_installed_permissions() {
    let cluster = LocalCluster::shared();
    let admin = cluster.client().expect("client");
    apply_all(&admin, &render(&root().join("deploy")), false).await;

    // The default grants let the Prometheus provider reach the address its metric names.
    let prometheus = LocalPrometheus::start(&[]).await.expect("prometheus");

    let mut config = cluster.config().clone();
    config.auth_info.impersonate = Some(CONTROLLER_USER.to_owned());
    let restricted = Client::try_from(config).expect("impersonating client");
    let options = ControllerOptions {
        plugin_config: Some(PluginConfigMap {
            namespace: "sluice".to_owned(),
            name: "argo-rollouts-config".to_owned(),
        }),
        builtins: sluice_builtins::components(),
        leader_election: Some(LeaderElection {
            retry_period: std::time::Duration::from_millis(200),
            ..LeaderElection::new("sluice", "deploy-test")
        }),
        default_plugins: sluice_builtins::default_plugin_config(),
        ..ControllerOptions::default()
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let controller = SluiceController::new(restricted, options, &mut registry).expect("controller");
    let ready = controller.readiness();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller.run(async {
        stopped.await.ok();
    }));
    eventually("the restricted controller's caches to sync", || async {
        ready
            .load(std::sync::atomic::Ordering::Acquire)
            .then_some(())
    })
    .await;

    let ns = cluster.namespace("deploy-rbac").await.expect("namespace");
    let name = ns.name().to_owned();
    let create = |object: Value| {
        let admin = admin.clone();
        let name = name.clone();
        async move {
            let api_version = object["apiVersion"]
                .as_str()
                .expect("apiVersion")
                .to_owned();
            let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
            let kind = object["kind"].as_str().expect("kind").to_owned();
            let plural = format!("{}s", kind.to_lowercase());
            let resource = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(group, version, &kind),
                &plural,
            );
            let object: DynamicObject = serde_json::from_value(object).expect("object");
            Api::<DynamicObject>::namespaced_with(admin, &name, &resource)
                .create(&PostParams::default(), &object)
                .await
                .unwrap_or_else(|e| panic!("creating {kind}: {e}"));
        }
    };
    for service in ["web-stable", "web-canary"] {
        create(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": service},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        )
        .await;
    }
    create(
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {"rules": [{"backendRefs": [
            {"name": "web-stable", "port": 80, "weight": 100},
            {"name": "web-canary", "port": 80, "weight": 0}]}]}}),
    )
    .await;
    create(
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "constant"},
        "spec": {"metrics": [{"name": "constant", "successCondition": "result[0] == 1",
            "provider": {"prometheus": {"address": prometheus.url(), "query": "vector(1)"}}}]}}),
    )
    .await;
    let rollout = |image: &str| {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}},
                "strategy": {"canary": {"canaryService": "web-canary", "stableService": "web-stable",
                    "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}},
                    "steps": [{"setWeight": 50},
                        {"analysis": {"templates": [{"templateName": "constant"}]}}]}}}})
    };
    create(rollout("example/web:1")).await;
    let rollouts = Api::<Rollout>::namespaced(admin.clone(), &name);
    let healthy_on = |rollouts: Api<Rollout>, previous: Option<String>| async move {
        let rollout = rollouts.get("web").await.ok()?;
        let status = rollout.status?;
        (status.phase.map(|p| p.as_str()) == Some("Healthy")
            && status.stable_rs.is_some()
            && status.stable_rs == status.current_pod_hash
            && status.stable_rs != previous)
            .then_some(status.stable_rs)
            .flatten()
    };
    let first = eventually("the first revision Healthy", || {
        healthy_on(rollouts.clone(), None)
    })
    .await;
    rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "example/web:2"}]}}}})),
        )
        .await
        .expect("update the image");
    let second = eventually("the second revision Healthy", || {
        healthy_on(rollouts.clone(), Some(first.clone()))
    })
    .await;
    assert_ne!(first, second);

    let runs = Api::<AnalysisRun>::namespaced(admin.clone(), &name)
        .list(&ListParams::default())
        .await
        .expect("runs");
    assert!(
        runs.items.iter().any(|run| {
            run.status
                .as_ref()
                .and_then(|s| s.phase)
                .map(|p| p.as_str())
                == Some("Successful")
        }),
        "the analysis ran and passed: {:?}",
        runs.items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    );
    let routes = Api::<DynamicObject>::namespaced_with(
        admin.clone(),
        &name,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
            "httproutes",
        ),
    );
    // As in Argo, the canary weight returns to 0 in the reconcile after the one that made the
    // new revision stable (both Services already select it by then).
    let route = eventually("all traffic on the new stable", || async {
        let route = routes.get("web").await.expect("route");
        (route.data.pointer("/spec/rules/0/backendRefs/1/weight") == Some(&json!(0)))
            .then_some(route)
    })
    .await;
    // Created at generation 1; the router (granted through the install) wrote 50, then 0.
    assert!(
        route.metadata.generation.unwrap_or_default() >= 3,
        "the router patched the route: {:?}",
        route.metadata
    );
    // It reconciled as the elected leader, through the Lease the install lets it hold.
    let leases = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(admin, "sluice");
    let lease = leases
        .get("argo-rollouts-controller-lock")
        .await
        .expect("the leader lease");
    assert_eq!(
        lease.spec.and_then(|spec| spec.holder_identity).as_deref(),
        Some("deploy-test")
    );
    stop.send(()).ok();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the controller stops")
        .expect("the controller task")
        .expect("the controller ran without error");
}

/// Environment variable naming the Helm binary (default: where `scripts/install-helm.sh` caches
/// it, `~/.cache/sluice/helm-VERSION/helm`).
const HELM_ENV: &str = "SLUICE_HELM";

/// The chart, relative to the repository root.
const CHART: &str = "deploy/helm/sluice";

/// Labels the chart adds to the kustomize install's.
const HELM_LABELS: [&str; 4] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
];

/// The Helm binary; panics with the command that installs it when it is missing.
fn helm_binary() -> PathBuf {
    let path = std::env::var_os(HELM_ENV)
        .filter(|value| !value.is_empty())
        .map_or_else(
            || {
                let script = root().join("scripts/install-helm.sh");
                let script = std::fs::read_to_string(&script)
                    .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
                let version = script
                    .lines()
                    .find_map(|line| line.strip_prefix("version="))
                    .expect("install-helm.sh pins version=");
                let home = std::env::var_os("HOME").expect("HOME");
                PathBuf::from(home).join(format!(".cache/sluice/helm-{version}/helm"))
            },
            PathBuf::from,
        );
    assert!(
        path.is_file(),
        "helm is not installed at {}: run `bash scripts/setup.sh` (or scripts/install-helm.sh), \
         or set {HELM_ENV}",
        path.display()
    );
    path
}

/// Runs Helm in the repository root and returns its standard output; panics if it fails.
fn helm(args: &[&str]) -> String {
    let output = Command::new(helm_binary())
        .args(args)
        .current_dir(root())
        .output()
        .expect("running helm");
    assert!(
        output.status.success(),
        "helm {}\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// `--set` arguments for Helm.
fn helm_sets<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values.iter().flat_map(|value| ["--set", value]).collect()
}

/// The objects of `helm template sluice deploy/helm/sluice -n sluice --include-crds` with `values`
/// set.
fn helm_template(values: &[&str]) -> Vec<Value> {
    helm_template_chart(CHART, values)
}

/// [`helm_template`] of a chart directory or archive.
fn helm_template_chart(chart: &str, values: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "sluice", chart, "--namespace", "sluice"];
    args.push("--include-crds");
    args.extend(helm_sets(values));
    serde_yaml::Deserializer::from_str(&helm(&args))
        .map(|document| Value::deserialize(document).expect("YAML"))
        .filter(|value| !value.is_null())
        .collect()
}

fn deployment_args(objects: &[Value]) -> Vec<String> {
    let deployment = objects
        .iter()
        .find(|object| object["kind"] == "Deployment")
        .expect("a Deployment");
    serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone())
        .expect("string args")
}

/// The object without the labels Helm adds, and without its container arguments (compared on
/// their own).
fn comparable(mut object: Value) -> Value {
    for pointer in [
        "/metadata/labels",
        "/spec/selector/matchLabels",
        "/spec/selector",
        "/spec/template/metadata/labels",
    ] {
        if let Some(Value::Object(labels)) = object.pointer_mut(pointer) {
            for label in HELM_LABELS {
                labels.remove(label);
            }
        }
    }
    if let Some(args) = object.pointer_mut("/spec/template/spec/containers/0/args") {
        args.take();
    }
    object
}

/// The flag of a command-line argument: `--qps` for `--qps=40`.
fn flag(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(flag, _)| flag)
}

/// `sluice controller`'s defaults by flag, from its `--help`.
fn controller_defaults() -> BTreeMap<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["controller", "--help"])
        .output()
        .expect("running sluice");
    assert!(output.status.success());
    let mut defaults = BTreeMap::new();
    let mut current = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let line = line.trim();
        if line.starts_with("--") {
            current = line.split([' ', ',']).next().map(str::to_owned);
        } else if let Some(value) = line
            .strip_prefix("[default: ")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            let flag = current.clone().expect("a default after a flag");
            defaults.insert(flag, value.to_owned());
        }
    }
    assert!(defaults.len() >= 10, "{defaults:?}");
    defaults
}

/// `sluice` accepts the arguments (each flag exists and its value parses): clap checks them
/// before printing the help that ends the command line.
fn assert_sluice_accepts(args: &[String]) {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg("--help")
        .output()
        .expect("running sluice");
    assert!(
        output.status.success(),
        "sluice {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_helm_chart_lints() {
    for values in [&[][..], &["namespaced=true", "instanceId=blue"][..]] {
        let mut args = vec!["lint", CHART, "--strict"];
        args.extend(helm_sets(values));
        let output = helm(&args);
        assert!(
            output.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{output}"
        );
    }
}

/// `helm package` stores the linked CRDs and files: the archive renders what the directory does,
/// the CRDs included, and holds no kustomization.
#[test]
fn the_packaged_helm_chart_renders_as_the_directory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let destination = dir.path().to_str().expect("a UTF-8 path");
    let output = helm(&["package", CHART, "--destination", destination]);
    let archive = dir.path().join("sluice-0.1.0.tgz");
    assert!(archive.is_file(), "{output}");
    let archive = archive.to_str().expect("a UTF-8 path");
    for values in [&[][..], &["namespaced=true"][..]] {
        let packaged = helm_template_chart(archive, values);
        assert_eq!(packaged, helm_template(values), "{values:?}");
        let crds = packaged
            .iter()
            .filter(|object| object["kind"] == "CustomResourceDefinition")
            .count();
        assert_eq!(crds, crd_files().len());
    }
    let listing = Command::new("tar")
        .args(["-tzf", archive])
        .output()
        .expect("running tar");
    assert!(listing.status.success());
    let files = String::from_utf8_lossy(&listing.stdout);
    assert!(files.contains("sluice/files/clusterrole.yaml"), "{files}");
    assert!(!files.contains("Kustomization"), "{files}");
}

/// With default values the chart renders, as release `sluice` in the namespace `sluice`, exactly
/// the objects of the kustomize install (cluster-wide, and with `namespaced=true` the namespaced
/// overlay) but the Namespace, which `helm install --create-namespace` creates: the same CRDs,
/// RBAC rules (read from deploy/'s files), plugin ConfigMap, Deployment and Service, with Helm's
/// labels added. The controller's arguments keep the kustomize ones in order; the others the chart
/// passes are the controller's own defaults.
#[test]
fn the_helm_chart_renders_the_kustomize_install() {
    let defaults = controller_defaults();
    for (values, dir) in [
        (&[][..], "deploy"),
        (&["namespaced=true"][..], "deploy/namespaced"),
    ] {
        let chart = helm_template(values);
        let kustomize: Vec<Value> = render(&root().join(dir))
            .into_iter()
            .filter(|object| object["kind"] != "Namespace")
            .collect();

        let chart_args = deployment_args(&chart);
        let kustomize_args = deployment_args(&kustomize);
        let kustomize_flags: BTreeSet<&str> = kustomize_args.iter().map(|a| flag(a)).collect();
        let (shared, added): (Vec<&String>, Vec<&String>) = chart_args
            .iter()
            .partition(|arg| kustomize_flags.contains(flag(arg)));
        assert_eq!(shared, kustomize_args.iter().collect::<Vec<_>>(), "{dir}");
        assert!(added.len() >= 7, "{added:?}");
        for arg in added {
            let (flag, value) = arg.split_once('=').expect("--flag=value");
            assert_eq!(
                defaults.get(flag),
                Some(&value.to_owned()),
                "{arg} is not the controller's default"
            );
        }
        assert_sluice_accepts(&chart_args);

        let mut chart: Vec<Value> = chart.into_iter().map(comparable).collect();
        let mut kustomize: Vec<Value> = kustomize.into_iter().map(comparable).collect();
        chart.sort_by_key(object_key);
        kustomize.sort_by_key(object_key);
        let keys = |objects: &[Value]| objects.iter().map(object_key).collect::<Vec<_>>();
        assert_eq!(keys(&chart), keys(&kustomize), "{dir}");
        for (ours, theirs) in chart.iter().zip(&kustomize) {
            assert_eq!(ours, theirs, "{}", object_key(ours));
        }

        let config_map = chart
            .iter()
            .find(|object| object["kind"] == "ConfigMap")
            .expect("the plugin ConfigMap");
        let data: BTreeMap<String, String> =
            serde_json::from_value(config_map["data"].clone()).expect("string data");
        assert_eq!(data, sluice_builtins::default_plugin_config(), "{dir}");
    }
}

/// Values reach the controller's arguments, ports and plugin ConfigMap: a plugin entry replaces
/// the built-in of the same name and a new one is added after the built-ins.
#[test]
fn helm_values_reach_the_controller() {
    let objects = helm_template(&[
        "logLevel=debug",
        "logFormat=text",
        "qps=12",
        "burst=24",
        "instanceId=blue",
        "leaderElection.enabled=false",
        "leaderElection.retryPeriod=1s",
        "ports.metrics=9100",
        "replicaCount=2",
        "image.tag=dev",
        "extraArgs[0]=--namespace=sluice",
        "pluginConfigMap.name=sluice-plugins",
        "plugins.metricProviderPlugins[0].name=prometheus",
        "plugins.metricProviderPlugins[0].location=builtin:prometheus",
        "plugins.metricProviderPlugins[0].type=Prometheus",
        "plugins.metricProviderPlugins[0].grants.http[0]=http://prometheus.monitoring:9090",
        "plugins.stepPlugins[0].name=example/freeze",
        "plugins.stepPlugins[0].location=file:///plugins/freeze.wasm",
        "plugins.stepPlugins[0].type=Freeze",
    ]);
    let args = deployment_args(&objects);
    assert_eq!(
        args,
        [
            "controller",
            "--metrics-port=9100",
            "--healthz-port=8080",
            "--plugin-configmap=sluice-plugins",
            "--logformat=text",
            "--loglevel=debug",
            "--qps=12",
            "--burst=24",
            "--leader-elect=false",
            "--leader-election-lease-duration=15s",
            "--leader-election-renew-deadline=10s",
            "--leader-election-retry-period=1s",
            "--instance-id=blue",
            "--namespace=sluice",
        ]
    );
    assert_sluice_accepts(&args);
    let find = |kind: &str| {
        objects
            .iter()
            .find(|object| object["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let deployment = find("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "ghcr.io/sluice-rollouts/sluice:dev");
    assert_eq!(container["ports"][1]["containerPort"], 9100);
    assert_eq!(find("Service")["spec"]["ports"][0]["port"], 9100);

    let config_map = find("ConfigMap");
    assert_eq!(config_map["metadata"]["name"], "sluice-plugins");
    let data: BTreeMap<String, String> =
        serde_json::from_value(config_map["data"].clone()).expect("string data");
    let defaults = sluice_builtins::default_plugin_config();
    assert_eq!(
        data[TRAFFIC_ROUTER_PLUGINS_KEY], defaults[TRAFFIC_ROUTER_PLUGINS_KEY],
        "untouched keys keep the built-ins' text"
    );
    let config = parse_plugin_config(&data, &Limits::default()).expect("a valid plugin config");
    assert!(config.invalid.is_empty(), "{:?}", config.invalid);
    let names: Vec<&str> = config
        .entries
        .iter()
        .map(|entry| entry.spec.name.as_str())
        .collect();
    assert_eq!(names.len(), BUILTINS.len() + 1, "{names:?}");
    assert!(names.contains(&"example/freeze"), "{names:?}");
    let prometheus = config
        .entries
        .iter()
        .find(|entry| entry.spec.name == "prometheus")
        .expect("prometheus");
    let origins: Vec<String> = prometheus
        .spec
        .grants
        .http
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        origins,
        ["http://prometheus.monitoring:9090"],
        "the entry replaced the built-in's grants"
    );
    assert!(prometheus.spec.grants.http_from_config.is_empty());
}

/// Whether the API server lets `user` do `verb` on `resource` (of `group`) in `namespace`.
async fn allowed_to(
    client: &Client,
    user: &str,
    namespace: &str,
    (group, resource, verb): &(String, String, String),
) -> bool {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {"user": user, "resourceAttributes": {
            "namespace": namespace, "group": group, "resource": resource,
            "subresource": subresource, "verb": verb}}
    }))
    .expect("a review");
    let review = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SubjectAccessReview");
    review.status.expect("a review status").allowed
}

/// The chart's objects pass a server-side dry run (both value sets), and `helm install`s into the
/// local cluster: with `namespaced=true` its ServiceAccount may do everything the ClusterRole
/// allows in its own namespace (where it also holds the Lease and reads ConfigMaps), nothing in
/// another namespace, and read ClusterAnalysisTemplates; `helm upgrade` changes the controller's
/// arguments and `helm uninstall` removes the release again.
#[tokio::test]
async fn the_api_server_accepts_the_helm_chart() {
    let cluster = LocalCluster::shared();
    let admin = cluster.client().expect("client");
    create_sluice_namespace(&admin).await;
    for values in [&[][..], &["namespaced=true"][..]] {
        let objects = helm_template(values);
        assert!(objects.len() >= 13, "{values:?}: {} objects", objects.len());
        apply_all(&admin, &objects, true).await;
    }

    let kubeconfig = cluster.kubeconfig_path().to_str().expect("a UTF-8 path");
    let (release, namespace) = ("sluice-helm", "sluice-helm");
    let mut install = vec![
        "install",
        release,
        CHART,
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        namespace,
        "--create-namespace",
    ];
    install.extend(helm_sets(&["namespaced=true", "instanceId=helm"]));
    let output = helm(&install);
    assert!(output.contains("STATUS: deployed"), "{output}");
    assert!(
        output.contains("watches Rollouts in sluice-helm only"),
        "{output}"
    );
    let listed = helm(&["list", "--kubeconfig", kubeconfig, "-n", namespace, "-q"]);
    assert_eq!(listed.trim(), release);

    let user = format!("system:serviceaccount:{namespace}:{release}-controller");
    let rules = cluster_role_rules();
    for rule in &rules {
        assert!(
            allowed_to(&admin, &user, namespace, rule).await,
            "{user} may not {rule:?} in {namespace}"
        );
        let cluster_scoped = rule.1 == "clusteranalysistemplates";
        assert_eq!(
            allowed_to(&admin, &user, "default", rule).await,
            cluster_scoped,
            "{user} {rule:?} outside {namespace}"
        );
    }
    for rule in [
        ("", "configmaps", "watch"),
        ("coordination.k8s.io", "leases", "update"),
    ] {
        let rule = (rule.0.to_owned(), rule.1.to_owned(), rule.2.to_owned());
        assert!(
            allowed_to(&admin, &user, namespace, &rule).await,
            "{rule:?}"
        );
    }
    let deployments =
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(admin.clone(), namespace);
    let installed_args = || async {
        let deployment = deployments
            .get(&format!("{release}-controller"))
            .await
            .expect("the installed Deployment");
        deployment
            .spec
            .and_then(|spec| spec.template.spec)
            .and_then(|pod| pod.containers[0].args.clone())
            .expect("container args")
    };
    let args = installed_args().await;
    assert!(args.iter().any(|a| a == "--namespaced"), "{args:?}");
    assert!(args.iter().any(|a| a == "--instance-id=helm"), "{args:?}");
    assert!(args.iter().any(|a| a == "--loglevel=info"), "{args:?}");

    let mut upgrade = vec![
        "upgrade",
        release,
        CHART,
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        namespace,
        "--reuse-values",
    ];
    upgrade.extend(helm_sets(&["logLevel=debug"]));
    let output = helm(&upgrade);
    assert!(output.contains("REVISION: 2"), "{output}");
    let args = installed_args().await;
    assert!(args.iter().any(|a| a == "--loglevel=debug"), "{args:?}");
    assert!(args.iter().any(|a| a == "--namespaced"), "{args:?}");

    helm(&[
        "uninstall",
        release,
        "--kubeconfig",
        kubeconfig,
        "-n",
        namespace,
    ]);
    let rule = (
        "argoproj.io".to_owned(),
        "rollouts".to_owned(),
        "list".to_owned(),
    );
    assert!(
        !allowed_to(&admin, &user, namespace, &rule).await,
        "the uninstalled release's Role is gone"
    );
}
