//! `sluice lint` against valid examples and a suite of invalid manifests, one violation each:
//! every case asserts the exact line printed and exit code 1.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const ROLLOUT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: app}
spec:
  replicas: 3
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: "nginx:1.27"}]}
  strategy:
    canary:
      steps: [{setWeight: 20}, {pause: {}}]
"#;

const ROUTED: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: app}
spec:
  replicas: 3
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: "nginx:1.27"}]}
  strategy:
    canary:
      canaryService: app-canary
      stableService: app-stable
      trafficRouting:
        managedRoutes: [{name: header}]
        istio: {virtualService: {name: app, routes: [primary]}}
      steps: [{setWeight: 20}]
"#;

const BLUE_GREEN: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: app}
spec:
  replicas: 3
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: "nginx:1.27"}]}
  strategy:
    blueGreen: {activeService: app-active, previewService: app-preview}
"#;

const TEMPLATE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  args: [{name: service}]
  metrics:
  - name: rate
    interval: 1m
    count: 3
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        address: http://prometheus:9090
        query: 'sum(rate(requests{service="{{args.service}}"}[1m]))'
"#;

const EXPERIMENT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata: {name: compare}
spec:
  duration: 5m
  templates:
  - name: baseline
    selector: {matchLabels: {app: baseline}}
    template:
      metadata: {labels: {app: baseline}}
      spec: {containers: [{name: app, image: "nginx:1.27"}]}
"#;

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().expect("object");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn patched(base: &str, patch: Value) -> String {
    let mut document: Value = serde_yaml::from_str(base).expect("base manifest is valid YAML");
    merge(&mut document, &patch);
    serde_yaml::to_string(&document).expect("serializes")
}

struct Lint {
    stdout: String,
    code: i32,
}

fn lint(files: &[&Path]) -> Lint {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("lint")
        .args(files)
        .output()
        .expect("sluice runs");
    Lint {
        stdout: String::from_utf8(output.stdout).expect("utf-8"),
        code: output.status.code().expect("exit code"),
    }
}

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn examples_lint_clean() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let result = lint(&paths);
    assert_eq!(result.stdout, "");
    assert_eq!(result.code, 0);
}

#[test]
fn dash_f_is_accepted_like_kubectl() {
    let file = examples_dir().join("canary-basic.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["lint", "-f"])
        .arg(&file)
        .output()
        .expect("sluice runs");
    assert_eq!(output.status.code(), Some(0));
}

/// One invalid manifest: its text and the exact line `sluice lint` prints after `FILE: `.
struct Case {
    name: &'static str,
    manifest: String,
    expected: &'static str,
}

fn case(name: &'static str, base: &str, patch: Value, expected: &'static str) -> Case {
    Case {
        name,
        manifest: patched(base, patch),
        expected,
    }
}

fn raw(name: &'static str, manifest: &str, expected: &'static str) -> Case {
    Case {
        name,
        manifest: manifest.to_string(),
        expected,
    }
}

fn invalid_cases() -> Vec<Case> {
    let canary = |canary: Value| json!({"spec": {"strategy": {"canary": canary}}});
    let steps = |steps: Value| canary(json!({"steps": steps}));
    let metric = |metric: Value| json!({"spec": {"metrics": [metric]}});
    vec![
        case(
            "strategy missing",
            ROLLOUT,
            json!({"spec": {"strategy": null}}),
            "Rollout/app: spec.strategy: one of canary or blueGreen is required",
        ),
        case(
            "two strategies",
            ROLLOUT,
            json!({"spec": {"strategy": {"blueGreen": {"activeService": "app"}}}}),
            "Rollout/app: spec.strategy: only one of canary or blueGreen may be set",
        ),
        case(
            "step with two kinds",
            ROLLOUT,
            steps(json!([{"setWeight": 20}, {"setWeight": 40, "pause": {}}])),
            "Rollout/app: spec.strategy.canary.steps[1]: a step must have exactly one of setWeight, pause, experiment, analysis, setCanaryScale, setHeaderRoute, setMirrorRoute, plugin (found: setWeight, pause)",
        ),
        case(
            "empty step",
            ROLLOUT,
            steps(json!([{"setWeight": 20}, {}])),
            "Rollout/app: spec.strategy.canary.steps[1]: a step must have exactly one of setWeight, pause, experiment, analysis, setCanaryScale, setHeaderRoute, setMirrorRoute, plugin (found: none)",
        ),
        case(
            "weight above 100",
            ROLLOUT,
            steps(json!([{"setWeight": 120}])),
            "Rollout/app: spec.strategy.canary.steps[0].setWeight: must be between 0 and 100, got 120",
        ),
        case(
            "weight above maxTrafficWeight",
            ROUTED,
            json!({"spec": {"strategy": {"canary": {
                "trafficRouting": {"istio": null, "nginx": {"stableIngress": "app"}, "maxTrafficWeight": 10},
                "steps": [{"setWeight": 20}]}}}}),
            "Rollout/app: spec.strategy.canary.steps[0].setWeight: must be between 0 and 10, got 20",
        ),
        case(
            "pause duration without unit",
            ROLLOUT,
            steps(json!([{"pause": {"duration": "30"}}])),
            "Rollout/app: spec.strategy.canary.steps[0].pause.duration: invalid duration \"30\": missing unit (use ns, us, ms, s, m or h, e.g. \"30s\")",
        ),
        case(
            "pause duration in days",
            ROLLOUT,
            steps(json!([{"pause": {"duration": "3d"}}])),
            "Rollout/app: spec.strategy.canary.steps[0].pause.duration: invalid duration \"3d\": unknown unit \"d\" (use ns, us, ms, s, m or h)",
        ),
        case(
            "negative pause",
            ROLLOUT,
            steps(json!([{"pause": {"duration": -5}}])),
            "Rollout/app: spec.strategy.canary.steps[0].pause.duration: invalid duration \"-5\": must not be negative",
        ),
        case(
            "maxSurge not a percentage",
            ROLLOUT,
            canary(json!({"maxSurge": "abc"})),
            "Rollout/app: spec.strategy.canary.maxSurge: \"abc\" is neither an integer nor a percentage such as \"25%\"",
        ),
        case(
            "maxSurge and maxUnavailable both zero",
            ROLLOUT,
            canary(json!({"maxSurge": 0, "maxUnavailable": "0%"})),
            "Rollout/app: spec.strategy.canary.maxSurge: maxSurge and maxUnavailable may not both be 0: the rollout could never make progress",
        ),
        case(
            "maxUnavailable above 100%",
            ROLLOUT,
            canary(json!({"maxUnavailable": "150%"})),
            "Rollout/app: spec.strategy.canary.maxUnavailable: must not exceed 100%, got 150%",
        ),
        case(
            "canary and stable service identical",
            ROUTED,
            canary(json!({"stableService": "app-canary"})),
            "Rollout/app: spec.strategy.canary.stableService: must be different from canaryService",
        ),
        case(
            "canary service missing with traffic routing",
            ROUTED,
            canary(json!({"canaryService": null})),
            "Rollout/app: spec.strategy.canary.canaryService: is required",
        ),
        case(
            "traffic routing without a router",
            ROUTED,
            canary(json!({"trafficRouting": {"istio": null}})),
            "Rollout/app: spec.strategy.canary.trafficRouting: must configure at least one router: istio, nginx or plugins",
        ),
        case(
            "router that needs a plugin",
            ROUTED,
            canary(json!({"trafficRouting": {"alb": {"ingress": "app", "servicePort": 80}}})),
            "Rollout/app: spec.strategy.canary.trafficRouting.alb: the alb router is not built into Sluice; configure it as a traffic-router plugin under spec.strategy.canary.trafficRouting.plugins",
        ),
        case(
            "setCanaryScale without traffic routing",
            ROLLOUT,
            steps(json!([{"setCanaryScale": {"replicas": 1}}])),
            "Rollout/app: spec.strategy.canary.steps[0].setCanaryScale: requires spec.strategy.canary.trafficRouting",
        ),
        case(
            "setCanaryScale with two settings",
            ROUTED,
            steps(json!([{"setCanaryScale": {"replicas": 1, "weight": 20}}])),
            "Rollout/app: spec.strategy.canary.steps[0].setCanaryScale: exactly one of weight, replicas or matchTrafficWeight must be set",
        ),
        case(
            "header route not in managedRoutes",
            ROUTED,
            steps(
                json!([{"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}}]),
            ),
            "Rollout/app: spec.strategy.canary.steps[0].setHeaderRoute.name: route \"beta\" must be listed in spec.strategy.canary.trafficRouting.managedRoutes",
        ),
        case(
            "header value with two match kinds",
            ROUTED,
            steps(
                json!([{"setHeaderRoute": {"name": "header", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1", "prefix": "1"}}]}}]),
            ),
            "Rollout/app: spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue: exactly one of exact, prefix or regex must be set",
        ),
        case(
            "mirror route with nginx",
            ROUTED,
            canary(json!({
                "trafficRouting": {"istio": null, "nginx": {"stableIngress": "app"}},
                "steps": [{"setMirrorRoute": {"name": "header", "percentage": 50, "match": [{"method": {"exact": "GET"}}]}}]})),
            "Rollout/app: spec.strategy.canary.steps[0].setMirrorRoute: mirror routes are supported with istio and plugin routers only",
        ),
        case(
            "mirror percentage above 100",
            ROUTED,
            steps(
                json!([{"setMirrorRoute": {"name": "header", "percentage": 120, "match": [{"method": {"exact": "GET"}}]}}]),
            ),
            "Rollout/app: spec.strategy.canary.steps[0].setMirrorRoute.percentage: must be between 0 and 100, got 120",
        ),
        case(
            "plugin step without a name",
            ROLLOUT,
            steps(json!([{"plugin": {"name": " ", "config": {}}}])),
            "Rollout/app: spec.strategy.canary.steps[0].plugin.name: is required",
        ),
        case(
            "dynamicStableScale with scaleDownDelaySeconds",
            ROUTED,
            canary(json!({"dynamicStableScale": true, "scaleDownDelaySeconds": 30})),
            "Rollout/app: spec.strategy.canary.dynamicStableScale: cannot be used together with scaleDownDelaySeconds",
        ),
        case(
            "scaleDownDelaySeconds without traffic routing",
            ROLLOUT,
            canary(json!({"scaleDownDelaySeconds": 30})),
            "Rollout/app: spec.strategy.canary.scaleDownDelaySeconds: requires spec.strategy.canary.trafficRouting",
        ),
        case(
            "selector does not match the template",
            ROLLOUT,
            json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}),
            "Rollout/app: spec.selector: does not match spec.template.metadata.labels",
        ),
        case(
            "template missing",
            ROLLOUT,
            json!({"spec": {"template": null}}),
            "Rollout/app: spec.template: is required (or set spec.workloadRef)",
        ),
        case(
            "progress deadline not above minReadySeconds",
            ROLLOUT,
            json!({"spec": {"minReadySeconds": 30, "progressDeadlineSeconds": 30}}),
            "Rollout/app: spec.progressDeadlineSeconds: must be greater than minReadySeconds (30), got 30",
        ),
        case(
            "blue-green preview equals active",
            BLUE_GREEN,
            json!({"spec": {"strategy": {"blueGreen": {"previewService": "app-active"}}}}),
            "Rollout/app: spec.strategy.blueGreen.previewService: must be different from activeService",
        ),
        case(
            "blue-green without active service",
            BLUE_GREEN,
            json!({"spec": {"strategy": {"blueGreen": {"activeService": ""}}}}),
            "Rollout/app: spec.strategy.blueGreen.activeService: is required",
        ),
        case(
            "scale-down revision limit above history limit",
            BLUE_GREEN,
            json!({"spec": {"revisionHistoryLimit": 2, "strategy": {"blueGreen": {"scaleDownDelayRevisionLimit": 3}}}}),
            "Rollout/app: spec.strategy.blueGreen.scaleDownDelayRevisionLimit: must not exceed spec.revisionHistoryLimit (2), got 3",
        ),
        case(
            "analysis step without templates",
            ROLLOUT,
            steps(json!([{"analysis": {"args": [{"name": "service", "value": "app"}]}}])),
            "Rollout/app: spec.strategy.canary.steps[0].analysis.templates: must list at least one template",
        ),
        case(
            "analysis argument with value and valueFrom",
            ROLLOUT,
            steps(
                json!([{"analysis": {"templates": [{"templateName": "success-rate"}], "args": [{"name": "service", "value": "app", "valueFrom": {"podTemplateHashValue": "Latest"}}]}}]),
            ),
            "Rollout/app: spec.strategy.canary.steps[0].analysis.args[0]: only one of value or valueFrom may be set",
        ),
        case(
            "background analysis starts past the last step",
            ROLLOUT,
            canary(
                json!({"analysis": {"templates": [{"templateName": "success-rate"}], "startingStep": 9}}),
            ),
            "Rollout/app: spec.strategy.canary.analysis.startingStep: must be between 0 and the number of steps (2), got 9",
        ),
        case(
            "weight of a field has the wrong type",
            ROLLOUT,
            steps(json!([{"setWeight": "abc"}])),
            "Rollout/app: spec.strategy.canary.steps[0].setWeight: invalid type: string \"abc\", expected i32",
        ),
        case(
            "duplicate metric names",
            TEMPLATE,
            json!({"spec": {"metrics": [
                {"name": "rate", "provider": {"web": {"url": "http://a/{{args.service}}"}}},
                {"name": "rate", "provider": {"web": {"url": "http://b/{{args.service}}"}}}]}}),
            "AnalysisTemplate/success-rate: spec.metrics[1]: duplicate metric name \"rate\"",
        ),
        case(
            "count above one without interval",
            TEMPLATE,
            metric(
                json!({"name": "rate", "count": 2, "provider": {"web": {"url": "http://a/{{args.service}}"}}}),
            ),
            "AnalysisTemplate/success-rate: spec.metrics[0].interval: is required when count is greater than 1 (count is 2)",
        ),
        case(
            "failureLimit -1 without consecutiveSuccessLimit",
            TEMPLATE,
            metric(
                json!({"name": "rate", "failureLimit": -1, "provider": {"web": {"url": "http://a/{{args.service}}"}}}),
            ),
            "AnalysisTemplate/success-rate: spec.metrics[0].failureLimit: -1 (no limit) requires consecutiveSuccessLimit greater than 0, or the metric could never fail nor succeed",
        ),
        case(
            "count below failureLimit + consecutiveSuccessLimit",
            TEMPLATE,
            metric(
                json!({"name": "rate", "interval": "1m", "count": 3, "failureLimit": 2, "consecutiveSuccessLimit": 2, "provider": {"web": {"url": "http://a/{{args.service}}"}}}),
            ),
            "AnalysisTemplate/success-rate: spec.metrics[0].count: must be at least failureLimit + consecutiveSuccessLimit (4), got 3",
        ),
        case(
            "count below inconclusiveLimit",
            TEMPLATE,
            metric(
                json!({"name": "rate", "interval": "1m", "count": 2, "inconclusiveLimit": 3, "provider": {"web": {"url": "http://a/{{args.service}}"}}}),
            ),
            "AnalysisTemplate/success-rate: spec.metrics[0].count: must be at least inconclusiveLimit (3), got 2",
        ),
        case(
            "failureLimit not a number",
            TEMPLATE,
            metric(
                json!({"name": "rate", "failureLimit": "two", "provider": {"web": {"url": "http://a/{{args.service}}"}}}),
            ),
            "AnalysisTemplate/success-rate: spec.metrics[0].failureLimit: must be an integer or an {{args.NAME}} placeholder, got \"two\"",
        ),
        case(
            "invalid interval",
            TEMPLATE,
            metric(
                json!({"name": "rate", "interval": "5 minutes", "provider": {"web": {"url": "http://a/{{args.service}}"}}}),
            ),
            "AnalysisTemplate/success-rate: spec.metrics[0].interval: invalid duration \"5 minutes\": unknown unit \" minutes\" (use ns, us, ms, s, m or h)",
        ),
        case(
            "two providers",
            TEMPLATE,
            metric(
                json!({"name": "rate", "provider": {"web": {"url": "http://a/{{args.service}}"}, "prometheus": {"query": "up"}}}),
            ),
            "AnalysisTemplate/success-rate: spec.metrics[0].provider: exactly one provider may be set, found: prometheus, web",
        ),
        case(
            "no provider",
            TEMPLATE,
            metric(json!({"name": "rate", "provider": null})),
            "AnalysisTemplate/success-rate: spec.metrics[0].provider: one provider is required (prometheus, web, job or plugin)",
        ),
        case(
            "provider that needs a plugin",
            TEMPLATE,
            metric(json!({"name": "rate", "provider": {"datadog": {"query": "avg:requests{*}"}}})),
            "AnalysisTemplate/success-rate: spec.metrics[0].provider.datadog: the datadog provider is not built into Sluice; configure it as a metric-provider plugin under spec.metrics[0].provider.plugin",
        ),
        case(
            "web body with GET",
            TEMPLATE,
            metric(
                json!({"name": "rate", "provider": {"web": {"url": "http://a/{{args.service}}", "body": "{}"}}}),
            ),
            "AnalysisTemplate/success-rate: spec.metrics[0].provider.web.method: a request body requires method POST or PUT",
        ),
        case(
            "undeclared argument placeholder",
            TEMPLATE,
            json!({"spec": {"args": null}}),
            "AnalysisTemplate/success-rate: spec.metrics[0]: uses {{args.service}}, which spec.args does not declare",
        ),
        case(
            "dry run of an unknown metric",
            TEMPLATE,
            json!({"spec": {"dryRun": [{"metricName": "latency"}]}}),
            "AnalysisTemplate/success-rate: spec.dryRun[0].metricName: no metric named \"latency\"",
        ),
        case(
            "experiment templates with the same name",
            EXPERIMENT,
            json!({"spec": {"templates": [
                {"name": "baseline", "selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "a"}}}},
                {"name": "baseline", "selector": {"matchLabels": {"app": "b"}}, "template": {"metadata": {"labels": {"app": "b"}}}}]}}),
            "Experiment/compare: spec.templates[1]: duplicate template name \"baseline\"",
        ),
        case(
            "experiment duration without unit",
            EXPERIMENT,
            json!({"spec": {"duration": "5"}}),
            "Experiment/compare: spec.duration: invalid duration \"5\": missing unit (use ns, us, ms, s, m or h, e.g. \"30s\")",
        ),
        raw(
            "unknown kind in the argoproj.io group",
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollouts\nmetadata: {name: app}\n",
            "document 1: argoproj.io/v1alpha1 has no kind \"Rollouts\" (expected Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun or Experiment)",
        ),
        raw(
            "malformed YAML",
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: app\n spec: {}\n",
            "line 5, column 2: did not find expected key",
        ),
    ]
}

#[test]
fn each_invalid_manifest_gets_one_exact_message_and_exit_code_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = invalid_cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        let file = dir
            .path()
            .join(format!("{}.yaml", case.name.replace(' ', "-")));
        std::fs::write(&file, &case.manifest).expect("write case");
        let result = lint(&[&file]);
        let expected = format!("{}: {}\n", file.display(), case.expected);
        if result.stdout != expected || result.code != 1 {
            failures.push(format!(
                "{}:\n  expected (exit 1): {expected}  got (exit {}): {}",
                case.name, result.code, result.stdout
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn problems_in_several_files_are_all_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = dir.path().join("first.yaml");
    let second = dir.path().join("second.yaml");
    std::fs::write(
        &first,
        patched(ROLLOUT, json!({"spec": {"template": null}})),
    )
    .expect("write");
    std::fs::write(
        &second,
        format!(
            "{TEMPLATE}\n---\n{}",
            patched(ROLLOUT, json!({"spec": {"strategy": null}}))
        ),
    )
    .expect("write");
    let result = lint(&[&first, &second]);
    assert_eq!(
        result.stdout,
        format!(
            "{}: Rollout/app: spec.template: is required (or set spec.workloadRef)\n{}: Rollout/app: spec.strategy: one of canary or blueGreen is required\n",
            first.display(),
            second.display()
        )
    );
    assert_eq!(result.code, 1);
}

#[test]
fn a_missing_file_is_reported() {
    let result = lint(&[Path::new("/nonexistent/rollout.yaml")]);
    assert_eq!(
        result.stdout,
        "/nonexistent/rollout.yaml: cannot read file: No such file or directory (os error 2)\n"
    );
    assert_eq!(result.code, 1);
}
