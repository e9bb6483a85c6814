//! The demo application: CRDs, two Services, an HTTPRoute, an AnalysisTemplate querying Prometheus and a canary Rollout routed through the
//! Gateway API plugin.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice_api::analysis::AnalysisTemplate;
use sluice_api::rollout::Rollout;
use sluice_localcluster::LocalCluster;

/// The namespace of the demo app (the kubeconfig's default namespace).
pub const NAMESPACE: &str = "default";
/// The Rollout.
pub const ROLLOUT: &str = "demo";
/// The Service the stable ReplicaSet serves behind.
pub const STABLE_SERVICE: &str = "demo-stable";
/// The Service the canary ReplicaSet serves behind.
pub const CANARY_SERVICE: &str = "demo-canary";
/// The HTTPRoute splitting traffic between the two Services.
pub const ROUTE: &str = "demo";
/// The container whose image changes between versions.
pub const CONTAINER: &str = "app";
/// The AnalysisTemplate run at the analysis step.
pub const TEMPLATE: &str = "error-rate";
/// The error ratio above which the analysis fails.
pub const MAX_ERROR_RATIO: f64 = 0.05;
/// The Prometheus rate window of the analysis query and the displayed error rates.
pub const RATE_WINDOW: &str = "15s";
const IMAGE_REPOSITORY: &str = "ghcr.io/sluice-rollouts/demo-app";
/// The Gateway API CRDs (HTTPRoute, GRPCRoute, TCPRoute) without CEL rules, for Kubernetes 1.20.
const GATEWAY_API_CRDS: &str = include_str!("../../../../tests/crds/gateway-api.yaml");

/// The demo app's image at `version`.
pub fn image(version: &str) -> String {
    format!("{IMAGE_REPOSITORY}:{version}")
}

/// The version (image tag) of an image reference.
pub fn version_of(image: &str) -> &str {
    image.rsplit_once(':').map_or(image, |(_, tag)| tag)
}

/// The HTTPRoute resource (`gateway.networking.k8s.io/v1`).
pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// Installs Sluice's CRDs and the Gateway API route CRDs, waiting until they are served.
pub async fn install_crds(cluster: &LocalCluster) -> anyhow::Result<()> {
    let sluice: Vec<String> = sluice_api::crd::all()
        .iter()
        .map(sluice_api::crd::to_yaml)
        .collect();
    cluster
        .install_crd_yaml(&sluice.join("---\n"))
        .await
        .context("installing Sluice's CRDs")?;
    cluster
        .install_crd_yaml(GATEWAY_API_CRDS)
        .await
        .context("installing the Gateway API CRDs")?;
    Ok(())
}

/// The analysis query: the canary ReplicaSet's share of HTTP 5xx answers over the rate window.
pub fn error_ratio_query(hash: &str) -> String {
    let series =
        format!("http_requests_total{{service=\"{ROLLOUT}\",rollouts_pod_template_hash=\"{hash}\"");
    format!(
        "sum(rate({series},code=~\"5..\"}}[{RATE_WINDOW}])) / sum(rate({series}}}[{RATE_WINDOW}]))"
    )
}

/// Deploys the app at `version`: the Services, the HTTPRoute, the AnalysisTemplate and the
/// Rollout.
pub async fn deploy(client: &Client, prometheus_url: &str, version: &str) -> anyhow::Result<()> {
    let services = Api::<Service>::namespaced(client.clone(), NAMESPACE);
    for name in [STABLE_SERVICE, CANARY_SERVICE] {
        create(
            &services,
            json!({
                "metadata": {"name": name},
                "spec": {"selector": {"app": ROLLOUT}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            }),
        )
        .await?;
    }
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": ROUTE},
        "spec": {
            "parentRefs": [{"name": "demo-gateway"}],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"name": STABLE_SERVICE, "port": 80, "weight": 100},
                    {"name": CANARY_SERVICE, "port": 80, "weight": 0},
                ],
            }],
        },
    }))?;
    Api::<DynamicObject>::namespaced_with(client.clone(), NAMESPACE, &http_route_resource())
        .create(&PostParams::default(), &route)
        .await
        .context("creating the HTTPRoute")?;
    create(
        &Api::<AnalysisTemplate>::namespaced(client.clone(), NAMESPACE),
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": TEMPLATE},
            "spec": {
                "args": [{"name": "canary-hash"}],
                "metrics": [{
                    "name": "error-rate",
                    "initialDelay": "3s",
                    "interval": "2s",
                    "count": 3,
                    "successCondition": format!("result[0] <= {MAX_ERROR_RATIO}"),
                    "failureLimit": 0,
                    "provider": {"prometheus": {
                        "address": prometheus_url,
                        "query": error_ratio_query("{{args.canary-hash}}"),
                    }},
                }],
            },
        }),
    )
    .await?;
    create(
        &Api::<Rollout>::namespaced(client.clone(), NAMESPACE),
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": ROLLOUT},
            "spec": {
                "replicas": 4,
                "revisionHistoryLimit": 2,
                "selector": {"matchLabels": {"app": ROLLOUT}},
                "template": {
                    "metadata": {"labels": {"app": ROLLOUT}},
                    "spec": {"containers": [{
                        "name": CONTAINER,
                        "image": image(version),
                        "ports": [{"name": "http", "containerPort": 8080}],
                    }]},
                },
                "strategy": {"canary": {
                    "canaryService": CANARY_SERVICE,
                    "stableService": STABLE_SERVICE,
                    "scaleDownDelaySeconds": 3,
                    "abortScaleDownDelaySeconds": 3,
                    "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": ROUTE}}},
                    "steps": [
                        {"setWeight": 20},
                        {"pause": {"duration": "2s"}},
                        {"analysis": {
                            "templates": [{"templateName": TEMPLATE}],
                            "args": [{"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
                        }},
                        {"setWeight": 60},
                        {"pause": {"duration": "2s"}},
                    ],
                }},
            },
        }),
    )
    .await
}

/// Creates an object given as JSON (its `apiVersion` and `kind` are filled in).
async fn create<K>(api: &Api<K>, mut object: Value) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    object["apiVersion"] = K::api_version(&()).into();
    object["kind"] = K::kind(&()).into();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let typed: K = serde_json::from_value(object)
        .with_context(|| format!("building {} {name}", K::kind(&())))?;
    api.create(&PostParams::default(), &typed)
        .await
        .with_context(|| format!("creating {} {name}", K::kind(&())))?;
    Ok(())
}
