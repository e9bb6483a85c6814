//! The rules Sluice enforces on its objects, the same ones Argo Rollouts enforces.
//!
//! Every violation names the field it concerns (`spec.strategy.canary.steps[3]`) and says what
//! is wrong and, where it helps, what to write instead. The controller turns a Rollout's
//! violations into its `InvalidSpec` condition; `sluice lint` prints them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::analysis::{
    AnalysisRunSpec, AnalysisTemplateSpec, Argument, DryRun, MeasurementRetention, Metric,
    RolloutAnalysisArgument, WebMetricMethod,
};
use crate::duration::{parse_go_duration, parse_int_or_duration};
use crate::experiment::Experiment;
use crate::intstr::IntOrPercent;
use crate::rollout::{
    AntiAffinity, BlueGreenStrategy, CANARY_STEP_KINDS, CanaryStep, CanaryStrategy,
    ProgressThresholdType, Rollout, RolloutAnalysis, RolloutTrafficRouting, StringMatch,
};
use crate::selector::{selector_is_empty, selector_matches};

/// One rule a manifest breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The offending field, e.g. `spec.strategy.canary.steps[3]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Joins violations into one message, as written into the `InvalidSpec` condition.
pub fn summarize(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(Violation::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Default)]
struct Checker {
    violations: Vec<Violation>,
}

impl Checker {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.violations.push(Violation {
            path: path.into(),
            message: message.into(),
        });
    }

    fn non_negative(&mut self, path: &str, value: Option<i32>) {
        if let Some(value) = value.filter(|value| *value < 0) {
            self.add(
                path,
                format!("must be greater than or equal to 0, got {value}"),
            );
        }
    }

    fn percentage(&mut self, path: &str, value: Option<i32>, max: i32) {
        if let Some(value) = value.filter(|value| !(0..=max).contains(value)) {
            self.add(path, format!("must be between 0 and {max}, got {value}"));
        }
    }

    fn required(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(path, "is required");
        }
    }

    fn unique<'a>(&mut self, path: &str, what: &str, names: impl IntoIterator<Item = &'a str>) {
        let mut seen = BTreeSet::new();
        for (index, name) in names.into_iter().enumerate() {
            if !seen.insert(name) {
                self.add(
                    format!("{path}[{index}]"),
                    format!("duplicate {what} {name:?}"),
                );
            }
        }
    }
}

/// Checks a Rollout. An empty result means the Rollout is valid.
pub fn validate_rollout(rollout: &Rollout) -> Vec<Violation> {
    let mut check = Checker::default();
    let spec = &rollout.spec;
    check.non_negative("spec.replicas", spec.replicas);
    check.non_negative("spec.revisionHistoryLimit", spec.revision_history_limit);
    check.non_negative("spec.minReadySeconds", spec.min_ready_seconds);
    if let Some(deadline) = spec.progress_deadline_seconds {
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if deadline <= min_ready {
            check.add(
                "spec.progressDeadlineSeconds",
                format!("must be greater than minReadySeconds ({min_ready}), got {deadline}"),
            );
        }
    }
    if let Some(window) = &spec.rollback_window {
        check.non_negative("spec.rollbackWindow.revisions", window.revisions);
    }
    validate_workload(&mut check, rollout);

    let strategy = &spec.strategy;
    match (&strategy.canary, &strategy.blue_green) {
        (Some(_), Some(_)) => check.add(
            "spec.strategy",
            "only one of canary or blueGreen may be set",
        ),
        (None, None) => check.add("spec.strategy", "one of canary or blueGreen is required"),
        (Some(canary), None) => validate_canary(&mut check, rollout, canary),
        (None, Some(blue_green)) => validate_blue_green(&mut check, rollout, blue_green),
    }
    check.violations
}

fn validate_workload(check: &mut Checker, rollout: &Rollout) {
    let spec = &rollout.spec;
    match (&spec.template, &spec.workload_ref) {
        (Some(_), Some(_)) => check.add(
            "spec.template",
            "must be empty when spec.workloadRef is set (the template comes from the referenced workload)",
        ),
        (None, None) => check.add("spec.template", "is required (or set spec.workloadRef)"),
        (None, Some(reference)) => {
            let kind = reference.kind.as_deref().unwrap_or_default();
            if !matches!(kind, "Deployment" | "ReplicaSet" | "PodTemplate") {
                check.add(
                    "spec.workloadRef.kind",
                    format!("must be Deployment, ReplicaSet or PodTemplate, got {kind:?}"),
                );
            }
            check.required(
                "spec.workloadRef.name",
                reference.name.as_deref().unwrap_or_default(),
            );
            if let Some(mode) = &reference.scale_down
                && !matches!(mode.as_str(), "never" | "onsuccess" | "progressively")
            {
                check.add(
                    "spec.workloadRef.scaleDown",
                    format!("must be never, onsuccess or progressively, got {mode:?}"),
                );
            }
        }
        (Some(template), None) => match &spec.selector {
            None => check.add("spec.selector", "is required"),
            Some(selector) if selector_is_empty(selector) => check.add(
                "spec.selector",
                "must not be empty: an empty selector would match every pod in the namespace",
            ),
            Some(selector) => {
                let labels = template
                    .metadata
                    .as_ref()
                    .and_then(|meta| meta.labels.clone())
                    .unwrap_or_default();
                if !selector_matches(selector, &labels) {
                    check.add(
                        "spec.selector",
                        "does not match spec.template.metadata.labels",
                    );
                }
            }
        },
    }
}

fn validate_blue_green(check: &mut Checker, rollout: &Rollout, strategy: &BlueGreenStrategy) {
    const PATH: &str = "spec.strategy.blueGreen";
    check.required(&format!("{PATH}.activeService"), &strategy.active_service);
    if strategy.preview_service.as_deref() == Some(strategy.active_service.as_str()) {
        check.add(
            format!("{PATH}.previewService"),
            "must be different from activeService",
        );
    }
    check.non_negative(
        &format!("{PATH}.previewReplicaCount"),
        strategy.preview_replica_count,
    );
    check.non_negative(
        &format!("{PATH}.autoPromotionSeconds"),
        strategy.auto_promotion_seconds,
    );
    check.non_negative(
        &format!("{PATH}.scaleDownDelaySeconds"),
        strategy.scale_down_delay_seconds,
    );
    check.non_negative(
        &format!("{PATH}.abortScaleDownDelaySeconds"),
        strategy.abort_scale_down_delay_seconds,
    );
    validate_revision_limit(
        check,
        rollout,
        &format!("{PATH}.scaleDownDelayRevisionLimit"),
        strategy.scale_down_delay_revision_limit,
    );
    if let Some(max_unavailable) = &strategy.max_unavailable {
        validate_int_or_percent(check, &format!("{PATH}.maxUnavailable"), max_unavailable);
    }
    if let Some(analysis) = &strategy.pre_promotion_analysis {
        validate_rollout_analysis(check, &format!("{PATH}.prePromotionAnalysis"), analysis);
    }
    if let Some(analysis) = &strategy.post_promotion_analysis {
        validate_rollout_analysis(check, &format!("{PATH}.postPromotionAnalysis"), analysis);
    }
    if let Some(anti_affinity) = &strategy.anti_affinity {
        validate_anti_affinity(check, &format!("{PATH}.antiAffinity"), anti_affinity);
    }
}

fn validate_revision_limit(check: &mut Checker, rollout: &Rollout, path: &str, limit: Option<i32>) {
    check.non_negative(path, limit);
    if let Some(limit) = limit
        && limit > rollout.revision_history_limit()
    {
        check.add(
            path,
            format!(
                "must not exceed spec.revisionHistoryLimit ({}), got {limit}",
                rollout.revision_history_limit()
            ),
        );
    }
}

fn validate_int_or_percent(check: &mut Checker, path: &str, value: &IntOrString) {
    match IntOrPercent::parse(value) {
        Err(error) => check.add(path, error.to_string()),
        Ok(IntOrPercent::Percent(percent)) if percent > 100 && path.ends_with("maxUnavailable") => {
            check.add(path, format!("must not exceed 100%, got {percent}%"));
        }
        Ok(_) => {}
    }
}

fn validate_anti_affinity(check: &mut Checker, path: &str, anti_affinity: &AntiAffinity) {
    let preferred = &anti_affinity.preferred_during_scheduling_ignored_during_execution;
    let required = &anti_affinity.required_during_scheduling_ignored_during_execution;
    if preferred.is_some() == required.is_some() {
        check.add(
            path,
            "exactly one of preferredDuringSchedulingIgnoredDuringExecution or requiredDuringSchedulingIgnoredDuringExecution must be set",
        );
    }
    if let Some(weight) = preferred.as_ref().map(|preferred| preferred.weight)
        && !(1..=100).contains(&weight)
    {
        check.add(
            format!("{path}.preferredDuringSchedulingIgnoredDuringExecution.weight"),
            format!("must be between 1 and 100, got {weight}"),
        );
    }
}

/// Routers Argo Rollouts has in-tree that Sluice serves only through plugins.
fn plugin_only_routers(routing: &RolloutTrafficRouting) -> Vec<&'static str> {
    [
        ("alb", routing.alb.is_some()),
        ("smi", routing.smi.is_some()),
        ("ambassador", routing.ambassador.is_some()),
        ("appMesh", routing.app_mesh.is_some()),
        ("traefik", routing.traefik.is_some()),
        ("apisix", routing.apisix.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

fn has_plugins(routing: &RolloutTrafficRouting) -> bool {
    routing
        .plugins
        .as_ref()
        .is_some_and(|plugins| !plugins.is_empty())
}

fn validate_canary(check: &mut Checker, rollout: &Rollout, canary: &CanaryStrategy) {
    const PATH: &str = "spec.strategy.canary";
    let routing = canary.traffic_routing.as_ref();
    let max_weight = canary.max_traffic_weight();

    let surge = canary.max_surge.as_ref().map(IntOrPercent::parse);
    let unavailable = canary.max_unavailable.as_ref().map(IntOrPercent::parse);
    if let Some(value) = &canary.max_surge {
        validate_int_or_percent(check, &format!("{PATH}.maxSurge"), value);
    }
    if let Some(value) = &canary.max_unavailable {
        validate_int_or_percent(check, &format!("{PATH}.maxUnavailable"), value);
    }
    if let (Some(Ok(surge)), Some(Ok(unavailable))) = (surge, unavailable)
        && surge.is_zero()
        && unavailable.is_zero()
    {
        check.add(
            format!("{PATH}.maxSurge"),
            "maxSurge and maxUnavailable may not both be 0: the rollout could never make progress",
        );
    }

    match routing {
        Some(routing) => validate_traffic_routing(check, canary, routing),
        None => {
            let routed_only = [
                (
                    "scaleDownDelaySeconds",
                    canary.scale_down_delay_seconds.is_some(),
                ),
                (
                    "scaleDownDelayRevisionLimit",
                    canary.scale_down_delay_revision_limit.is_some(),
                ),
                (
                    "abortScaleDownDelaySeconds",
                    canary.abort_scale_down_delay_seconds.is_some(),
                ),
                ("dynamicStableScale", canary.dynamic_stable_scale),
                (
                    "minPodsPerReplicaSet",
                    canary.min_pods_per_replica_set.is_some(),
                ),
                ("pingPong", canary.ping_pong.is_some()),
            ];
            for (field, set) in routed_only {
                if set {
                    check.add(
                        format!("{PATH}.{field}"),
                        "requires spec.strategy.canary.trafficRouting",
                    );
                }
            }
        }
    }
    if canary.dynamic_stable_scale && canary.scale_down_delay_seconds.is_some() {
        check.add(
            format!("{PATH}.dynamicStableScale"),
            "cannot be used together with scaleDownDelaySeconds",
        );
    }
    check.non_negative(
        &format!("{PATH}.scaleDownDelaySeconds"),
        canary.scale_down_delay_seconds,
    );
    check.non_negative(
        &format!("{PATH}.abortScaleDownDelaySeconds"),
        canary.abort_scale_down_delay_seconds,
    );
    check.non_negative(
        &format!("{PATH}.minPodsPerReplicaSet"),
        canary.min_pods_per_replica_set,
    );
    validate_revision_limit(
        check,
        rollout,
        &format!("{PATH}.scaleDownDelayRevisionLimit"),
        canary.scale_down_delay_revision_limit,
    );
    if let Some(threshold) = &canary.replica_progress_threshold {
        let path = format!("{PATH}.replicaProgressThreshold.value");
        match threshold.type_ {
            ProgressThresholdType::Percent => {
                check.percentage(&path, Some(threshold.value), 100);
            }
            ProgressThresholdType::Pods => check.non_negative(&path, Some(threshold.value)),
        }
    }
    if let Some(anti_affinity) = &canary.anti_affinity {
        validate_anti_affinity(check, &format!("{PATH}.antiAffinity"), anti_affinity);
    }
    if let Some(background) = &canary.analysis {
        let path = format!("{PATH}.analysis");
        validate_rollout_analysis(check, &path, &background.analysis);
        if let Some(start) = background.starting_step {
            let steps = i32::try_from(canary.steps.len()).unwrap_or(i32::MAX);
            if !(0..=steps).contains(&start) {
                check.add(
                    format!("{path}.startingStep"),
                    format!("must be between 0 and the number of steps ({steps}), got {start}"),
                );
            }
        }
    }
    let managed_routes: BTreeSet<&str> = routing
        .map(|routing| {
            routing
                .managed_routes
                .iter()
                .map(|r| r.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    for (index, step) in canary.steps.iter().enumerate() {
        let path = format!("{PATH}.steps[{index}]");
        validate_step(check, &path, step, routing, &managed_routes, max_weight);
    }
}

fn validate_traffic_routing(
    check: &mut Checker,
    canary: &CanaryStrategy,
    routing: &RolloutTrafficRouting,
) {
    const PATH: &str = "spec.strategy.canary.trafficRouting";
    let istio = routing.istio.as_ref();
    let nginx = routing.nginx.as_ref();
    let plugin_only = plugin_only_routers(routing);
    if istio.is_none() && nginx.is_none() && !has_plugins(routing) && plugin_only.is_empty() {
        check.add(
            PATH,
            "must configure at least one router: istio, nginx or plugins",
        );
    }
    for router in plugin_only {
        check.add(
            format!("{PATH}.{router}"),
            format!(
                "the {router} router is not built into Sluice; configure it as a traffic-router plugin under {PATH}.plugins"
            ),
        );
    }
    if let Some(ping_pong) = &canary.ping_pong {
        if ping_pong.ping_service == ping_pong.pong_service {
            check.add(
                "spec.strategy.canary.pingPong",
                "pingService and pongService must be different",
            );
        }
        if nginx.is_some() {
            check.add(
                "spec.strategy.canary.pingPong",
                "is supported with istio and plugin routers only",
            );
        }
    } else {
        let subset_routing_only = istio.is_some_and(|istio| istio.destination_rule.is_some())
            && nginx.is_none()
            && !has_plugins(routing);
        let canary_service = canary.canary_service.as_deref().unwrap_or_default();
        let stable_service = canary.stable_service.as_deref().unwrap_or_default();
        if !subset_routing_only {
            check.required("spec.strategy.canary.canaryService", canary_service);
            check.required("spec.strategy.canary.stableService", stable_service);
        }
        if !canary_service.is_empty() && canary_service == stable_service {
            check.add(
                "spec.strategy.canary.stableService",
                "must be different from canaryService",
            );
        }
    }
    if let Some(max) = routing.max_traffic_weight {
        if max <= 0 {
            check.add(
                format!("{PATH}.maxTrafficWeight"),
                format!("must be greater than 0, got {max}"),
            );
        }
        if istio.is_some() {
            check.add(
                format!("{PATH}.maxTrafficWeight"),
                "is supported with nginx and plugin routers only",
            );
        }
    }
    check.unique(
        &format!("{PATH}.managedRoutes"),
        "managed route",
        routing
            .managed_routes
            .iter()
            .map(|route| route.name.as_str()),
    );
    if let Some(istio) = istio {
        let path = format!("{PATH}.istio");
        if istio.virtual_service.is_some() != istio.virtual_services.is_empty() {
            check.add(
                &path,
                "exactly one of virtualService or virtualServices must be set",
            );
        }
        let services = istio.virtual_service.iter().chain(&istio.virtual_services);
        for (index, service) in services.enumerate() {
            if service.name.trim().is_empty() {
                check.add(
                    format!("{path}.virtualServices[{index}].name"),
                    "is required",
                );
            }
        }
        if let Some(rule) = &istio.destination_rule {
            let rule_path = format!("{path}.destinationRule");
            check.required(&format!("{rule_path}.name"), &rule.name);
            check.required(
                &format!("{rule_path}.canarySubsetName"),
                &rule.canary_subset_name,
            );
            check.required(
                &format!("{rule_path}.stableSubsetName"),
                &rule.stable_subset_name,
            );
            if rule.canary_subset_name == rule.stable_subset_name {
                check.add(
                    format!("{rule_path}.stableSubsetName"),
                    "must be different from canarySubsetName",
                );
            }
        }
    }
    if let Some(nginx) = nginx
        && nginx.stable_ingress.is_some() != nginx.stable_ingresses.is_empty()
    {
        check.add(
            format!("{PATH}.nginx"),
            "exactly one of stableIngress or stableIngresses must be set",
        );
    }
}

fn validate_step(
    check: &mut Checker,
    path: &str,
    step: &CanaryStep,
    routing: Option<&RolloutTrafficRouting>,
    managed_routes: &BTreeSet<&str>,
    max_weight: i32,
) {
    let kinds = step.kinds();
    if kinds.len() != 1 {
        let found = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        };
        check.add(
            path,
            format!(
                "a step must have exactly one of {} (found: {found})",
                CANARY_STEP_KINDS.join(", ")
            ),
        );
        return;
    }
    let requires_routing = |check: &mut Checker, kind: &str| {
        if routing.is_none() {
            check.add(
                format!("{path}.{kind}"),
                "requires spec.strategy.canary.trafficRouting",
            );
        }
    };
    if let Some(weight) = step.set_weight {
        check.percentage(&format!("{path}.setWeight"), Some(weight), max_weight);
    }
    if let Some(duration) = step
        .pause
        .as_ref()
        .and_then(|pause| pause.duration.as_ref())
        && let Err(error) = parse_int_or_duration(duration)
    {
        check.add(format!("{path}.pause.duration"), error.to_string());
    }
    if let Some(scale) = &step.set_canary_scale {
        requires_routing(check, "setCanaryScale");
        let set = [
            scale.weight.is_some(),
            scale.replicas.is_some(),
            scale.match_traffic_weight,
        ];
        if set.iter().filter(|set| **set).count() != 1 {
            check.add(
                format!("{path}.setCanaryScale"),
                "exactly one of weight, replicas or matchTrafficWeight must be set",
            );
        }
        check.percentage(&format!("{path}.setCanaryScale.weight"), scale.weight, 100);
        check.non_negative(&format!("{path}.setCanaryScale.replicas"), scale.replicas);
    }
    if let Some(route) = &step.set_header_route {
        requires_routing(check, "setHeaderRoute");
        validate_route_name(
            check,
            &format!("{path}.setHeaderRoute.name"),
            &route.name,
            managed_routes,
        );
        if let Some(routing) = routing
            && routing.istio.is_none()
            && !has_plugins(routing)
        {
            check.add(
                format!("{path}.setHeaderRoute"),
                "header routes are supported with istio and plugin routers only (for nginx use additionalIngressAnnotations canary-by-header)",
            );
        }
        for (index, header) in route.matches.iter().enumerate() {
            let match_path = format!("{path}.setHeaderRoute.match[{index}]");
            check.required(&format!("{match_path}.headerName"), &header.header_name);
            validate_string_match(
                check,
                &format!("{match_path}.headerValue"),
                &header.header_value,
            );
        }
    }
    if let Some(route) = &step.set_mirror_route {
        requires_routing(check, "setMirrorRoute");
        validate_route_name(
            check,
            &format!("{path}.setMirrorRoute.name"),
            &route.name,
            managed_routes,
        );
        if let Some(routing) = routing
            && routing.istio.is_none()
            && !has_plugins(routing)
        {
            check.add(
                format!("{path}.setMirrorRoute"),
                "mirror routes are supported with istio and plugin routers only",
            );
        }
        check.percentage(
            &format!("{path}.setMirrorRoute.percentage"),
            route.percentage,
            100,
        );
        for (index, matcher) in route.matches.iter().enumerate() {
            let match_path = format!("{path}.setMirrorRoute.match[{index}]");
            if let Some(method) = &matcher.method {
                validate_string_match(check, &format!("{match_path}.method"), method);
            }
            if let Some(uri) = &matcher.path {
                validate_string_match(check, &format!("{match_path}.path"), uri);
            }
            for (name, value) in &matcher.headers {
                validate_string_match(check, &format!("{match_path}.headers.{name}"), value);
            }
        }
    }
    if let Some(analysis) = &step.analysis {
        validate_rollout_analysis(check, &format!("{path}.analysis"), analysis);
    }
    if let Some(experiment) = &step.experiment {
        let experiment_path = format!("{path}.experiment");
        if experiment.templates.is_empty() {
            check.add(
                format!("{experiment_path}.templates"),
                "must list at least one template",
            );
        }
        check.unique(
            &format!("{experiment_path}.templates"),
            "template name",
            experiment
                .templates
                .iter()
                .map(|template| template.name.as_str()),
        );
        for (index, template) in experiment.templates.iter().enumerate() {
            let template_path = format!("{experiment_path}.templates[{index}]");
            check.required(&format!("{template_path}.name"), &template.name);
            check.non_negative(&format!("{template_path}.replicas"), template.replicas);
            if template.weight.is_some() {
                requires_routing(check, &format!("experiment.templates[{index}].weight"));
            }
            check.percentage(&format!("{template_path}.weight"), template.weight, 100);
        }
        if let Some(duration) = &experiment.duration
            && let Err(error) = duration.parse()
        {
            check.add(format!("{experiment_path}.duration"), error.to_string());
        }
        check.unique(
            &format!("{experiment_path}.analyses"),
            "analysis name",
            experiment
                .analyses
                .iter()
                .map(|analysis| analysis.name.as_str()),
        );
        for (index, analysis) in experiment.analyses.iter().enumerate() {
            let analysis_path = format!("{experiment_path}.analyses[{index}]");
            check.required(&format!("{analysis_path}.name"), &analysis.name);
            check.required(
                &format!("{analysis_path}.templateName"),
                &analysis.template_name,
            );
            validate_rollout_args(check, &format!("{analysis_path}.args"), &analysis.args);
        }
    }
    if let Some(plugin) = &step.plugin {
        check.required(&format!("{path}.plugin.name"), &plugin.name);
    }
}

fn validate_route_name(check: &mut Checker, path: &str, name: &str, managed: &BTreeSet<&str>) {
    if name.trim().is_empty() {
        check.add(path, "is required");
    } else if !managed.contains(name) {
        check.add(
            path,
            format!(
                "route {name:?} must be listed in spec.strategy.canary.trafficRouting.managedRoutes"
            ),
        );
    }
}

fn validate_string_match(check: &mut Checker, path: &str, value: &StringMatch) {
    if value.kinds_set() != 1 {
        check.add(path, "exactly one of exact, prefix or regex must be set");
    }
}

fn validate_rollout_analysis(check: &mut Checker, path: &str, analysis: &RolloutAnalysis) {
    if analysis.templates.is_empty() {
        check.add(
            format!("{path}.templates"),
            "must list at least one template",
        );
    }
    for (index, template) in analysis.templates.iter().enumerate() {
        check.required(
            &format!("{path}.templates[{index}].templateName"),
            &template.template_name,
        );
    }
    validate_rollout_args(check, &format!("{path}.args"), &analysis.args);
    validate_dry_run_and_retention(
        check,
        path,
        &analysis.dry_run,
        &analysis.measurement_retention,
        None,
    );
}

fn validate_rollout_args(check: &mut Checker, path: &str, args: &[RolloutAnalysisArgument]) {
    check.unique(path, "argument", args.iter().map(|arg| arg.name.as_str()));
    for (index, arg) in args.iter().enumerate() {
        let arg_path = format!("{path}[{index}]");
        check.required(&format!("{arg_path}.name"), &arg.name);
        match (&arg.value, &arg.value_from) {
            (Some(_), Some(_)) => check.add(arg_path, "only one of value or valueFrom may be set"),
            (None, None) => check.add(arg_path, "one of value or valueFrom is required"),
            (None, Some(from)) => {
                if from.pod_template_hash_value.is_some() == from.field_ref.is_some() {
                    check.add(
                        format!("{arg_path}.valueFrom"),
                        "exactly one of podTemplateHashValue or fieldRef must be set",
                    );
                }
                if let Some(field) = &from.field_ref {
                    check.required(
                        &format!("{arg_path}.valueFrom.fieldRef.fieldPath"),
                        &field.field_path,
                    );
                }
            }
            (Some(_), None) => {}
        }
    }
}

fn validate_dry_run_and_retention(
    check: &mut Checker,
    path: &str,
    dry_run: &[DryRun],
    retention: &[MeasurementRetention],
    metric_names: Option<&BTreeSet<&str>>,
) {
    let known = |name: &str| name == "*" || metric_names.is_none_or(|names| names.contains(name));
    for (index, entry) in dry_run.iter().enumerate() {
        let entry_path = format!("{path}.dryRun[{index}].metricName");
        check.required(&entry_path, &entry.metric_name);
        if !entry.metric_name.is_empty() && !known(&entry.metric_name) {
            check.add(
                entry_path,
                format!("no metric named {:?}", entry.metric_name),
            );
        }
    }
    for (index, entry) in retention.iter().enumerate() {
        let entry_path = format!("{path}.measurementRetention[{index}]");
        check.required(&format!("{entry_path}.metricName"), &entry.metric_name);
        if !entry.metric_name.is_empty() && !known(&entry.metric_name) {
            check.add(
                format!("{entry_path}.metricName"),
                format!("no metric named {:?}", entry.metric_name),
            );
        }
        if entry.limit <= 0 {
            check.add(
                format!("{entry_path}.limit"),
                format!("must be greater than 0, got {}", entry.limit),
            );
        }
    }
}

/// Checks an AnalysisTemplate or ClusterAnalysisTemplate spec. Templates that only compose
/// other templates (`templates`) may have no metrics of their own.
pub fn validate_analysis_template(spec: &AnalysisTemplateSpec) -> Vec<Violation> {
    let mut check = Checker::default();
    if spec.metrics.is_empty() && spec.templates.is_empty() {
        check.add("spec.metrics", "must list at least one metric");
    }
    for (index, template) in spec.templates.iter().enumerate() {
        check.required(
            &format!("spec.templates[{index}].templateName"),
            &template.template_name,
        );
    }
    validate_metric_set(
        &mut check,
        &spec.metrics,
        &spec.args,
        &spec.dry_run,
        &spec.measurement_retention,
        spec.templates.is_empty(),
    );
    check.violations
}

/// Checks an AnalysisRun spec.
pub fn validate_analysis_run(spec: &AnalysisRunSpec) -> Vec<Violation> {
    let mut check = Checker::default();
    if spec.metrics.is_empty() {
        check.add("spec.metrics", "must list at least one metric");
    }
    validate_metric_set(
        &mut check,
        &spec.metrics,
        &spec.args,
        &spec.dry_run,
        &spec.measurement_retention,
        true,
    );
    check.violations
}

fn validate_metric_set(
    check: &mut Checker,
    metrics: &[Metric],
    args: &[Argument],
    dry_run: &[DryRun],
    retention: &[MeasurementRetention],
    complete: bool,
) {
    check.unique(
        "spec.metrics",
        "metric name",
        metrics.iter().map(|metric| metric.name.as_str()),
    );
    check.unique(
        "spec.args",
        "argument",
        args.iter().map(|arg| arg.name.as_str()),
    );
    for (index, arg) in args.iter().enumerate() {
        let path = format!("spec.args[{index}]");
        check.required(&format!("{path}.name"), &arg.name);
        if let Some(from) = &arg.value_from {
            if arg.value.is_some() {
                check.add(&path, "only one of value or valueFrom may be set");
            }
            if from.secret_key_ref.is_some() == from.field_ref.is_some() {
                check.add(
                    format!("{path}.valueFrom"),
                    "exactly one of secretKeyRef or fieldRef must be set",
                );
            }
        }
    }
    let declared: BTreeSet<&str> = args.iter().map(|arg| arg.name.as_str()).collect();
    for (index, metric) in metrics.iter().enumerate() {
        let path = format!("spec.metrics[{index}]");
        validate_metric(check, &path, metric);
        if complete {
            validate_placeholders(check, &path, metric, &declared);
        }
    }
    let names: BTreeSet<&str> = metrics.iter().map(|metric| metric.name.as_str()).collect();
    let names = complete.then_some(&names);
    validate_dry_run_and_retention(check, "spec", dry_run, retention, names);
}

/// An `IntOrString` metric field: a number, a `{{args.x}}` placeholder, or invalid.
enum LimitValue {
    Number(i32),
    Placeholder,
    Invalid(String),
}

fn limit_value(value: &IntOrString) -> LimitValue {
    match value {
        IntOrString::Int(number) => LimitValue::Number(*number),
        IntOrString::String(text) => match text.trim().parse() {
            Ok(number) => LimitValue::Number(number),
            Err(_) if text.contains("{{") => LimitValue::Placeholder,
            Err(_) => LimitValue::Invalid(text.clone()),
        },
    }
}

fn validate_metric(check: &mut Checker, path: &str, metric: &Metric) {
    check.required(&format!("{path}.name"), &metric.name);
    let mut numbers = BTreeMap::new();
    let fields = [
        ("count", &metric.count),
        ("failureLimit", &metric.failure_limit),
        ("inconclusiveLimit", &metric.inconclusive_limit),
        ("consecutiveErrorLimit", &metric.consecutive_error_limit),
        ("consecutiveSuccessLimit", &metric.consecutive_success_limit),
    ];
    for (field, value) in fields {
        match value.as_ref().map(limit_value) {
            Some(LimitValue::Number(number)) => {
                numbers.insert(field, number);
            }
            Some(LimitValue::Invalid(text)) => check.add(
                format!("{path}.{field}"),
                format!("must be an integer or an {{{{args.NAME}}}} placeholder, got {text:?}"),
            ),
            Some(LimitValue::Placeholder) | None => {}
        }
    }
    let failure_limit = numbers.get("failureLimit").copied();
    let success_limit = numbers.get("consecutiveSuccessLimit").copied();
    if let Some(limit) = failure_limit.filter(|limit| *limit < -1) {
        check.add(
            format!("{path}.failureLimit"),
            format!("must be -1 (no limit) or greater, got {limit}"),
        );
    }
    if failure_limit == Some(-1) && success_limit.unwrap_or(0) == 0 {
        check.add(
            format!("{path}.failureLimit"),
            "-1 (no limit) requires consecutiveSuccessLimit greater than 0, or the metric could never fail nor succeed",
        );
    }
    for field in [
        "inconclusiveLimit",
        "consecutiveErrorLimit",
        "consecutiveSuccessLimit",
    ] {
        check.non_negative(&format!("{path}.{field}"), numbers.get(field).copied());
    }
    if let Some(count) = numbers.get("count").copied() {
        if count < 1 {
            check.add(
                format!("{path}.count"),
                format!("must be at least 1, got {count}"),
            );
        }
        let needed = failure_limit.unwrap_or(0).max(0) + success_limit.unwrap_or(0);
        if count < needed {
            check.add(
                format!("{path}.count"),
                format!(
                    "must be at least failureLimit + consecutiveSuccessLimit ({needed}), got {count}"
                ),
            );
        }
        let inconclusive = numbers.get("inconclusiveLimit").copied().unwrap_or(0);
        if count < inconclusive {
            check.add(
                format!("{path}.count"),
                format!("must be at least inconclusiveLimit ({inconclusive}), got {count}"),
            );
        }
        if count > 1 && metric.interval.is_none() {
            check.add(
                format!("{path}.interval"),
                format!("is required when count is greater than 1 (count is {count})"),
            );
        }
    }
    for (field, value) in [
        ("interval", &metric.interval),
        ("initialDelay", &metric.initial_delay),
    ] {
        if let Some(value) = value
            && !value.0.contains("{{")
            && let Err(error) = parse_go_duration(&value.0)
        {
            check.add(format!("{path}.{field}"), error.to_string());
        }
    }
    validate_provider(check, &format!("{path}.provider"), metric);
}

fn validate_provider(check: &mut Checker, path: &str, metric: &Metric) {
    let provider = &metric.provider;
    let kinds = provider.kinds();
    match kinds.len() {
        0 => {
            check.add(
                path,
                "one provider is required (prometheus, web, job or plugin)",
            );
            return;
        }
        1 => {}
        _ => {
            check.add(
                path,
                format!(
                    "exactly one provider may be set, found: {}",
                    kinds.join(", ")
                ),
            );
            return;
        }
    }
    if let Some(plugins) = &provider.plugin
        && plugins.len() != 1
    {
        check.add(
            format!("{path}.plugin"),
            format!("must name exactly one plugin, found {}", plugins.len()),
        );
    }
    if let Some(prometheus) = &provider.prometheus {
        check.required(&format!("{path}.prometheus.query"), &prometheus.query);
        if let Some(timeout) = prometheus.timeout.filter(|timeout| *timeout <= 0) {
            check.add(
                format!("{path}.prometheus.timeout"),
                format!("must be greater than 0 seconds, got {timeout}"),
            );
        }
        if let Some(basic) = prometheus
            .authentication
            .as_ref()
            .and_then(|auth| auth.basic_auth.as_ref())
            && (basic.username.is_empty() || basic.password.is_empty())
        {
            check.add(
                format!("{path}.prometheus.authentication.basicAuth"),
                "username and password are both required",
            );
        }
    }
    if let Some(web) = &provider.web {
        check.required(&format!("{path}.web.url"), &web.url);
        if web.body.is_some() && web.json_body.is_some() {
            check.add(
                format!("{path}.web"),
                "only one of body or jsonBody may be set",
            );
        }
        let has_body = web.body.is_some() || web.json_body.is_some();
        if has_body && matches!(web.method, None | Some(WebMetricMethod::Get)) {
            check.add(
                format!("{path}.web.method"),
                "a request body requires method POST or PUT",
            );
        }
        if let Some(timeout) = web.timeout_seconds.filter(|timeout| *timeout <= 0) {
            check.add(
                format!("{path}.web.timeoutSeconds"),
                format!("must be greater than 0, got {timeout}"),
            );
        }
    }
    let plugin_only = [
        ("datadog", provider.datadog.is_some()),
        ("newRelic", provider.new_relic.is_some()),
        ("wavefront", provider.wavefront.is_some()),
        ("kayenta", provider.kayenta.is_some()),
        ("cloudWatch", provider.cloud_watch.is_some()),
        ("graphite", provider.graphite.is_some()),
        ("influxdb", provider.influxdb.is_some()),
        ("skywalking", provider.skywalking.is_some()),
    ];
    for (kind, set) in plugin_only {
        if set {
            check.add(
                format!("{path}.{kind}"),
                format!(
                    "the {kind} provider is not built into Sluice; configure it as a metric-provider plugin under {path}.plugin"
                ),
            );
        }
    }
}

/// Names of the `{{args.NAME}}` placeholders in a text.
pub fn placeholders(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        if let Some(name) = after[..end].trim().strip_prefix("args.") {
            names.insert(name.trim().to_string());
        }
        rest = &after[end + 2..];
    }
    names
}

fn validate_placeholders(
    check: &mut Checker,
    path: &str,
    metric: &Metric,
    declared: &BTreeSet<&str>,
) {
    let text = serde_json::to_string(metric).unwrap_or_default();
    for name in placeholders(&text) {
        if !declared.contains(name.as_str()) {
            check.add(
                path,
                format!("uses {{{{args.{name}}}}}, which spec.args does not declare"),
            );
        }
    }
}

/// Checks an Experiment.
pub fn validate_experiment(experiment: &Experiment) -> Vec<Violation> {
    let mut check = Checker::default();
    let spec = &experiment.spec;
    if spec.templates.is_empty() {
        check.add("spec.templates", "must list at least one template");
    }
    check.unique(
        "spec.templates",
        "template name",
        spec.templates.iter().map(|template| template.name.as_str()),
    );
    for (index, template) in spec.templates.iter().enumerate() {
        let path = format!("spec.templates[{index}]");
        check.required(&format!("{path}.name"), &template.name);
        check.non_negative(&format!("{path}.replicas"), template.replicas);
        match &template.selector {
            None => check.add(format!("{path}.selector"), "is required"),
            Some(selector) if selector_is_empty(selector) => {
                check.add(format!("{path}.selector"), "must not be empty");
            }
            Some(selector) => {
                let labels = template
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|meta| meta.labels.clone())
                    .unwrap_or_default();
                if !selector_matches(selector, &labels) {
                    check.add(
                        format!("{path}.selector"),
                        format!("does not match {path}.template.metadata.labels"),
                    );
                }
            }
        }
    }
    if let Some(duration) = &spec.duration
        && let Err(error) = duration.parse()
    {
        check.add("spec.duration", error.to_string());
    }
    check.non_negative(
        "spec.progressDeadlineSeconds",
        spec.progress_deadline_seconds,
    );
    check.unique(
        "spec.analyses",
        "analysis name",
        spec.analyses.iter().map(|analysis| analysis.name.as_str()),
    );
    for (index, analysis) in spec.analyses.iter().enumerate() {
        let path = format!("spec.analyses[{index}]");
        check.required(&format!("{path}.name"), &analysis.name);
        check.required(&format!("{path}.templateName"), &analysis.template_name);
    }
    validate_dry_run_and_retention(
        &mut check,
        "spec",
        &spec.dry_run,
        &spec.measurement_retention,
        None,
    );
    check.violations
}
