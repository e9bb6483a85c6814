//! Building an `AnalysisRunSpec` from templates and a Rollout's analysis request, as Argo's
//! `NewAnalysisRunFromTemplates` and `FlattenTemplates` (`utils/analysis/helpers.go`) do, with
//! template composition (`spec.templates`) resolved the way the Rollout controller does
//! (`getAnalysisTemplatesFromRefs`).
//!
//! The run's metrics are copied from the templates **unsubstituted**, with the merged arguments
//! beside them, exactly as Argo writes AnalysisRuns: placeholders are substituted by the analysis
//! engine at every reconcile ([`super::template::resolve_metrics`]), and a placeholder that names
//! no argument turns the run into `Error` then, with "Unable to resolve metric arguments: failed
//! to resolve {{args.x}}". Call [`super::template::resolve_metrics`] on the built spec to report
//! that error earlier (linting, Rollout validation).

use std::collections::BTreeSet;

use sluice_api::analysis::{
    AnalysisRunSpec, AnalysisTemplate, AnalysisTemplateRef, AnalysisTemplateSpec, Argument,
    ClusterAnalysisTemplate, DryRun, MeasurementRetention, Metric,
};
use sluice_api::rollout::{Rollout, RolloutAnalysis};

use super::args::{ArgsError, PodTemplateHashes, build_rollout_args, merge_args};

/// Why an AnalysisRun could not be built. The `Display` texts follow Argo's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A referenced AnalysisTemplate does not exist in the Rollout's namespace.
    #[error("analysistemplate.argoproj.io \"{0}\" not found")]
    TemplateNotFound(String),
    /// A referenced ClusterAnalysisTemplate does not exist.
    #[error("clusteranalysistemplate.argoproj.io \"{0}\" not found")]
    ClusterTemplateNotFound(String),
    /// Templates that include each other (Argo would recurse forever).
    #[error("analysis templates reference each other in a cycle through \"{0}\"")]
    TemplateCycle(String),
    /// Two templates define a metric with the same name.
    #[error("two metrics have the same name '{0}'")]
    DuplicateMetric(String),
    /// Two templates declare the same argument with different values.
    #[error(
        "Argument `{name}` specified multiple times with different values: '{first}', '{second}'"
    )]
    ConflictingArgument {
        /// The argument.
        name: String,
        /// The value declared first.
        first: String,
        /// The other value.
        second: String,
    },
    /// Two dry-run rules for the same metric name.
    #[error("two Dry-Run metric rules have the same name '{0}'")]
    DuplicateDryRun(String),
    /// Two retention rules for the same metric name.
    #[error("two Measurement Retention metric rules have the same name '{0}'")]
    DuplicateRetention(String),
    /// The Rollout's arguments could not be built or merged.
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// An Experiment argument names a placeholder that has no value, e.g.
    /// `{{experiment.finishedAt}}` in an Experiment without a `duration`.
    #[error("failed to resolve {{{{{0}}}}}")]
    UnresolvedPlaceholder(String),
}

/// The templates visible to a Rollout: AnalysisTemplates of its namespace and every
/// ClusterAnalysisTemplate.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateCatalog<'a> {
    /// AnalysisTemplates in the Rollout's namespace.
    pub templates: &'a [AnalysisTemplate],
    /// ClusterAnalysisTemplates.
    pub cluster_templates: &'a [ClusterAnalysisTemplate],
}

impl<'a> TemplateCatalog<'a> {
    fn lookup(
        &self,
        reference: &AnalysisTemplateRef,
    ) -> Result<&'a AnalysisTemplateSpec, BuildError> {
        let name = reference.template_name.as_str();
        if reference.cluster_scope {
            self.cluster_templates
                .iter()
                .find(|template| template.metadata.name.as_deref() == Some(name))
                .map(|template| &template.spec.template)
                .ok_or_else(|| BuildError::ClusterTemplateNotFound(name.to_string()))
        } else {
            self.templates
                .iter()
                .find(|template| template.metadata.name.as_deref() == Some(name))
                .map(|template| &template.spec)
                .ok_or_else(|| BuildError::TemplateNotFound(name.to_string()))
        }
    }
}

/// Templates flattened into one: metrics, arguments, dry-run and retention rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlattenedTemplate {
    /// Every metric, namespaced templates' first, each template's in order.
    pub metrics: Vec<Metric>,
    /// Declared arguments, deduplicated by name.
    pub args: Vec<Argument>,
    /// Dry-run rules.
    pub dry_run: Vec<DryRun>,
    /// Retention rules.
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// Resolves template references, including templates composed with `spec.templates`, and
/// flattens them (Argo's `FlattenTemplates`).
///
/// Every referenced template contributes its own metrics and those of the templates it includes;
/// a template reached twice counts once. As in Argo, AnalysisTemplates come before
/// ClusterAnalysisTemplates. Duplicate metric names, duplicate dry-run or retention rules and an
/// argument declared twice with different values are errors; the same argument declared twice
/// with the same value, or once without a value, is merged.
pub fn flatten_templates(
    references: &[AnalysisTemplateRef],
    catalog: TemplateCatalog<'_>,
) -> Result<FlattenedTemplate, BuildError> {
    let mut collected = Collected::default();
    collect_templates(references, catalog, &mut Vec::new(), &mut collected)?;
    let specs = collected
        .namespaced
        .iter()
        .chain(&collected.cluster)
        .copied();

    let mut flattened = FlattenedTemplate::default();
    let mut metric_names = BTreeSet::new();
    for spec in specs.clone() {
        for metric in &spec.metrics {
            if !metric_names.insert(metric.name.as_str()) {
                return Err(BuildError::DuplicateMetric(metric.name.clone()));
            }
            flattened.metrics.push(metric.clone());
        }
    }
    for spec in specs.clone() {
        for argument in &spec.args {
            merge_declared_argument(&mut flattened.args, argument)?;
        }
    }
    flattened.dry_run = specs
        .clone()
        .flat_map(|spec| spec.dry_run.clone())
        .collect();
    check_unique_dry_run(&flattened.dry_run)?;
    flattened.measurement_retention = specs
        .flat_map(|spec| spec.measurement_retention.clone())
        .collect();
    check_unique_retention(&flattened.measurement_retention)?;
    Ok(flattened)
}

/// Builds the spec of the AnalysisRun a Rollout requests (Argo's `NewAnalysisRunFromTemplates`
/// after `BuildArgumentsForRolloutAnalysisRun`).
///
/// The Rollout's arguments are made literal ([`build_rollout_args`]) and merged into the
/// templates' ([`merge_args`]); the Rollout's dry-run and retention rules come before the
/// templates'. Metrics keep their `{{args.*}}` placeholders (see the module documentation).
pub fn build_run_spec(
    analysis: &RolloutAnalysis,
    catalog: TemplateCatalog<'_>,
    rollout: &Rollout,
    hashes: PodTemplateHashes<'_>,
) -> Result<AnalysisRunSpec, BuildError> {
    let flattened = flatten_templates(&analysis.templates, catalog)?;
    let incoming = build_rollout_args(&analysis.args, rollout, hashes)?;
    let args = merge_args(&incoming, &flattened.args)?;
    let dry_run: Vec<DryRun> = analysis
        .dry_run
        .iter()
        .chain(&flattened.dry_run)
        .cloned()
        .collect();
    check_unique_dry_run(&dry_run)?;
    let measurement_retention: Vec<MeasurementRetention> = analysis
        .measurement_retention
        .iter()
        .chain(&flattened.measurement_retention)
        .cloned()
        .collect();
    check_unique_retention(&measurement_retention)?;
    Ok(AnalysisRunSpec {
        metrics: flattened.metrics,
        args,
        dry_run,
        measurement_retention,
        ..AnalysisRunSpec::default()
    })
}

#[derive(Default)]
struct Collected<'a> {
    namespaced: Vec<&'a AnalysisTemplateSpec>,
    cluster: Vec<&'a AnalysisTemplateSpec>,
    seen: BTreeSet<(bool, String)>,
}

fn collect_templates<'a>(
    references: &[AnalysisTemplateRef],
    catalog: TemplateCatalog<'a>,
    path: &mut Vec<(bool, String)>,
    collected: &mut Collected<'a>,
) -> Result<(), BuildError> {
    for reference in references {
        let key = (reference.cluster_scope, reference.template_name.clone());
        if path.contains(&key) {
            return Err(BuildError::TemplateCycle(reference.template_name.clone()));
        }
        let spec = catalog.lookup(reference)?;
        if collected.seen.insert(key.clone()) {
            if reference.cluster_scope {
                collected.cluster.push(spec);
            } else {
                collected.namespaced.push(spec);
            }
        }
        path.push(key);
        collect_templates(&spec.templates, catalog, path, collected)?;
        path.pop();
    }
    Ok(())
}

/// Argo's `flattenArgs` step: identical or value-less duplicates merge, different values clash.
fn merge_declared_argument(
    combined: &mut Vec<Argument>,
    argument: &Argument,
) -> Result<(), BuildError> {
    let Some(previous) = combined
        .iter_mut()
        .find(|known| known.name == argument.name)
    else {
        combined.push(argument.clone());
        return Ok(());
    };
    if let (Some(first), Some(second)) = (&previous.value, &argument.value)
        && first != second
    {
        return Err(BuildError::ConflictingArgument {
            name: argument.name.clone(),
            first: first.clone(),
            second: second.clone(),
        });
    }
    if previous.value.is_none() {
        *previous = argument.clone();
    }
    Ok(())
}

fn check_unique_dry_run(rules: &[DryRun]) -> Result<(), BuildError> {
    let mut names = BTreeSet::new();
    match rules
        .iter()
        .find(|rule| !names.insert(rule.metric_name.as_str()))
    {
        Some(duplicate) => Err(BuildError::DuplicateDryRun(duplicate.metric_name.clone())),
        None => Ok(()),
    }
}

fn check_unique_retention(rules: &[MeasurementRetention]) -> Result<(), BuildError> {
    let mut names = BTreeSet::new();
    match rules
        .iter()
        .find(|rule| !names.insert(rule.metric_name.as_str()))
    {
        Some(duplicate) => Err(BuildError::DuplicateRetention(
            duplicate.metric_name.clone(),
        )),
        None => Ok(()),
    }
}
