//! The third-party objects traffic routers patch: Gateway API routes, Istio VirtualService and
//! DestinationRule (from `tests/crds/`), and Ingress (built into 1.20).

use anyhow::ensure;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

use crate::support::cluster;

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

async fn create(
    api: &Api<DynamicObject>,
    resource: &ApiResource,
    name: &str,
    spec: Value,
) -> anyhow::Result<DynamicObject> {
    let mut object = DynamicObject::new(name, resource);
    object.data = json!({ "spec": spec });
    Ok(api.create(&PostParams::default(), &object).await?)
}

fn route_spec(stable_weight: i64, canary_weight: i64) -> Value {
    json!({
        "parentRefs": [{"name": "gateway", "namespace": "infra"}],
        "hostnames": ["app.example"],
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [
                {"name": "app-stable", "port": 80, "weight": stable_weight},
                {"name": "app-canary", "port": 80, "weight": canary_weight},
            ],
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_routes_can_be_created_and_patched() -> anyhow::Result<()> {
    let ns = cluster().namespace("gateway-api").await?;
    let group = "gateway.networking.k8s.io";

    let http = resource(group, "v1", "HTTPRoute", "httproutes");
    let routes = ns.dynamic_api(&http);
    create(&routes, &http, "app", route_spec(100, 0)).await?;
    // A router shifts weight with a JSON patch on the backendRefs.
    let shift = json!([
        {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 80},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 20},
    ]);
    let patched = routes
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(shift)?),
        )
        .await?;
    let refs = &patched.data["spec"]["rules"][0]["backendRefs"];
    ensure!(refs[0]["weight"] == 80 && refs[1]["weight"] == 20, "{refs}");
    ensure!(
        patched.data["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/",
        "unknown fields preserved: {}",
        patched.data
    );
    let merged = routes
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"sluice.dev/managed": "true"}}})),
        )
        .await?;
    ensure!(
        merged.metadata.generation == Some(2),
        "only the weight change bumps generation"
    );
    let status = json!({"status": {"parents": [{"parentRef": {"name": "gateway"}, "controllerName": "example.dev/gw", "conditions": []}]}});
    routes
        .patch_status("app", &PatchParams::default(), &Patch::Merge(&status))
        .await?;

    // The older served version reads the same object.
    let beta = ns.dynamic_api(&resource(group, "v1beta1", "HTTPRoute", "httproutes"));
    let via_beta = beta.get("app").await?;
    ensure!(via_beta.data["spec"]["rules"][0]["backendRefs"][1]["weight"] == 20);

    for (version, kind, plural) in [
        ("v1", "GRPCRoute", "grpcroutes"),
        ("v1alpha2", "TCPRoute", "tcproutes"),
        ("v1", "TCPRoute", "tcproutes"),
    ] {
        let res = resource(group, version, kind, plural);
        let api = ns.dynamic_api(&res);
        let name = format!("app-{version}");
        create(&api, &res, &name, json!({
            "parentRefs": [{"name": "gateway"}],
            "rules": [{"backendRefs": [{"name": "app-stable", "port": 80, "weight": 100}, {"name": "app-canary", "port": 80, "weight": 0}]}],
        }))
        .await?;
        let patched = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"rules": [{"backendRefs": [
                {"name": "app-stable", "port": 80, "weight": 50}, {"name": "app-canary", "port": 80, "weight": 50}]}]}})))
            .await?;
        ensure!(
            patched.data["spec"]["rules"][0]["backendRefs"][1]["weight"] == 50,
            "{kind} {version}: {}",
            patched.data
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_virtual_services_and_destination_rules_can_be_created_and_patched()
-> anyhow::Result<()> {
    let ns = cluster().namespace("istio").await?;
    let group = "networking.istio.io";
    for version in ["v1beta1", "v1alpha3"] {
        let vs = resource(group, version, "VirtualService", "virtualservices");
        let api = ns.dynamic_api(&vs);
        let name = format!("app-{version}");
        create(&api, &vs, &name, json!({
            "hosts": ["app"],
            "gateways": ["mesh"],
            "http": [{
                "name": "primary",
                "match": [{"uri": {"prefix": "/"}}],
                "route": [
                    {"destination": {"host": "app-stable", "port": {"number": 80}}, "weight": 100},
                    {"destination": {"host": "app-canary", "port": {"number": 80}}, "weight": 0},
                ],
                "retries": {"attempts": 3},
            }],
        }))
        .await?;
        let shift = json!([
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 90},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 10},
        ]);
        let patched = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Json::<()>(serde_json::from_value(shift)?),
            )
            .await?;
        let route = &patched.data["spec"]["http"][0]["route"];
        ensure!(
            route[0]["weight"] == 90 && route[1]["weight"] == 10,
            "{version}: {route}"
        );
        ensure!(
            patched.data["spec"]["http"][0]["retries"]["attempts"] == 3,
            "unknown fields preserved"
        );
    }

    let dr = resource(group, "v1beta1", "DestinationRule", "destinationrules");
    let rules = ns.dynamic_api(&dr);
    create(
        &rules,
        &dr,
        "app",
        json!({
            "host": "app",
            "subsets": [{"name": "stable", "labels": {"rollouts-pod-template-hash": "abc"}},
                        {"name": "canary", "labels": {"rollouts-pod-template-hash": "def"}}],
        }),
    )
    .await?;
    let patched = rules
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"sluice.dev/managed-by": "rollout"}}}),
            ),
        )
        .await?;
    ensure!(patched.data["spec"]["subsets"][1]["labels"]["rollouts-pod-template-hash"] == "def");
    let alpha = ns.dynamic_api(&resource(
        group,
        "v1alpha3",
        "DestinationRule",
        "destinationrules",
    ));
    let json_patch = json!([{"op": "replace", "path": "/spec/subsets/1/labels/rollouts-pod-template-hash", "value": "xyz"}]);
    let via_alpha = alpha
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json_patch)?),
        )
        .await?;
    ensure!(via_alpha.data["spec"]["subsets"][1]["labels"]["rollouts-pod-template-hash"] == "xyz");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_can_be_created_and_patched() -> anyhow::Result<()> {
    let ns = cluster().namespace("ingress").await?;
    let ingresses: Api<Ingress> = ns.api();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "app", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {"rules": [{"host": "app.example", "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "app-stable", "port": {"number": 80}}},
        }]}}]},
    }))?;
    ingresses.create(&PostParams::default(), &ingress).await?;

    // The NGINX router creates a canary Ingress and patches its weight annotation.
    let mut canary = ingress.clone();
    canary.metadata.name = Some("app-canary".to_owned());
    canary.metadata.annotations = Some(
        [
            ("kubernetes.io/ingress.class".to_owned(), "nginx".to_owned()),
            (
                "nginx.ingress.kubernetes.io/canary".to_owned(),
                "true".to_owned(),
            ),
            (
                "nginx.ingress.kubernetes.io/canary-weight".to_owned(),
                "0".to_owned(),
            ),
        ]
        .into(),
    );
    if let Some(rule) = canary
        .spec
        .as_mut()
        .and_then(|s| s.rules.as_mut())
        .and_then(|r| r.first_mut())
        && let Some(path) = rule.http.as_mut().and_then(|h| h.paths.first_mut())
        && let Some(service) = path.backend.service.as_mut()
    {
        service.name = "app-canary".to_owned();
    }
    ingresses.create(&PostParams::default(), &canary).await?;
    let patched = ingresses
        .patch("app-canary", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "25"}}})))
        .await?;
    let weight = patched
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("nginx.ingress.kubernetes.io/canary-weight"));
    ensure!(weight.map(String::as_str) == Some("25"), "{weight:?}");
    let backend = patched
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .and_then(|r| r[0].http.as_ref())
        .and_then(|h| h.paths[0].backend.service.as_ref())
        .map(|s| s.name.clone());
    ensure!(backend.as_deref() == Some("app-canary"), "{backend:?}");

    // Server-side apply of an Ingress works too.
    let applied = ingresses
        .patch("app-canary", &PatchParams::apply("sluice").force(), &Patch::Apply(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "app-canary", "namespace": ns.name(), "annotations": {"nginx.ingress.kubernetes.io/canary-weight": "50"}},
        })))
        .await?;
    ensure!(
        applied
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("nginx.ingress.kubernetes.io/canary-weight"))
            .map(String::as_str)
            == Some("50")
    );
    Ok(())
}
