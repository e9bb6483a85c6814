//! Pure rewrites of a route's rules: weights, header rules, mirror rules and their removal.
//!
//! Nothing here calls the host; `lib.rs` reads the route, applies one of these functions and
//! writes the result back, so all routing logic is unit-tested natively.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use sluice_plugin_sdk::{PluginError, RouteMatch, StringMatch, WeightDestination};

use crate::managed::ManagedRecord;
use crate::model::{BackendRef, HeaderMatch, Match, Route, Rule};

/// Which route a rewrite is about and for whom.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// How the route is named in messages, e.g. `HTTPRoute shop/web`.
    pub route: &'a str,
    /// The Rollout's name (key of its [`ManagedRecord`] entry).
    pub rollout: &'a str,
    /// The canary Service.
    pub canary: &'a str,
    /// The stable Service.
    pub stable: &'a str,
}

/// Why a rewrite is impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// No rule of the route references the canary or the stable Service.
    #[error(
        "{route} has no rule with a backendRef to the canary service {canary:?} or the stable service {stable:?}"
    )]
    NoCanaryOrStable {
        /// The route.
        route: String,
        /// The canary Service.
        canary: String,
        /// The stable Service.
        stable: String,
    },
    /// A rule references one of canary and stable but not the other.
    #[error("{route} rule {rule} has no backendRef to the {role} service {service:?}")]
    MissingBackend {
        /// The route.
        route: String,
        /// The rule's index and name.
        rule: String,
        /// `canary` or `stable`.
        role: &'static str,
        /// The missing Service.
        service: String,
    },
    /// A weight outside 0–100.
    #[error("{what} weight {weight} is outside 0..=100")]
    WeightOutOfRange {
        /// Which weight.
        what: String,
        /// The value.
        weight: i32,
    },
    /// An additional destination that cannot be a backendRef of its own.
    #[error(
        "additional destination {0:?} must name a Service other than the canary and stable services"
    )]
    InvalidDestination(String),
    /// A rule with the managed rule's name exists and is not managed by this Rollout.
    #[error(
        "{route} already has a rule named {name:?} that Sluice does not manage for this Rollout; rename the managed route"
    )]
    RuleNameTaken {
        /// The route.
        route: String,
        /// The rule name.
        name: String,
    },
    /// A match Gateway API cannot express.
    #[error("{0}")]
    InvalidMatch(String),
}

impl From<RewriteError> for PluginError {
    fn from(error: RewriteError) -> Self {
        match error {
            RewriteError::NoCanaryOrStable { .. } | RewriteError::MissingBackend { .. } => {
                Self::NotFound(error.to_string())
            }
            RewriteError::WeightOutOfRange { .. }
            | RewriteError::InvalidDestination(_)
            | RewriteError::RuleNameTaken { .. }
            | RewriteError::InvalidMatch(_) => Self::InvalidConfig(error.to_string()),
        }
    }
}

/// The stable weight for a canary weight and the additional destinations, floored at 0.
pub fn stable_weight(canary_weight: i32, additional: &[WeightDestination]) -> i32 {
    let additional_total: i32 = additional.iter().map(|d| d.weight).sum();
    (100 - canary_weight - additional_total).max(0)
}

fn check_weights(
    target: &Target<'_>,
    weight: i32,
    additional: &[WeightDestination],
) -> Result<(), RewriteError> {
    if !(0..=100).contains(&weight) {
        return Err(RewriteError::WeightOutOfRange {
            what: "desired".into(),
            weight,
        });
    }
    for destination in additional {
        let service = destination.service_name.as_str();
        if service.is_empty() || service == target.canary || service == target.stable {
            return Err(RewriteError::InvalidDestination(service.to_owned()));
        }
        if !(0..=100).contains(&destination.weight) {
            return Err(RewriteError::WeightOutOfRange {
                what: format!("additional destination {service:?}"),
                weight: destination.weight,
            });
        }
    }
    Ok(())
}

fn describe_rule(index: usize, rule: &Rule) -> String {
    match &rule.name {
        Some(name) => format!("{index} ({name:?})"),
        None => index.to_string(),
    }
}

/// A backendRef to `name` shaped like `template` (same group, kind, namespace and port).
fn backend_like(template: &BackendRef, name: &str, weight: Option<i32>) -> BackendRef {
    let mut rest = Map::new();
    for field in ["group", "kind", "namespace", "port"] {
        if let Some(value) = template.rest.get(field) {
            rest.insert(field.to_owned(), value.clone());
        }
    }
    BackendRef {
        name: name.to_owned(),
        weight,
        rest,
    }
}

/// Checks that a rule referencing canary or stable references both.
fn check_pair(target: &Target<'_>, index: usize, rule: &Rule) -> Result<(), RewriteError> {
    for (role, service) in [("canary", target.canary), ("stable", target.stable)] {
        if !rule.references(service) {
            return Err(RewriteError::MissingBackend {
                route: target.route.to_owned(),
                rule: describe_rule(index, rule),
                role,
                service: service.to_owned(),
            });
        }
    }
    Ok(())
}

fn no_canary_or_stable(target: &Target<'_>) -> RewriteError {
    RewriteError::NoCanaryOrStable {
        route: target.route.to_owned(),
        canary: target.canary.to_owned(),
        stable: target.stable.to_owned(),
    }
}

/// Whether the rule takes part in the weighted split: it is not a header rule and it references
/// the canary or the stable Service.
fn is_weighted(rule: &Rule, header_rules: &BTreeSet<&str>, target: &Target<'_>) -> bool {
    !rule
        .name
        .as_deref()
        .is_some_and(|name| header_rules.contains(name))
        && (rule.references(target.canary) || rule.references(target.stable))
}

/// Sets canary = `weight`, stable = 100 − `weight` − Σ additional, and the additional
/// destinations in every weighted rule; drops additional backends of this Rollout that are no
/// longer passed. Other backends and rules that reference neither service are left untouched.
pub fn set_weights(
    route: &mut Route,
    record: &mut ManagedRecord,
    target: &Target<'_>,
    weight: i32,
    additional: &[WeightDestination],
) -> Result<(), RewriteError> {
    check_weights(target, weight, additional)?;
    let stable = stable_weight(weight, additional);
    let wanted: BTreeSet<String> = additional.iter().map(|d| d.service_name.clone()).collect();
    let stale: BTreeSet<String> = record
        .rollout(target.rollout)
        .map(|r| r.additional_backends.difference(&wanted).cloned().collect())
        .unwrap_or_default();
    let header_rules: BTreeSet<String> = record
        .header_rule_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let header_rules: BTreeSet<&str> = header_rules.iter().map(String::as_str).collect();
    let mut weighted_rules = 0;
    for (index, rule) in route.spec.rules.iter_mut().enumerate() {
        if !is_weighted(rule, &header_rules, target) {
            continue;
        }
        check_pair(target, index, rule)?;
        weighted_rules += 1;
        let backends = rule.backend_refs.get_or_insert_with(Vec::new);
        backends.retain(|backend| !stale.contains(&backend.name));
        let template = backends
            .iter()
            .find(|b| b.name == target.canary)
            .cloned()
            .unwrap_or_default();
        for backend in backends.iter_mut() {
            if backend.name == target.canary {
                backend.weight = Some(weight);
            } else if backend.name == target.stable {
                backend.weight = Some(stable);
            }
        }
        for destination in additional {
            match backends
                .iter_mut()
                .find(|b| b.name == destination.service_name)
            {
                Some(backend) => backend.weight = Some(destination.weight),
                None => backends.push(backend_like(
                    &template,
                    &destination.service_name,
                    Some(destination.weight),
                )),
            }
        }
    }
    if weighted_rules == 0 {
        return Err(no_canary_or_stable(target));
    }
    record.rollout_mut(target.rollout).additional_backends = wanted;
    Ok(())
}

/// Whether every weighted rule carries exactly the weights [`set_weights`] would set.
pub fn weights_match(
    route: &Route,
    record: &ManagedRecord,
    target: &Target<'_>,
    weight: i32,
    additional: &[WeightDestination],
) -> bool {
    let stable = stable_weight(weight, additional);
    let wanted: BTreeSet<&str> = additional.iter().map(|d| d.service_name.as_str()).collect();
    let stale: BTreeSet<&str> = record
        .rollout(target.rollout)
        .map(|r| {
            r.additional_backends
                .iter()
                .map(String::as_str)
                .filter(|s| !wanted.contains(s))
                .collect()
        })
        .unwrap_or_default();
    let header_rules = record.header_rule_names();
    let mut weighted = route
        .spec
        .rules
        .iter()
        .filter(|rule| is_weighted(rule, &header_rules, target))
        .peekable();
    if weighted.peek().is_none() {
        return false;
    }
    weighted.all(|rule| {
        let backends = rule.backends();
        let all_named = |service: &str, expected: i32| {
            backends
                .iter()
                .filter(|b| b.name == service)
                .all(|b| b.effective_weight() == expected)
        };
        rule.references(target.canary)
            && rule.references(target.stable)
            && all_named(target.canary, weight)
            && all_named(target.stable, stable)
            && additional
                .iter()
                .all(|d| rule.references(&d.service_name) && all_named(&d.service_name, d.weight))
            && !backends.iter().any(|b| stale.contains(b.name.as_str()))
    })
}

/// A rule name from a managed route name: a DNS label of at most 60 characters.
pub fn rule_name(managed_route: &str) -> String {
    let lowered: String = managed_route
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed: String = lowered.trim_matches('-').chars().take(60).collect();
    let trimmed = trimmed.trim_end_matches('-');
    if trimmed.is_empty() {
        "sluice-managed".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A Gateway API header match; a prefix becomes the regular expression `<escaped prefix>.*`
/// (Gateway API has no prefix header match; upstream does the same without escaping).
pub fn header_match(name: &str, value: &StringMatch) -> Result<HeaderMatch, RewriteError> {
    if name.is_empty() {
        return Err(RewriteError::InvalidMatch(
            "a header match has an empty header name".into(),
        ));
    }
    let (match_type, value) = match value {
        StringMatch::Exact(value) => ("Exact", value.clone()),
        StringMatch::Prefix(prefix) => ("RegularExpression", format!("{}.*", regex_escape(prefix))),
        StringMatch::Regex(pattern) => ("RegularExpression", pattern.clone()),
    };
    Ok(HeaderMatch {
        match_type: Some(match_type.to_owned()),
        name: name.to_owned(),
        value,
        rest: Map::new(),
    })
}

/// The HTTP matches of a mirror route (method exact only, as in Gateway API).
pub fn mirror_matches(matches: &[RouteMatch]) -> Result<Vec<Match>, RewriteError> {
    matches
        .iter()
        .map(|route_match| {
            let mut rest = Map::new();
            match &route_match.method {
                None => {}
                Some(StringMatch::Exact(method)) => {
                    rest.insert("method".into(), Value::String(method.to_ascii_uppercase()));
                }
                Some(_) => {
                    return Err(RewriteError::InvalidMatch(
                        "Gateway API matches HTTP methods exactly; a prefix or regex method match is not supported".into(),
                    ));
                }
            }
            if let Some(path) = &route_match.path {
                let (path_type, value) = match path {
                    StringMatch::Exact(value) => ("Exact", value),
                    StringMatch::Prefix(value) => ("PathPrefix", value),
                    StringMatch::Regex(value) => ("RegularExpression", value),
                };
                rest.insert("path".into(), json!({"type": path_type, "value": value}));
            }
            let headers = route_match
                .headers
                .iter()
                .map(|(name, value)| header_match(name, value))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Match { headers: (!headers.is_empty()).then_some(headers), rest })
        })
        .collect()
}

/// `matches` with `headers` added to each (same-named header matches replaced); no matches
/// becomes one match with just the headers.
fn with_headers(matches: Option<&Vec<Match>>, headers: &[HeaderMatch]) -> Vec<Match> {
    let base = matches
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| vec![Match::default()]);
    base.into_iter()
        .map(|mut m| {
            let mut list = m.headers.take().unwrap_or_default();
            list.retain(|existing| {
                !headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(&existing.name))
            });
            list.extend(headers.iter().cloned());
            m.headers = Some(list);
            m
        })
        .collect()
}

/// Removes the rules with these names.
fn remove_rules(route: &mut Route, names: &[String]) {
    route
        .spec
        .rules
        .retain(|rule| !rule.name.as_ref().is_some_and(|name| names.contains(name)));
}

/// The rules new managed rules are derived from: unmanaged rules referencing canary or stable.
fn source_rules(route: &Route, record: &ManagedRecord, target: &Target<'_>) -> Vec<(usize, Rule)> {
    let managed = record.managed_rule_names();
    route
        .spec
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| is_weighted(rule, &managed, target))
        .map(|(index, rule)| (index, rule.clone()))
        .collect()
}

fn check_name_free(route: &Route, target: &Target<'_>, name: &str) -> Result<(), RewriteError> {
    if route
        .spec
        .rules
        .iter()
        .any(|rule| rule.name.as_deref() == Some(name))
    {
        return Err(RewriteError::RuleNameTaken {
            route: target.route.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The canary backendRef of a source rule (checked to exist by [`check_pair`]).
fn canary_backend(rule: &Rule, target: &Target<'_>) -> BackendRef {
    rule.backends()
        .iter()
        .find(|b| b.name == target.canary)
        .cloned()
        .unwrap_or_default()
}

/// Upserts the header route `name`: removes its old rules, then (unless `headers` is empty)
/// adds one rule per source rule, named `<name>`, `<name>-1`, …, whose matches are the source
/// matches plus `headers` and whose only backendRef is the canary.
pub fn set_header_route(
    route: &mut Route,
    record: &mut ManagedRecord,
    target: &Target<'_>,
    name: &str,
    headers: &[HeaderMatch],
) -> Result<(), RewriteError> {
    let old = record
        .rollout_mut(target.rollout)
        .header_routes
        .remove(name)
        .unwrap_or_default();
    remove_rules(route, &old);
    if headers.is_empty() {
        return Ok(());
    }
    let sources = source_rules(route, record, target);
    if sources.is_empty() {
        return Err(no_canary_or_stable(target));
    }
    let base = rule_name(name);
    let mut names = Vec::with_capacity(sources.len());
    for (position, (index, source)) in sources.into_iter().enumerate() {
        check_pair(target, index, &source)?;
        let rule_name = if position == 0 {
            base.clone()
        } else {
            format!("{base}-{position}")
        };
        check_name_free(route, target, &rule_name)?;
        let canary = BackendRef {
            weight: None,
            ..canary_backend(&source, target)
        };
        route.spec.rules.push(Rule {
            name: Some(rule_name.clone()),
            matches: Some(with_headers(source.matches.as_ref(), headers)),
            filters: source.filters.clone(),
            backend_refs: Some(vec![canary]),
            rest: source.rest.clone(),
        });
        names.push(rule_name);
    }
    record
        .rollout_mut(target.rollout)
        .header_routes
        .insert(name.to_owned(), names);
    Ok(())
}

/// Upserts the mirror route `name` on an HTTPRoute: removes its old rule, then (unless
/// `matches` is empty) adds a rule `<name>` with these matches that forwards like the first
/// weighted rule (its backendRefs and filters) and mirrors `percent` % (default 100) of the
/// matching requests to the canary with a `RequestMirror` filter.
pub fn set_mirror_route(
    route: &mut Route,
    record: &mut ManagedRecord,
    target: &Target<'_>,
    name: &str,
    matches: Vec<Match>,
    percent: Option<i32>,
) -> Result<(), RewriteError> {
    let old = record
        .rollout_mut(target.rollout)
        .mirror_routes
        .remove(name)
        .unwrap_or_default();
    remove_rules(route, &old);
    if matches.is_empty() {
        return Ok(());
    }
    if let Some(percent) = percent.filter(|p| !(0..=100).contains(p)) {
        return Err(RewriteError::WeightOutOfRange {
            what: "mirror percentage".into(),
            weight: percent,
        });
    }
    let (index, source) = source_rules(route, record, target)
        .into_iter()
        .next()
        .ok_or_else(|| no_canary_or_stable(target))?;
    check_pair(target, index, &source)?;
    let rule_name = rule_name(name);
    check_name_free(route, target, &rule_name)?;
    let mut mirror = json!({"backendRef": canary_backend(&source, target).object_reference()});
    if let Some(percent) = percent.filter(|p| *p < 100) {
        mirror["percent"] = json!(percent);
    }
    let mut filters = source.filters.clone().unwrap_or_default();
    filters.push(json!({"type": "RequestMirror", "requestMirror": mirror}));
    route.spec.rules.push(Rule {
        name: Some(rule_name.clone()),
        matches: Some(matches),
        filters: Some(filters),
        backend_refs: source.backend_refs.clone(),
        rest: Map::new(),
    });
    record
        .rollout_mut(target.rollout)
        .mirror_routes
        .insert(name.to_owned(), vec![rule_name]);
    Ok(())
}

/// Removes every header and mirror rule the Rollout manages on the route.
pub fn remove_managed_routes(route: &mut Route, record: &mut ManagedRecord, rollout: &str) {
    let entry = record.rollout_mut(rollout);
    let names: Vec<String> = std::mem::take(&mut entry.header_routes)
        .into_values()
        .chain(std::mem::take(&mut entry.mirror_routes).into_values())
        .flatten()
        .collect();
    remove_rules(route, &names);
}

/// Names of rules in `after` that no rule of `before` has.
pub fn added_rule_names(before: &[Rule], after: &[Rule]) -> Vec<String> {
    let existing: BTreeSet<&str> = before.iter().filter_map(|r| r.name.as_deref()).collect();
    after
        .iter()
        .filter_map(|r| r.name.as_deref())
        .filter(|n| !existing.contains(n))
        .map(str::to_owned)
        .collect()
}

/// Which of `names` no rule of `route` has.
pub fn missing_rule_names(route: &Route, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            !route
                .spec
                .rules
                .iter()
                .any(|r| r.name.as_ref() == Some(*name))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TARGET: Target<'static> = Target {
        route: "HTTPRoute shop/web",
        rollout: "web",
        canary: "web-canary",
        stable: "web-stable",
    };

    fn route() -> Route {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3"},
            "spec": {"rules": [
                {
                    "name": "main",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "method": "GET"}],
                    "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x", "value": "y"}]}}],
                    "backendRefs": [
                        {"name": "web-stable", "port": 80, "weight": 100},
                        {"name": "web-canary", "port": 80, "weight": 0},
                        {"name": "legacy", "port": 81, "weight": 7}
                    ],
                    "timeouts": {"request": "5s"}
                },
                {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}], "backendRefs": [{"name": "cdn", "port": 80}]},
                {"backendRefs": [{"name": "web-canary", "port": 80}, {"name": "web-stable", "port": 80}]}
            ]}
        }))
        .unwrap()
    }

    fn destination(service: &str, weight: i32) -> WeightDestination {
        WeightDestination {
            service_name: service.into(),
            pod_template_hash: "abc".into(),
            weight,
        }
    }

    fn weight_of(rule: &Rule, service: &str) -> Option<i32> {
        rule.backends()
            .iter()
            .find(|b| b.name == service)
            .map(BackendRef::effective_weight)
    }

    fn names(route: &Route) -> Vec<Option<&str>> {
        route.spec.rules.iter().map(|r| r.name.as_deref()).collect()
    }

    #[test]
    fn weights_are_set_in_every_weighted_rule_and_nothing_else_changes() {
        for weight in [0, 5, 50, 100] {
            let mut route = route();
            let original = route.clone();
            let mut record = ManagedRecord::default();
            set_weights(&mut route, &mut record, &TARGET, weight, &[]).unwrap();
            for index in [0, 2] {
                assert_eq!(
                    weight_of(&route.spec.rules[index], "web-canary"),
                    Some(weight)
                );
                assert_eq!(
                    weight_of(&route.spec.rules[index], "web-stable"),
                    Some(100 - weight)
                );
            }
            assert_eq!(
                weight_of(&route.spec.rules[0], "legacy"),
                Some(7),
                "unmanaged backend untouched"
            );
            assert_eq!(
                route.spec.rules[1], original.spec.rules[1],
                "unrelated rule untouched"
            );
            assert_eq!(route.spec.rules[0].rest, original.spec.rules[0].rest);
            assert_eq!(
                route.spec.rules[0].backends()[0].rest,
                original.spec.rules[0].backends()[0].rest
            );
            assert!(weights_match(&route, &record, &TARGET, weight, &[]));
            assert!(!weights_match(
                &route,
                &record,
                &TARGET,
                (weight + 1) % 101,
                &[]
            ));
            assert_eq!(record.to_annotation(), None);
        }
    }

    #[test]
    fn additional_destinations_are_added_updated_and_removed() {
        let mut route = route();
        let mut record = ManagedRecord::default();
        let both = [destination("exp-a", 10), destination("exp-b", 5)];
        set_weights(&mut route, &mut record, &TARGET, 20, &both).unwrap();
        let rule = &route.spec.rules[0];
        assert_eq!(
            (weight_of(rule, "web-canary"), weight_of(rule, "web-stable")),
            (Some(20), Some(65))
        );
        assert_eq!(
            (weight_of(rule, "exp-a"), weight_of(rule, "exp-b")),
            (Some(10), Some(5))
        );
        let added = rule.backends().iter().find(|b| b.name == "exp-a").unwrap();
        assert_eq!(
            serde_json::to_value(added).unwrap(),
            json!({"name": "exp-a", "port": 80, "weight": 10})
        );
        assert!(weights_match(&route, &record, &TARGET, 20, &both));
        assert!(!weights_match(&route, &record, &TARGET, 20, &both[..1]));

        let one = [destination("exp-a", 30)];
        set_weights(&mut route, &mut record, &TARGET, 20, &one).unwrap();
        for index in [0, 2] {
            let rule = &route.spec.rules[index];
            assert_eq!(
                (weight_of(rule, "exp-a"), weight_of(rule, "exp-b")),
                (Some(30), None)
            );
            assert_eq!(weight_of(rule, "web-stable"), Some(50));
        }
        assert!(weights_match(&route, &record, &TARGET, 20, &one));

        set_weights(&mut route, &mut record, &TARGET, 0, &[]).unwrap();
        assert!(route.spec.rules.iter().all(|r| !r.references("exp-a")));
        assert_eq!(weight_of(&route.spec.rules[0], "legacy"), Some(7));
        assert_eq!(record.to_annotation(), None);
        assert_eq!(
            stable_weight(90, &[destination("x", 20)]),
            0,
            "floored at 0"
        );
    }

    #[test]
    fn missing_backends_are_named() {
        let mut route = route();
        route.spec.rules[2]
            .backend_refs
            .as_mut()
            .unwrap()
            .retain(|b| b.name != "web-stable");
        let error =
            set_weights(&mut route, &mut ManagedRecord::default(), &TARGET, 10, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "HTTPRoute shop/web rule 2 has no backendRef to the stable service \"web-stable\""
        );
        assert!(matches!(PluginError::from(error), PluginError::NotFound(_)));

        let mut unrelated = route.clone();
        unrelated.spec.rules.retain(|r| !r.references("web-canary"));
        let error = set_weights(
            &mut unrelated,
            &mut ManagedRecord::default(),
            &TARGET,
            10,
            &[],
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no rule with a backendRef to the canary service \"web-canary\""),
            "{error}"
        );
        assert!(!weights_match(
            &unrelated,
            &ManagedRecord::default(),
            &TARGET,
            10,
            &[]
        ));
    }

    #[test]
    fn out_of_range_weights_and_bad_destinations_are_refused() {
        let mut route = route();
        let mut record = ManagedRecord::default();
        for (weight, additional) in [
            (101, vec![]),
            (-1, vec![]),
            (10, vec![destination("web-stable", 5)]),
            (10, vec![destination("", 5)]),
            (10, vec![destination("exp", 200)]),
        ] {
            let error =
                set_weights(&mut route, &mut record, &TARGET, weight, &additional).unwrap_err();
            assert!(matches!(
                PluginError::from(error),
                PluginError::InvalidConfig(_)
            ));
        }
    }

    fn exact(name: &str, value: &str) -> HeaderMatch {
        header_match(name, &StringMatch::Exact(value.into())).unwrap()
    }

    #[test]
    fn header_routes_are_added_per_source_rule_replaced_and_removed() {
        let mut route = route();
        let mut record = ManagedRecord::default();
        set_weights(&mut route, &mut record, &TARGET, 10, &[]).unwrap();
        set_header_route(
            &mut route,
            &mut record,
            &TARGET,
            "Canary Header",
            &[exact("X-Canary", "yes")],
        )
        .unwrap();
        assert_eq!(
            names(&route),
            [
                Some("main"),
                None,
                None,
                Some("canary-header"),
                Some("canary-header-1")
            ]
        );
        let first = &route.spec.rules[3];
        assert_eq!(
            serde_json::to_value(first.matches.as_ref().unwrap()).unwrap(),
            json!([{"path": {"type": "PathPrefix", "value": "/"}, "method": "GET",
                    "headers": [{"type": "Exact", "name": "X-Canary", "value": "yes"}]}])
        );
        assert_eq!(
            serde_json::to_value(first.backend_refs.as_ref().unwrap()).unwrap(),
            json!([{"name": "web-canary", "port": 80}])
        );
        assert_eq!(
            first.filters, route.spec.rules[0].filters,
            "source filters are kept"
        );
        assert_eq!(first.rest.get("timeouts"), Some(&json!({"request": "5s"})));
        let second = &route.spec.rules[4];
        assert_eq!(
            serde_json::to_value(second.matches.as_ref().unwrap()).unwrap(),
            json!([{"headers": [{"type": "Exact", "name": "X-Canary", "value": "yes"}]}]),
            "a rule without matches gets one match with just the headers"
        );

        // Weights skip header rules; their single canary backend keeps all matching traffic.
        set_weights(&mut route, &mut record, &TARGET, 40, &[]).unwrap();
        assert_eq!(route.spec.rules[3].backends()[0].weight, None);
        assert!(weights_match(&route, &record, &TARGET, 40, &[]));

        // Upsert: the same name replaces its rules.
        let prefix = header_match("x-canary", &StringMatch::Prefix("v1.".into())).unwrap();
        set_header_route(
            &mut route,
            &mut record,
            &TARGET,
            "Canary Header",
            std::slice::from_ref(&prefix),
        )
        .unwrap();
        assert_eq!(route.spec.rules.len(), 5);
        assert_eq!(
            route.spec.rules[3].matches.as_ref().unwrap()[0]
                .headers
                .as_ref()
                .unwrap(),
            std::slice::from_ref(&prefix)
        );
        assert_eq!(prefix.value, "v1\\..*");

        set_header_route(&mut route, &mut record, &TARGET, "Canary Header", &[]).unwrap();
        assert_eq!(names(&route), [Some("main"), None, None]);
        assert_eq!(record.to_annotation(), None);
    }

    #[test]
    fn header_matches_merge_into_existing_header_matches() {
        let mut route = route();
        route.spec.rules[0].matches.as_mut().unwrap()[0].headers =
            Some(vec![exact("x-canary", "old"), exact("x-keep", "1")]);
        let mut record = ManagedRecord::default();
        set_header_route(
            &mut route,
            &mut record,
            &TARGET,
            "h",
            &[exact("X-Canary", "new")],
        )
        .unwrap();
        let headers = route.spec.rules[3].matches.as_ref().unwrap()[0]
            .headers
            .clone()
            .unwrap();
        assert_eq!(headers, [exact("x-keep", "1"), exact("X-Canary", "new")]);
    }

    #[test]
    fn managed_rule_names_never_take_over_foreign_rules() {
        let mut route = route();
        let mut record = ManagedRecord::default();
        let error = set_header_route(&mut route, &mut record, &TARGET, "main", &[exact("a", "b")])
            .unwrap_err();
        assert!(
            matches!(error, RewriteError::RuleNameTaken { ref name, .. } if name == "main"),
            "{error}"
        );
        let other = Target {
            rollout: "api",
            ..TARGET
        };
        set_header_route(&mut route, &mut record, &other, "h", &[exact("a", "b")]).unwrap();
        let error = set_header_route(&mut route, &mut record, &TARGET, "h", &[exact("a", "c")])
            .unwrap_err();
        assert!(matches!(error, RewriteError::RuleNameTaken { .. }));
    }

    fn mirror_match() -> Vec<Match> {
        mirror_matches(&[RouteMatch {
            method: Some(StringMatch::Exact("post".into())),
            path: Some(StringMatch::Prefix("/api".into())),
            headers: vec![("x-mirror".into(), StringMatch::Regex("a|b".into()))],
        }])
        .unwrap()
    }

    #[test]
    fn mirror_routes_forward_like_the_weighted_rule_and_follow_weights() {
        let mut route = route();
        let mut record = ManagedRecord::default();
        set_weights(&mut route, &mut record, &TARGET, 10, &[]).unwrap();
        set_mirror_route(
            &mut route,
            &mut record,
            &TARGET,
            "mirror",
            mirror_match(),
            Some(25),
        )
        .unwrap();
        let rule = route.spec.rules.last().unwrap();
        assert_eq!(rule.name.as_deref(), Some("mirror"));
        assert_eq!(
            serde_json::to_value(rule.matches.as_ref().unwrap()).unwrap(),
            json!([{"method": "POST", "path": {"type": "PathPrefix", "value": "/api"},
                    "headers": [{"type": "RegularExpression", "name": "x-mirror", "value": "a|b"}]}])
        );
        assert_eq!(rule.backend_refs, route.spec.rules[0].backend_refs);
        assert_eq!(
            rule.filters.as_ref().unwrap().last().unwrap(),
            &json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "web-canary", "port": 80}, "percent": 25}})
        );

        set_weights(&mut route, &mut record, &TARGET, 60, &[]).unwrap();
        let rule = route.spec.rules.last().unwrap();
        assert_eq!(
            (weight_of(rule, "web-canary"), weight_of(rule, "web-stable")),
            (Some(60), Some(40))
        );

        set_mirror_route(
            &mut route,
            &mut record,
            &TARGET,
            "mirror",
            mirror_match(),
            None,
        )
        .unwrap();
        let filter = route
            .spec
            .rules
            .last()
            .unwrap()
            .filters
            .as_ref()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(
            filter["requestMirror"].get("percent"),
            None,
            "100% needs no percent"
        );
        assert_eq!(route.spec.rules.len(), 4);

        set_mirror_route(&mut route, &mut record, &TARGET, "mirror", Vec::new(), None).unwrap();
        assert_eq!(route.spec.rules.len(), 3);
        assert!(
            set_mirror_route(
                &mut route,
                &mut record,
                &TARGET,
                "m",
                mirror_match(),
                Some(101)
            )
            .is_err()
        );
    }

    #[test]
    fn unsupported_matches_are_refused() {
        let regex_method = RouteMatch {
            method: Some(StringMatch::Regex("GET|POST".into())),
            path: None,
            headers: vec![],
        };
        assert!(matches!(
            mirror_matches(&[regex_method]),
            Err(RewriteError::InvalidMatch(_))
        ));
        assert!(header_match("", &StringMatch::Exact("x".into())).is_err());
    }

    #[test]
    fn remove_managed_routes_removes_only_this_rollouts_rules() {
        let mut route = route();
        let mut record = ManagedRecord::default();
        let other = Target {
            rollout: "api",
            ..TARGET
        };
        set_header_route(&mut route, &mut record, &TARGET, "h", &[exact("a", "b")]).unwrap();
        set_mirror_route(&mut route, &mut record, &TARGET, "m", mirror_match(), None).unwrap();
        set_header_route(&mut route, &mut record, &other, "other", &[exact("a", "c")]).unwrap();
        set_weights(
            &mut route,
            &mut record,
            &TARGET,
            10,
            &[destination("exp", 5)],
        )
        .unwrap();
        remove_managed_routes(&mut route, &mut record, "web");
        assert_eq!(
            names(&route),
            [Some("main"), None, None, Some("other"), Some("other-1")]
        );
        assert_eq!(
            record.to_annotation().unwrap(),
            r#"{"api":{"headerRoutes":{"other":["other","other-1"]}},"web":{"additionalBackends":["exp"]}}"#
        );
    }

    #[test]
    fn added_and_missing_rule_names() {
        let mut after = route();
        let mut record = ManagedRecord::default();
        set_header_route(&mut after, &mut record, &TARGET, "h", &[exact("a", "b")]).unwrap();
        let added = added_rule_names(&route().spec.rules, &after.spec.rules);
        assert_eq!(added, ["h", "h-1"]);
        assert!(missing_rule_names(&after, &added).is_empty());
        let mut pruned = after.clone();
        pruned.spec.rules.iter_mut().for_each(|r| r.name = None);
        assert_eq!(missing_rule_names(&pruned, &added), ["h", "h-1"]);
    }

    #[test]
    fn rule_names_are_dns_labels() {
        assert_eq!(rule_name("Canary_By Header!"), "canary-by-header");
        assert_eq!(rule_name("--"), "sluice-managed");
        assert_eq!(rule_name(&"a".repeat(100)).len(), 60);
    }
}
