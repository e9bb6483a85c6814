//! Building AnalysisRuns: template flattening and composition, Rollout arguments (values,
//! pod-template hashes, field references), `MergeArgs`, and `{{args.*}}` substitution with Argo's
//! JSON-quote escaping.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sluice_api::IntOrString;
use sluice_api::analysis::{
    AnalysisTemplate, Argument, ClusterAnalysisTemplate, Measurement, Metric,
    RolloutAnalysisArgument,
};
use sluice_api::rollout::{Rollout, RolloutAnalysis};
use sluice_core::analysis::{
    ArgsError, BuildError, MetricLimits, PodTemplateHashes, SecretValues, TemplateCatalog,
    TemplateError, build_rollout_args, build_run_spec, flatten_templates, go_quote_inner,
    merge_args, redact_secrets, resolve_metric, secret_arguments,
};

// ---------------------------------------------------------------------------------------------
// helpers

fn arg(name: &str, value: Option<&str>) -> Argument {
    Argument {
        name: name.into(),
        value: value.map(str::to_string),
        value_from: None,
    }
}

fn secret_arg(name: &str) -> Argument {
    serde_json::from_value(json!({
        "name": name,
        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
    }))
    .expect("argument")
}

fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": "guestbook",
            "namespace": "shop",
            "uid": "1234-abcd",
            "labels": {"app": "guestbook", "team": "web \"blue\""},
            "annotations": {"owner": "alice"},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "guestbook"}},
            "template": {
                "metadata": {"labels": {"app": "guestbook"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
            "strategy": {"canary": {"steps": [{"setWeight": 20}]}},
        },
    }))
    .expect("rollout")
}

fn rollout_arg(fields: Value) -> RolloutAnalysisArgument {
    serde_json::from_value(fields).expect("rollout argument")
}

const HASHES: PodTemplateHashes<'static> = PodTemplateHashes {
    stable: Some("6d4c8f9b7"),
    latest: Some("5f7d9c8a1"),
};

fn metric(fields: Value) -> Metric {
    let mut object = json!({"name": "m", "provider": {"prometheus": {"query": "up"}}});
    if let (Some(base), Some(extra)) = (object.as_object_mut(), fields.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(object).expect("metric")
}

fn template(name: &str, spec: Value) -> AnalysisTemplate {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }))
    .expect("template")
}

fn cluster_template(name: &str, spec: Value) -> ClusterAnalysisTemplate {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ClusterAnalysisTemplate",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("cluster template")
}

fn analysis(fields: Value) -> RolloutAnalysis {
    serde_json::from_value(fields).expect("rollout analysis")
}

fn names(metrics: &[Metric]) -> Vec<&str> {
    metrics.iter().map(|metric| metric.name.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// MergeArgs

#[test]
fn merge_args_cases() {
    struct Case {
        name: &'static str,
        incoming: Vec<Argument>,
        template: Vec<Argument>,
        expected: Result<Vec<Argument>, ArgsError>,
    }
    let cases = vec![
        Case {
            name: "rollout value overrides the template default",
            incoming: vec![arg("service", Some("checkout"))],
            template: vec![arg("service", Some("default-svc"))],
            expected: Ok(vec![arg("service", Some("checkout"))]),
        },
        Case {
            name: "rollout value fills a template argument without default",
            incoming: vec![arg("service", Some("checkout"))],
            template: vec![arg("service", None)],
            expected: Ok(vec![arg("service", Some("checkout"))]),
        },
        Case {
            name: "template default kept when the rollout does not pass the argument",
            incoming: vec![],
            template: vec![arg("threshold", Some("0.95"))],
            expected: Ok(vec![arg("threshold", Some("0.95"))]),
        },
        Case {
            name: "arguments the template does not declare are silently dropped",
            incoming: vec![
                arg("service", Some("checkout")),
                arg("undeclared", Some("x")),
            ],
            template: vec![arg("service", None)],
            expected: Ok(vec![arg("service", Some("checkout"))]),
        },
        Case {
            name: "an argument left without value or valueFrom is an error",
            incoming: vec![arg("other", Some("x"))],
            template: vec![arg("service", None)],
            expected: Err(ArgsError::NotResolved("service".into())),
        },
        Case {
            name: "a secret-backed template argument needs no value",
            incoming: vec![],
            template: vec![secret_arg("token")],
            expected: Ok(vec![secret_arg("token")]),
        },
        Case {
            name: "an incoming valueFrom replaces the template's when no value is given",
            incoming: vec![secret_arg("token")],
            template: vec![arg("token", None)],
            expected: Ok(vec![Argument {
                name: "token".into(),
                value: None,
                value_from: secret_arg("token").value_from,
            }]),
        },
        Case {
            name: "template order is kept",
            incoming: vec![arg("b", Some("2")), arg("a", Some("1"))],
            template: vec![arg("a", None), arg("b", None)],
            expected: Ok(vec![arg("a", Some("1")), arg("b", Some("2"))]),
        },
    ];
    for case in cases {
        assert_eq!(
            merge_args(&case.incoming, &case.template),
            case.expected,
            "{}",
            case.name
        );
    }
    assert_eq!(
        ArgsError::NotResolved("service".into()).to_string(),
        "args.service was not resolved"
    );
}

// ---------------------------------------------------------------------------------------------
// Rollout arguments

#[test]
fn rollout_argument_values() {
    let cases: Vec<(&str, Value, Result<&str, ArgsError>)> = vec![
        ("literal value", json!({"name": "x", "value": "v"}), Ok("v")),
        ("no value becomes empty", json!({"name": "x"}), Ok("")),
        (
            "stable pod-template hash",
            json!({"name": "x", "valueFrom": {"podTemplateHashValue": "Stable"}}),
            Ok("6d4c8f9b7"),
        ),
        (
            "latest pod-template hash",
            json!({"name": "x", "valueFrom": {"podTemplateHashValue": "Latest"}}),
            Ok("5f7d9c8a1"),
        ),
        (
            "fieldRef metadata.name",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
            Ok("guestbook"),
        ),
        (
            "fieldRef metadata.namespace",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
            Ok("shop"),
        ),
        (
            "fieldRef metadata.uid",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}),
            Ok("1234-abcd"),
        ),
        (
            "fieldRef label by subscript",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}),
            Ok("guestbook"),
        ),
        (
            "fieldRef missing annotation is empty",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['nope']"}}}),
            Ok(""),
        ),
        (
            "fieldRef all labels, sorted and Go-quoted",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}}),
            Ok("app=\"guestbook\"\nteam=\"web \\\"blue\\\"\""),
        ),
        (
            "fieldRef unsupported metadata field",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.generation"}}}),
            Err(ArgsError::UnsupportedFieldPath(
                "metadata.generation".into(),
            )),
        ),
        (
            "fieldRef subscript on a field without keys",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name['a']"}}}),
            Err(ArgsError::SubscriptNotSupported(
                "metadata.name['a']".into(),
            )),
        ),
        (
            "fieldRef number formatted like Go",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "spec.replicas"}}}),
            Ok("3"),
        ),
        (
            "fieldRef into a list by index",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "spec.template.spec.containers[0].image"}}}),
            Ok("nginx:1.27"),
        ),
        (
            "fieldRef to an object must end in a primitive",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "spec.selector"}}}),
            Err(ArgsError::NotPrimitive("spec.selector".into())),
        ),
        (
            "fieldRef index out of range",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "spec.template.spec.containers[3].image"}}}),
            Err(ArgsError::IndexOutOfRange(3)),
        ),
        (
            "fieldRef to a missing field",
            json!({"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "spec.nothing"}}}),
            Err(ArgsError::InvalidPath("spec.nothing".into())),
        ),
    ];
    let rollout = rollout();
    for (name, argument, expected) in cases {
        let built = build_rollout_args(&[rollout_arg(argument)], &rollout, HASHES);
        let value = built.map(|args| args[0].value.clone().unwrap_or_default());
        assert_eq!(value, expected.map(str::to_string), "{name}");
    }
}

#[test]
fn a_missing_pod_template_hash_is_an_error() {
    let argument =
        rollout_arg(json!({"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}}));
    let hashes = PodTemplateHashes {
        stable: None,
        latest: Some("5f7d9c8a1"),
    };
    assert!(matches!(
        build_rollout_args(&[argument], &rollout(), hashes),
        Err(ArgsError::PodTemplateHashUnavailable { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// substitution

#[test]
fn substitution_cases() {
    struct Case {
        name: &'static str,
        metric: Value,
        args: Vec<Argument>,
        check: fn(&Result<Metric, TemplateError>) -> bool,
    }
    let cases = vec![
        Case {
            name: "query placeholder replaced",
            metric: json!({"provider": {"prometheus": {"query": "rate(x{svc=\"{{args.svc}}\"}[5m])"}}}),
            args: vec![arg("svc", Some("checkout"))],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    m.provider
                        .prometheus
                        .as_ref()
                        .is_some_and(|p| p.query == "rate(x{svc=\"checkout\"}[5m])")
                })
            },
        },
        Case {
            name: "double quotes in a value are escaped and survive",
            metric: json!({"provider": {"prometheus": {"query": "q{{args.v}}"}}}),
            args: vec![arg("v", Some("say \"hi\""))],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    m.provider
                        .prometheus
                        .as_ref()
                        .is_some_and(|p| p.query == "qsay \"hi\"")
                })
            },
        },
        Case {
            name: "backslashes in a value are escaped and survive",
            metric: json!({"provider": {"prometheus": {"query": "{{args.v}}"}}}),
            args: vec![arg("v", Some("a\\d+\\.b"))],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    m.provider
                        .prometheus
                        .as_ref()
                        .is_some_and(|p| p.query == "a\\d+\\.b")
                })
            },
        },
        Case {
            name: "newlines and tabs in a value survive",
            metric: json!({"provider": {"prometheus": {"query": "{{args.v}}"}}}),
            args: vec![arg("v", Some("line1\n\tline2"))],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    m.provider
                        .prometheus
                        .as_ref()
                        .is_some_and(|p| p.query == "line1\n\tline2")
                })
            },
        },
        Case {
            name: "a control character without a JSON escape fails as in Argo",
            metric: json!({"provider": {"prometheus": {"query": "{{args.v}}"}}}),
            args: vec![arg("v", Some("bell\u{07}"))],
            check: |result| matches!(result, Err(TemplateError::InvalidResult(_))),
        },
        Case {
            name: "tags are trimmed",
            metric: json!({"provider": {"prometheus": {"query": "{{ args.v }}"}}}),
            args: vec![arg("v", Some("x"))],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    m.provider
                        .prometheus
                        .as_ref()
                        .is_some_and(|p| p.query == "x")
                })
            },
        },
        Case {
            name: "count and limits written as placeholders become numbers",
            metric: json!({"interval": "{{args.every}}", "count": "{{args.count}}", "failureLimit": "{{args.failures}}"}),
            args: vec![
                arg("every", Some("30s")),
                arg("count", Some("5")),
                arg("failures", Some("2")),
            ],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    let limits = MetricLimits::of(m).expect("limits");
                    m.count == Some(IntOrString::String("5".into()))
                        && limits.effective_count == Some(5)
                        && limits.failure_limit == 2
                        && limits.interval == Some(std::time::Duration::from_secs(30))
                })
            },
        },
        Case {
            name: "conditions, web url and headers are substituted",
            metric: json!({
                "successCondition": "result.latency < {{args.max}}",
                "provider": {"web": {"url": "http://{{args.host}}/metrics", "headers": [{"key": "X-Team", "value": "{{args.team}}"}]}},
            }),
            args: vec![
                arg("max", Some("250")),
                arg("host", Some("svc.shop")),
                arg("team", Some("web")),
            ],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    let web = m.provider.web.as_ref().expect("web");
                    m.success_condition.as_deref() == Some("result.latency < 250")
                        && web.url == "http://svc.shop/metrics"
                        && web.headers[0].value == "web"
                })
            },
        },
        Case {
            name: "plugin configuration is substituted, keys included",
            metric: json!({"provider": {"plugin": {"acme/metrics": {"query": "{{args.q}}", "{{args.key}}": 1}}}}),
            args: vec![arg("q", Some("sum(x)")), arg("key", Some("weight"))],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    m.provider
                        .plugin
                        .as_ref()
                        .and_then(|plugins| plugins.get("acme/metrics"))
                        == Some(&json!({"query": "sum(x)", "weight": 1}))
                })
            },
        },
        Case {
            name: "an undeclared placeholder is a clear error",
            metric: json!({"provider": {"prometheus": {"query": "{{args.nope}}"}}}),
            args: vec![arg("v", Some("x"))],
            check: |result| {
                result.as_ref().err().map(ToString::to_string).as_deref()
                    == Some("failed to resolve {{args.nope}}")
            },
        },
        Case {
            name: "an argument without value is an error even when unused",
            metric: json!({}),
            args: vec![arg("v", None)],
            check: |result| result == &Err(TemplateError::NotSupplied("v".into())),
        },
        Case {
            name: "substitution is one pass: a value's own placeholder stays",
            metric: json!({"provider": {"prometheus": {"query": "{{args.a}}"}}}),
            args: vec![arg("a", Some("{{args.b}}")), arg("b", Some("B"))],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    m.provider
                        .prometheus
                        .as_ref()
                        .is_some_and(|p| p.query == "{{args.b}}")
                })
            },
        },
        Case {
            name: "a secret argument is a placeholder until secrets are read",
            metric: json!({"provider": {"prometheus": {"query": "{{args.token}}"}}}),
            args: vec![secret_arg("token")],
            check: |result| {
                result.as_ref().is_ok_and(|m| {
                    m.provider
                        .prometheus
                        .as_ref()
                        .is_some_and(|p| p.query == "temp-for-secret")
                })
            },
        },
    ];
    for case in cases {
        let result = resolve_metric(&metric(case.metric), &case.args, SecretValues::Placeholder);
        assert!((case.check)(&result), "{}: {result:?}", case.name);
    }
}

#[test]
fn secrets_are_listed_substituted_and_redacted() {
    let args = vec![arg("svc", Some("checkout")), secret_arg("token")];
    let listed = secret_arguments(&args);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].argument,
            listed[0].secret.name.as_str(),
            listed[0].secret.key.as_str()
        ),
        ("token", "creds", "token")
    );

    let web = metric(
        json!({"provider": {"web": {"url": "http://x", "headers": [{"key": "Authorization", "value": "Bearer {{args.token}}"}]}}}),
    );
    let values = BTreeMap::from([("token".to_string(), "s3cr\"et".to_string())]);
    let resolved = resolve_metric(&web, &args, SecretValues::Resolved(&values)).expect("resolved");
    assert_eq!(
        resolved.provider.web.expect("web").headers[0].value,
        "Bearer s3cr\"et"
    );

    let missing = resolve_metric(&web, &args, SecretValues::Resolved(&BTreeMap::new()));
    assert!(
        matches!(missing, Err(TemplateError::SecretNotProvided { .. })),
        "{missing:?}"
    );

    let mut measurement = Measurement {
        message: Some("401 for token s3cr\"et".into()),
        ..Measurement::default()
    };
    redact_secrets(&mut measurement, values.values().map(String::as_str));
    assert_eq!(measurement.message.as_deref(), Some("401 for token *****"));
}

#[test]
fn json_quote_escaping_follows_go_strconv_quote() {
    let cases = [
        ("quotes", "a\"b", "a\\\"b"),
        ("backslashes", "a\\b", "a\\\\b"),
        ("newline", "a\nb", "a\\nb"),
        ("carriage return and tab", "a\r\tb", "a\\r\\tb"),
        ("unicode kept", "café ✓", "café ✓"),
        ("nul as \\x00", "\u{0}", "\\x00"),
    ];
    for (name, value, expected) in cases {
        assert_eq!(go_quote_inner(value), expected, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// templates

fn prom(name: &str) -> Value {
    json!({"name": name, "provider": {"prometheus": {"query": "up"}}})
}

#[test]
fn flattening_templates() {
    let templates = vec![
        template(
            "rates",
            json!({"metrics": [prom("success-rate"), prom("error-rate")], "args": [{"name": "svc"}]}),
        ),
        template(
            "latency",
            json!({"metrics": [prom("p99")], "args": [{"name": "svc"}, {"name": "max", "value": "250"}]}),
        ),
        template(
            "same-default",
            json!({"metrics": [prom("p50")], "args": [{"name": "max", "value": "250"}]}),
        ),
        template(
            "other-default",
            json!({"metrics": [prom("p90")], "args": [{"name": "max", "value": "500"}]}),
        ),
        template("dup", json!({"metrics": [prom("p99")]})),
        template(
            "composite",
            json!({"metrics": [prom("own")], "templates": [{"templateName": "latency"}, {"templateName": "global", "clusterScope": true}]}),
        ),
        template(
            "loop-a",
            json!({"metrics": [prom("a")], "templates": [{"templateName": "loop-b"}]}),
        ),
        template(
            "loop-b",
            json!({"metrics": [prom("b")], "templates": [{"templateName": "loop-a"}]}),
        ),
        template(
            "dry",
            json!({"metrics": [prom("d")], "dryRun": [{"metricName": "d"}], "measurementRetention": [{"metricName": "d", "limit": 3}]}),
        ),
        template(
            "dry-again",
            json!({"metrics": [prom("e")], "dryRun": [{"metricName": "d"}]}),
        ),
    ];
    let cluster = vec![cluster_template(
        "global",
        json!({"metrics": [prom("cluster-wide")]}),
    )];
    let catalog = TemplateCatalog {
        templates: &templates,
        cluster_templates: &cluster,
    };
    let refs = |value: Value| -> Vec<sluice_api::analysis::AnalysisTemplateRef> {
        serde_json::from_value(value).expect("refs")
    };

    let flat = flatten_templates(&refs(json!([{"templateName": "global", "clusterScope": true}, {"templateName": "rates"}, {"templateName": "latency"}])), catalog)
        .expect("flatten");
    assert_eq!(
        names(&flat.metrics),
        ["success-rate", "error-rate", "p99", "cluster-wide"],
        "namespaced templates come before cluster ones"
    );
    assert_eq!(
        flat.args,
        vec![arg("svc", None), arg("max", Some("250"))],
        "a shared argument is declared once"
    );

    let same = flatten_templates(
        &refs(json!([{"templateName": "latency"}, {"templateName": "same-default"}])),
        catalog,
    );
    assert!(same.is_ok(), "identical defaults merge: {same:?}");

    let conflict = flatten_templates(
        &refs(json!([{"templateName": "latency"}, {"templateName": "other-default"}])),
        catalog,
    );
    assert_eq!(
        conflict.map_err(|error| error.to_string()),
        Err(
            "Argument `max` specified multiple times with different values: '250', '500'"
                .to_string()
        )
    );

    let duplicate = flatten_templates(
        &refs(json!([{"templateName": "latency"}, {"templateName": "dup"}])),
        catalog,
    );
    assert_eq!(duplicate, Err(BuildError::DuplicateMetric("p99".into())));
    assert_eq!(
        BuildError::DuplicateMetric("p99".into()).to_string(),
        "two metrics have the same name 'p99'"
    );

    let composed = flatten_templates(&refs(json!([{"templateName": "composite"}])), catalog)
        .expect("composition");
    assert_eq!(
        names(&composed.metrics),
        ["own", "p99", "cluster-wide"],
        "composition pulls in nested templates"
    );

    let twice = flatten_templates(
        &refs(json!([{"templateName": "composite"}, {"templateName": "latency"}])),
        catalog,
    )
    .expect("reached twice");
    assert_eq!(
        names(&twice.metrics),
        ["own", "p99", "cluster-wide"],
        "a template reached twice counts once"
    );

    let composed_duplicate = flatten_templates(
        &refs(json!([{"templateName": "composite"}, {"templateName": "dup"}])),
        catalog,
    );
    assert_eq!(
        composed_duplicate,
        Err(BuildError::DuplicateMetric("p99".into())),
        "composition with duplicate names"
    );

    let cycle = flatten_templates(&refs(json!([{"templateName": "loop-a"}])), catalog);
    assert!(
        matches!(cycle, Err(BuildError::TemplateCycle(_))),
        "{cycle:?}"
    );

    let missing = flatten_templates(&refs(json!([{"templateName": "nope"}])), catalog);
    assert_eq!(
        missing.map_err(|error| error.to_string()),
        Err("analysistemplate.argoproj.io \"nope\" not found".to_string())
    );

    let dry_twice = flatten_templates(
        &refs(json!([{"templateName": "dry"}, {"templateName": "dry-again"}])),
        catalog,
    );
    assert_eq!(dry_twice, Err(BuildError::DuplicateDryRun("d".into())));
}

#[test]
fn building_a_run_spec_from_a_rollout() {
    let templates = vec![template(
        "rates",
        json!({
            "args": [{"name": "svc"}, {"name": "hash"}, {"name": "threshold", "value": "0.95"}, {"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
            "metrics": [{"name": "success-rate", "successCondition": "result[0] >= {{args.threshold}}", "provider": {"prometheus": {"query": "x{svc=\"{{args.svc}}\",hash=\"{{args.hash}}\"}"}}}],
            "measurementRetention": [{"metricName": "success-rate", "limit": 20}],
        }),
    )];
    let catalog = TemplateCatalog {
        templates: &templates,
        cluster_templates: &[],
    };
    let request = analysis(json!({
        "templates": [{"templateName": "rates"}],
        "args": [
            {"name": "svc", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
            {"name": "undeclared", "value": "dropped"},
        ],
        "dryRun": [{"metricName": "success-rate"}],
    }));
    let spec = build_run_spec(&request, catalog, &rollout(), HASHES).expect("spec");
    let arg_names: Vec<&str> = spec
        .args
        .iter()
        .map(|argument| argument.name.as_str())
        .collect();
    assert_eq!(arg_names, ["svc", "hash", "threshold", "token"]);
    assert_eq!(spec.args[0].value.as_deref(), Some("guestbook"));
    assert_eq!(spec.args[1].value.as_deref(), Some("5f7d9c8a1"));
    assert_eq!(spec.args[2].value.as_deref(), Some("0.95"));
    assert!(
        spec.args[3].value_from.is_some(),
        "secret reference left for the controller"
    );
    assert_eq!(spec.dry_run.len(), 1);
    assert_eq!(spec.measurement_retention.len(), 1);
    assert_eq!(
        spec.metrics[0]
            .provider
            .prometheus
            .as_ref()
            .map(|p| p.query.as_str()),
        Some("x{svc=\"{{args.svc}}\",hash=\"{{args.hash}}\"}"),
        "metrics keep their placeholders, as Argo writes runs"
    );
    let resolved =
        resolve_metric(&spec.metrics[0], &spec.args, SecretValues::Placeholder).expect("resolved");
    assert_eq!(
        resolved.provider.prometheus.map(|p| p.query),
        Some("x{svc=\"guestbook\",hash=\"5f7d9c8a1\"}".to_string())
    );
    assert_eq!(
        resolved.success_condition.as_deref(),
        Some("result[0] >= 0.95")
    );

    let missing_arg = analysis(
        json!({"templates": [{"templateName": "rates"}], "args": [{"name": "svc", "value": "x"}]}),
    );
    assert_eq!(
        build_run_spec(&missing_arg, catalog, &rollout(), HASHES)
            .map_err(|error| error.to_string()),
        Err("args.hash was not resolved".to_string())
    );

    let duplicate_dry_run = analysis(json!({
        "templates": [{"templateName": "rates"}],
        "args": [{"name": "svc", "value": "x"}, {"name": "hash", "value": "h"}],
        "measurementRetention": [{"metricName": "success-rate", "limit": 5}],
    }));
    assert_eq!(
        build_run_spec(&duplicate_dry_run, catalog, &rollout(), HASHES),
        Err(BuildError::DuplicateRetention("success-rate".into()))
    );
}
