//! YAML scenarios: fixtures, calls and expectations, runnable without writing Rust
//! (`sluice plugin test SCENARIO.yaml`). The format is documented in `host/testkit/README.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use sluice_runtime::{
    AnalysisPhase, CallError, HeaderMatch, HeaderRoute, LimitsSpec, Measurement, MirrorRoute,
    RouteMatch, StepPhase, StringMatch, Verification, WeightDestination,
};

use crate::{
    HarnessError, PluginHarness, PluginKind, analysis_context, rollout_context, step_context,
};

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// Path of the `.wasm` component, relative to the scenario file.
    pub plugin: PathBuf,
    /// `traffic-router`, `metric-provider` or `step`.
    pub kind: PluginKind,
    /// Plugin name (default: the file name).
    #[serde(default)]
    pub name: Option<String>,
    /// Grants, as in the plugin ConfigMap.
    #[serde(default)]
    pub grants: Option<Value>,
    /// Limits, as in the plugin ConfigMap.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Kubernetes objects to seed.
    #[serde(default)]
    pub kube: KubeFixtures,
    /// Scripted HTTP responses.
    #[serde(default)]
    pub http: Vec<HttpFixture>,
    /// Calls, in order.
    pub calls: Vec<Call>,
    /// Expected Kubernetes state after the calls.
    #[serde(default)]
    pub expect_kube: Vec<KubeExpectation>,
}

/// Seed objects.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeFixtures {
    /// Inline objects.
    #[serde(default)]
    pub objects: Vec<Value>,
    /// YAML files (relative to the scenario file).
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

/// One scripted response.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFixture {
    /// Method (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// Exact URL.
    pub url: String,
    /// Status (default 200).
    #[serde(default)]
    pub status: Option<u16>,
    /// Body text.
    #[serde(default)]
    pub body: String,
}

/// One call and what it should return.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Call {
    /// WIT method name, e.g. `set-weight`, `run`.
    pub method: String,
    /// Rollout fields for traffic-router methods.
    #[serde(default)]
    pub rollout: Option<RolloutSpec>,
    /// AnalysisRun fields for metric-provider methods.
    #[serde(default)]
    pub analysis: Option<AnalysisSpec>,
    /// Rollout step fields for step-plugin methods.
    #[serde(default)]
    pub step: Option<StepSpec>,
    /// Method arguments, e.g. `{desiredWeight: 30}`, `{canaryHash, stableHash}`, `{route: …}`,
    /// `{measurement: …}`, `{limit: 5}`.
    #[serde(default)]
    pub args: Value,
    /// The expected result.
    pub expect: Expectation,
}

/// Rollout fields of a context.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutSpec {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Plugin config (any YAML; passed as JSON).
    #[serde(default)]
    pub plugin_config: Value,
    /// Canary Service.
    #[serde(default)]
    pub canary_service: Option<String>,
    /// Stable Service.
    #[serde(default)]
    pub stable_service: Option<String>,
}

/// Rollout step fields of a step context.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepSpec {
    /// Namespace.
    pub namespace: String,
    /// Rollout name.
    pub name: String,
    /// Step index.
    #[serde(default)]
    pub step_index: u32,
    /// Plugin config (any YAML; passed as JSON).
    #[serde(default)]
    pub plugin_config: Value,
    /// The plugin's status from its previous `run` (any YAML; passed as JSON; absent: none).
    #[serde(default)]
    pub status: Option<Value>,
}

/// AnalysisRun fields of a context.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalysisSpec {
    /// Namespace.
    pub namespace: String,
    /// AnalysisRun name.
    pub analysis_run: String,
    /// Metric name.
    pub metric_name: String,
    /// Plugin config (any YAML; passed as JSON).
    #[serde(default)]
    pub plugin_config: Value,
}

/// Expected outcome of a call.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    /// The call succeeds.
    #[serde(default)]
    pub ok: Option<bool>,
    /// The call succeeds and its value contains this (subset match on the JSON form).
    #[serde(default)]
    pub value: Option<Value>,
    /// The call fails with this error.
    #[serde(default)]
    pub error: Option<ErrorExpectation>,
}

/// Expected error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorExpectation {
    /// [`CallError::kind`], e.g. `access_denied`, `timeout`.
    pub kind: String,
    /// Text the message must contain.
    #[serde(default)]
    pub contains: Option<String>,
}

/// Expected state of one object.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeExpectation {
    /// apiVersion.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (absent for cluster-scoped).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The object must contain this (subset match).
    #[serde(default)]
    pub contains: Option<Value>,
    /// The object must not exist.
    #[serde(default)]
    pub absent: bool,
}

/// What happened to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReport {
    /// The method.
    pub method: String,
    /// `{"ok": value}` or `{"error": {"kind", "message"}}`.
    pub outcome: Value,
    /// Unmet expectations (empty: passed).
    pub failures: Vec<String>,
}

/// The result of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The scenario file.
    pub path: PathBuf,
    /// Per-call results.
    pub calls: Vec<CallReport>,
    /// Unmet kube expectations.
    pub kube_failures: Vec<String>,
    /// Number of host calls recorded.
    pub host_calls: usize,
}

impl Report {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.kube_failures.is_empty() && self.calls.iter().all(|c| c.failures.is_empty())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "scenario {}", self.path.display())?;
        for call in &self.calls {
            let mark = if call.failures.is_empty() {
                "ok  "
            } else {
                "FAIL"
            };
            writeln!(f, "  {mark} {} -> {}", call.method, call.outcome)?;
            for failure in &call.failures {
                writeln!(f, "       {failure}")?;
            }
        }
        for failure in &self.kube_failures {
            writeln!(f, "  FAIL kube: {failure}")?;
        }
        let passed = self.calls.iter().filter(|c| c.failures.is_empty()).count();
        let failed = self.calls.len() - passed + usize::from(!self.kube_failures.is_empty());
        write!(
            f,
            "{passed} passed, {failed} failed ({} host calls)",
            self.host_calls
        )
    }
}

/// Why a scenario could not run (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("invalid scenario {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The harness could not be set up or the plugin did not load.
    #[error(transparent)]
    Harness(#[from] HarnessError),
}

/// Reads and runs a scenario file on a fresh current-thread tokio runtime.
pub fn run_file(path: impl AsRef<Path>) -> Result<Report, ScenarioError> {
    let path = path.as_ref();
    block_on(path, run_file_async(path))
}

/// Reads and runs a scenario file with the component at `plugin` instead of the one its
/// `plugin:` field names, e.g. one just built from the workspace.
pub fn run_file_with_plugin(
    path: impl AsRef<Path>,
    plugin: impl AsRef<Path>,
) -> Result<Report, ScenarioError> {
    let path = path.as_ref();
    let mut scenario = read(path)?;
    scenario.plugin = plugin.as_ref().to_path_buf();
    block_on(path, run(scenario, base_of(path), path))
}

/// Reads and runs a scenario file (inside an existing tokio runtime).
pub async fn run_file_async(path: &Path) -> Result<Report, ScenarioError> {
    run(read(path)?, base_of(path), path).await
}

fn read(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|e| ScenarioError::Invalid {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn base_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Runs `future` on a fresh current-thread tokio runtime.
fn block_on(
    path: &Path,
    future: impl std::future::Future<Output = Result<Report, ScenarioError>>,
) -> Result<Report, ScenarioError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?
        .block_on(future)
}

/// Runs a parsed scenario; relative paths resolve against `base`.
pub async fn run(scenario: Scenario, base: &Path, path: &Path) -> Result<Report, ScenarioError> {
    let invalid = |reason: String| ScenarioError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let mut harness = PluginHarness::new(scenario.kind, base.join(&scenario.plugin))?;
    if let Some(name) = &scenario.name {
        harness = harness.name(name);
    }
    if let Some(grants) = &scenario.grants {
        harness = harness
            .grants_yaml(&serde_yaml::to_string(grants).map_err(|e| invalid(e.to_string()))?)?;
    }
    let limits = scenario
        .limits
        .resolve(&sluice_runtime::Limits::default())
        .map_err(|e| invalid(e.to_string()))?;
    harness = harness.limits(limits);
    for object in scenario.kube.objects {
        harness.kube().insert(object).map_err(HarnessError::from)?;
    }
    for file in &scenario.kube.files {
        harness
            .kube()
            .load_yaml_file(&base.join(file))
            .map_err(HarnessError::from)?;
    }
    for fixture in &scenario.http {
        let method = fixture.method.as_deref().unwrap_or("GET");
        harness.http().respond(
            method,
            &fixture.url,
            fixture.status.unwrap_or(200),
            &fixture.body,
        );
    }
    let mut calls = Vec::new();
    match scenario.kind {
        PluginKind::TrafficRouter => {
            let router = harness.load_router().await?;
            for call in &scenario.calls {
                let outcome = router_call(&router, call).await.map_err(invalid)?;
                calls.push(check(call, outcome));
            }
        }
        PluginKind::MetricProvider => {
            let provider = harness.load_provider().await?;
            for call in &scenario.calls {
                let outcome = provider_call(&provider, call).await.map_err(invalid)?;
                calls.push(check(call, outcome));
            }
        }
        PluginKind::Step => {
            let step = harness.load_step().await?;
            for call in &scenario.calls {
                let outcome = step_call(&step, call).await.map_err(invalid)?;
                calls.push(check(call, outcome));
            }
        }
    }
    let kube_failures = scenario
        .expect_kube
        .iter()
        .filter_map(|e| check_kube(&harness, e))
        .collect();
    Ok(Report {
        path: path.to_owned(),
        calls,
        kube_failures,
        host_calls: harness.exchanges().len(),
    })
}

fn outcome<T>(result: Result<T, CallError>, to_json: impl FnOnce(T) -> Value) -> Value {
    match result {
        Ok(value) => json!({ "ok": to_json(value) }),
        Err(error) => json!({ "error": { "kind": error.kind(), "message": error.to_string() } }),
    }
}

fn config_json(value: &Value) -> String {
    if value.is_null() {
        "{}".to_owned()
    } else {
        value.to_string()
    }
}

fn arg<T: serde::de::DeserializeOwned + Default>(args: &Value, name: &str) -> Result<T, String> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(value) => {
            serde_json::from_value(value.clone()).map_err(|e| format!("args.{name}: {e}"))
        }
    }
}

async fn router_call(router: &sluice_runtime::TrafficRouter, call: &Call) -> Result<Value, String> {
    let spec = call.rollout.as_ref();
    let mut ctx = rollout_context(
        spec.map_or("default", |s| s.namespace.as_str()),
        spec.map_or("rollout", |s| s.name.as_str()),
        &spec.map_or_else(|| "{}".to_owned(), |s| config_json(&s.plugin_config)),
    );
    if let Some(spec) = spec {
        if let Some(service) = &spec.canary_service {
            ctx.canary_service.clone_from(service);
        }
        if let Some(service) = &spec.stable_service {
            ctx.stable_service.clone_from(service);
        }
    }
    let args = &call.args;
    let destinations: Vec<DestinationArg> = arg(args, "additionalDestinations")?;
    let destinations: Vec<WeightDestination> = destinations.into_iter().map(Into::into).collect();
    let unit = |()| Value::Null;
    Ok(match call.method.as_str() {
        "plugin-type" => outcome(router.plugin_type().await, Value::String),
        "init" => outcome(router.init().await, unit),
        "update-hash" => {
            let canary: String = arg(args, "canaryHash")?;
            let stable: String = arg(args, "stableHash")?;
            outcome(
                router
                    .update_hash(&ctx, &canary, &stable, &destinations)
                    .await,
                unit,
            )
        }
        "set-weight" => outcome(
            router
                .set_weight(&ctx, arg(args, "desiredWeight")?, &destinations)
                .await,
            unit,
        ),
        "verify-weight" => outcome(
            router
                .verify_weight(&ctx, arg(args, "desiredWeight")?, &destinations)
                .await,
            |v| Value::String(verification_name(v).into()),
        ),
        "set-header-route" => {
            let route: HeaderRouteArg = arg(args, "route")?;
            outcome(router.set_header_route(&ctx, &route.into()).await, unit)
        }
        "set-mirror-route" => {
            let route: MirrorRouteArg = arg(args, "route")?;
            outcome(router.set_mirror_route(&ctx, &route.into()).await, unit)
        }
        "remove-managed-routes" => outcome(router.remove_managed_routes(&ctx).await, unit),
        other => return Err(format!("unknown traffic-router method {other:?}")),
    })
}

async fn provider_call(
    provider: &sluice_runtime::MetricProvider,
    call: &Call,
) -> Result<Value, String> {
    let spec = call.analysis.as_ref();
    let ctx = analysis_context(
        spec.map_or("default", |s| s.namespace.as_str()),
        spec.map_or("analysis", |s| s.analysis_run.as_str()),
        spec.map_or("metric", |s| s.metric_name.as_str()),
        &spec.map_or_else(|| "{}".to_owned(), |s| config_json(&s.plugin_config)),
    );
    let args = &call.args;
    Ok(match call.method.as_str() {
        "plugin-type" => outcome(provider.plugin_type().await, Value::String),
        "init" => outcome(provider.init().await, |()| Value::Null),
        "run" => outcome(provider.run(&ctx).await, measurement_json),
        "resume" | "terminate" => {
            let current: MeasurementArg = arg(args, "measurement")?;
            let current = current.into_measurement()?;
            let result = if call.method == "resume" {
                provider.resume(&ctx, &current).await
            } else {
                provider.terminate(&ctx, &current).await
            };
            outcome(result, measurement_json)
        }
        "garbage-collect" => outcome(
            provider.garbage_collect(&ctx, arg(args, "limit")?).await,
            |()| Value::Null,
        ),
        "get-metadata" => outcome(provider.get_metadata(&ctx).await, |m| {
            Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
        }),
        other => return Err(format!("unknown metric-provider method {other:?}")),
    })
}

async fn step_call(step: &sluice_runtime::StepPlugin, call: &Call) -> Result<Value, String> {
    let spec = call.step.as_ref();
    let ctx = step_context(
        spec.map_or("default", |s| s.namespace.as_str()),
        spec.map_or("rollout", |s| s.name.as_str()),
        spec.map_or(0, |s| s.step_index),
        &spec.map_or_else(|| "{}".to_owned(), |s| config_json(&s.plugin_config)),
        &spec
            .and_then(|s| s.status.as_ref())
            .map(Value::to_string)
            .unwrap_or_default(),
    );
    Ok(match call.method.as_str() {
        "plugin-type" => outcome(step.plugin_type().await, Value::String),
        "init" => outcome(step.init().await, |()| Value::Null),
        "run" => outcome(step.run(&ctx).await, step_result_json),
        "terminate" => outcome(step.terminate(&ctx).await, step_result_json),
        "abort" => outcome(step.abort(&ctx).await, step_result_json),
        other => return Err(format!("unknown step method {other:?}")),
    })
}

fn step_result_json(result: sluice_runtime::StepResult) -> Value {
    let phase = match result.phase {
        StepPhase::Running => "Running",
        StepPhase::Successful => "Successful",
        StepPhase::Failed => "Failed",
    };
    json!({
        "phase": phase,
        "message": result.message,
        "requeueAfterMs": result.requeue_after_ms,
        "status": serde_json::from_str::<Value>(&result.status).unwrap_or(Value::Null),
    })
}

fn check(call: &Call, outcome: Value) -> CallReport {
    let mut failures = Vec::new();
    let expect = &call.expect;
    let succeeded = outcome.get("ok").is_some();
    if expect.ok == Some(true) && !succeeded {
        failures.push(format!("expected success, got {}", outcome["error"]));
    }
    if expect.ok == Some(false) && succeeded {
        failures.push("expected failure, got success".to_owned());
    }
    if let Some(wanted) = &expect.value {
        match outcome.get("ok") {
            Some(value) if contains(value, wanted) => {}
            Some(value) => failures.push(format!("value {value} does not contain {wanted}")),
            None => failures.push(format!(
                "expected value {wanted}, got error {}",
                outcome["error"]
            )),
        }
    }
    if let Some(wanted) = &expect.error {
        match outcome.get("error") {
            Some(error) => {
                if error["kind"] != wanted.kind.as_str() {
                    failures.push(format!(
                        "expected error kind {}, got {}",
                        wanted.kind, error["kind"]
                    ));
                }
                if let Some(text) = &wanted.contains
                    && !error["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(text.as_str())
                {
                    failures.push(format!(
                        "error message {} does not contain {text:?}",
                        error["message"]
                    ));
                }
            }
            None => failures.push(format!("expected error {}, got success", wanted.kind)),
        }
    }
    CallReport {
        method: call.method.clone(),
        outcome,
        failures,
    }
}

fn check_kube(harness: &PluginHarness, expectation: &KubeExpectation) -> Option<String> {
    let e = expectation;
    let object = harness
        .kube()
        .object(&e.api_version, &e.kind, e.namespace.as_deref(), &e.name);
    let what = format!(
        "{} {}/{}",
        e.kind,
        e.namespace.as_deref().unwrap_or("-"),
        e.name
    );
    match (object, e.absent) {
        (Some(_), true) => Some(format!("{what} exists but should not")),
        (None, false) => Some(format!("{what} does not exist")),
        (Some(object), false) => match &e.contains {
            Some(wanted) if !contains(&object, wanted) => Some(format!(
                "{what} is {object}, which does not contain {wanted}"
            )),
            _ => None,
        },
        (None, true) => None,
    }
}

/// Subset match: every key of `wanted` is in `actual` with a matching value; arrays match
/// element-wise with equal length; scalars must be equal.
pub fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(a), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        (Value::Array(a), Value::Array(w)) => {
            a.len() == w.len() && a.iter().zip(w).all(|(av, wv)| contains(av, wv))
        }
        _ => actual == wanted,
    }
}

fn verification_name(v: Verification) -> &'static str {
    match v {
        Verification::Verified => "verified",
        Verification::NotVerified => "not-verified",
        Verification::NotImplemented => "not-implemented",
    }
}

fn phase_name(phase: AnalysisPhase) -> &'static str {
    match phase {
        AnalysisPhase::Pending => "pending",
        AnalysisPhase::Running => "running",
        AnalysisPhase::Successful => "successful",
        AnalysisPhase::Failed => "failed",
        AnalysisPhase::Error => "error",
        AnalysisPhase::Inconclusive => "inconclusive",
    }
}

/// The JSON form of a measurement used in reports and expectations.
pub fn measurement_json(m: Measurement) -> Value {
    json!({
        "phase": phase_name(m.phase),
        "value": m.value,
        "message": m.message,
        "startedAt": m.started_at,
        "finishedAt": m.finished_at,
        "resumeAt": m.resume_at,
        "metadata": m.metadata.into_iter().collect::<BTreeMap<_, _>>(),
    })
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DestinationArg {
    service_name: String,
    #[serde(default)]
    pod_template_hash: String,
    weight: i32,
}

impl From<DestinationArg> for WeightDestination {
    fn from(d: DestinationArg) -> Self {
        Self {
            service_name: d.service_name,
            pod_template_hash: d.pod_template_hash,
            weight: d.weight,
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StringMatchArg {
    exact: Option<String>,
    prefix: Option<String>,
    regex: Option<String>,
}

impl From<StringMatchArg> for StringMatch {
    fn from(m: StringMatchArg) -> Self {
        match (m.exact, m.prefix, m.regex) {
            (_, Some(prefix), _) => Self::Prefix(prefix),
            (_, _, Some(regex)) => Self::Regex(regex),
            (exact, _, _) => Self::Exact(exact.unwrap_or_default()),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HeaderRouteArg {
    name: String,
    #[serde(default, rename = "match")]
    matches: Vec<HeaderMatchArg>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HeaderMatchArg {
    header_name: String,
    header_value: StringMatchArg,
}

impl From<HeaderRouteArg> for HeaderRoute {
    fn from(r: HeaderRouteArg) -> Self {
        Self {
            name: r.name,
            matches: r
                .matches
                .into_iter()
                .map(|m| HeaderMatch {
                    header_name: m.header_name,
                    value: m.header_value.into(),
                })
                .collect(),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MirrorRouteArg {
    name: String,
    #[serde(default, rename = "match")]
    matches: Vec<RouteMatchArg>,
    #[serde(default)]
    percentage: Option<i32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RouteMatchArg {
    #[serde(default)]
    method: Option<StringMatchArg>,
    #[serde(default)]
    path: Option<StringMatchArg>,
    #[serde(default)]
    headers: BTreeMap<String, StringMatchArg>,
}

impl From<MirrorRouteArg> for MirrorRoute {
    fn from(r: MirrorRouteArg) -> Self {
        Self {
            name: r.name,
            matches: r
                .matches
                .into_iter()
                .map(|m| RouteMatch {
                    method: m.method.map(Into::into),
                    path: m.path.map(Into::into),
                    headers: m.headers.into_iter().map(|(k, v)| (k, v.into())).collect(),
                })
                .collect(),
            percentage: r.percentage,
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeasurementArg {
    phase: String,
    value: Option<String>,
    message: Option<String>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    resume_at: Option<i64>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl MeasurementArg {
    fn into_measurement(self) -> Result<Measurement, String> {
        let phase = match self.phase.as_str() {
            "pending" => AnalysisPhase::Pending,
            "running" | "" => AnalysisPhase::Running,
            "successful" => AnalysisPhase::Successful,
            "failed" => AnalysisPhase::Failed,
            "error" => AnalysisPhase::Error,
            "inconclusive" => AnalysisPhase::Inconclusive,
            other => return Err(format!("unknown measurement phase {other:?}")),
        };
        Ok(Measurement {
            phase,
            value: self.value,
            message: self.message,
            started_at: self.started_at,
            finished_at: self.finished_at,
            resume_at: self.resume_at,
            metadata: self.metadata.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_matching() {
        let actual = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        assert!(contains(&actual, &json!({"b": {"d": "x"}})));
        assert!(contains(&actual, &json!({"b": {"c": [1, 2]}})));
        assert!(!contains(&actual, &json!({"b": {"c": [1]}})));
        assert!(!contains(&actual, &json!({"z": null})));
    }
}
