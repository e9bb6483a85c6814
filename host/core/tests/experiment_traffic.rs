//! A traffic-routed canary's `experiment` step: templates with a `weight` get that share of the
//! traffic (as additional destinations) while the Experiment runs, taken from stable.

mod common;

use common::*;
use sluice_api::analysis::AnalysisPhase;
use sluice_api::rollout::{CanaryStep, WeightDestination};
use sluice_core::observed::ExperimentTemplateTarget;
use sluice_core::{Action, Plan, RouterCall};

fn experiment_step() -> CanaryStep {
    serde_json::from_value(serde_json::json!({"experiment": {
        "duration": "1m",
        "templates": [
            {"name": "preview", "specRef": "canary", "weight": 10, "service": {}},
            {"name": "baseline", "specRef": "stable"},
        ],
    }}))
    .expect("an experiment step")
}

fn set_weights(plan: &Plan) -> Vec<(i32, Vec<WeightDestination>)> {
    plan.actions
        .iter()
        .filter_map(|action| match action {
            Action::Router(RouterCall::SetWeight { weight, additional }) => {
                Some((*weight, additional.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn weighted_templates_get_traffic_while_the_experiment_runs() {
    let mut sim = Sim::new(rollout(
        4,
        routed_canary(vec![weight(20), experiment_step()]),
    ));
    sim.run_until(20, Sim::healthy);
    sim.set_image("demo:green");
    sim.run_until(20, |sim| sim.status().canary.current_experiment.is_some());
    let name = sim
        .status()
        .canary
        .current_experiment
        .clone()
        .expect("experiment");

    // Until the Experiment reports the template's Service and hash, nothing is sent to it.
    let plan = sim.reconcile();
    assert!(
        set_weights(&plan)
            .iter()
            .all(|(_, additional)| additional.is_empty()),
        "{plan:#?}"
    );

    let experiment = sim
        .observed
        .experiments
        .iter_mut()
        .find(|experiment| experiment.name == name)
        .expect("observed experiment");
    experiment.templates = vec![
        ExperimentTemplateTarget {
            name: "preview".into(),
            service_name: Some(format!("{name}-preview")),
            pod_template_hash: Some("abc123".into()),
        },
        ExperimentTemplateTarget {
            name: "baseline".into(),
            service_name: None,
            pod_template_hash: Some("def456".into()),
        },
    ];
    let plan = sim.reconcile();
    let preview = WeightDestination {
        weight: 10,
        service_name: Some(format!("{name}-preview")),
        pod_template_hash: Some("abc123".into()),
    };
    assert_eq!(set_weights(&plan), [(20, vec![preview.clone()])]);
    let weights = sim.status().canary.weights.clone().expect("weights");
    assert_eq!(weights.canary.weight, 20);
    assert_eq!(
        weights.stable.weight, 70,
        "the template's share comes from stable"
    );
    assert_eq!(weights.additional, [preview]);
    assert!(set_weights(&sim.reconcile()).is_empty(), "settled");

    // When the Experiment finishes, its share returns to stable.
    if let Some(experiment) = sim
        .observed
        .experiments
        .iter_mut()
        .find(|experiment| experiment.name == name)
    {
        experiment.phase = AnalysisPhase::Successful;
    }
    sim.run_until(20, Sim::healthy);
    let last = sim
        .plans
        .iter()
        .flat_map(set_weights)
        .last()
        .expect("weights were set");
    assert!(
        last.1.is_empty(),
        "no experiment destination after it ended: {last:?}"
    );
}
