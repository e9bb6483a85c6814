//! History limits: completed AnalysisRuns and Experiments beyond
//! `successfulRunHistoryLimit`/`unsuccessfulRunHistoryLimit` (5/5) are deleted, oldest first.

mod common;

use common::*;
use k8s_openapi::jiff::SignedDuration;
use sluice_api::analysis::AnalysisPhase::{self, *};
use sluice_api::rollout::{AnalysisRunStrategy, RolloutAnalysisRunStatus};
use sluice_core::Action;
use sluice_core::observed::{ObservedAnalysisRun, ObservedExperiment};

fn healthy() -> Sim {
    let mut sim = Sim::new(rollout(2, basic_canary(vec![weight(50)])));
    sim.run_until(20, Sim::healthy);
    sim
}

/// Runs `run-0`, `run-1`, … with these phases, created a minute apart (oldest first).
fn with_runs(sim: &mut Sim, phases: &[AnalysisPhase]) {
    let start = sim.now;
    sim.observed.analysis_runs = phases
        .iter()
        .enumerate()
        .map(|(index, phase)| ObservedAnalysisRun {
            name: format!("run-{index}"),
            phase: *phase,
            message: None,
            terminating: false,
            created_at: start + SignedDuration::from_mins(index as i64),
        })
        .collect();
}

fn deleted(sim: &mut Sim) -> (Vec<String>, Vec<String>) {
    let plan = sim.reconcile();
    let mut runs = Vec::new();
    let mut experiments = Vec::new();
    for action in plan.actions {
        match action {
            Action::DeleteAnalysisRun { name } => runs.push(name),
            Action::DeleteExperiment { name } => experiments.push(name),
            _ => {}
        }
    }
    (runs, experiments)
}

#[test]
fn history_limits() {
    struct Case {
        name: &'static str,
        phases: Vec<AnalysisPhase>,
        limits: Option<(i32, i32)>,
        deleted: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "five successful runs are kept",
            phases: vec![Successful; 5],
            limits: None,
            deleted: vec![],
        },
        Case {
            name: "the two oldest of seven successful runs go",
            phases: vec![Successful; 7],
            limits: None,
            deleted: vec!["run-0", "run-1"],
        },
        Case {
            name: "Failed, Error and Inconclusive count together as unsuccessful",
            phases: vec![
                Failed,
                Inconclusive,
                Error,
                Successful,
                Failed,
                Failed,
                Error,
                Inconclusive,
            ],
            limits: None,
            deleted: vec!["run-0", "run-1"],
        },
        Case {
            name: "unfinished runs are never deleted",
            phases: vec![Running, Pending, Successful, Successful],
            limits: Some((1, 1)),
            deleted: vec!["run-2"],
        },
        Case {
            name: "a zero limit deletes every completed run of that kind",
            phases: vec![Failed, Successful, Error],
            limits: Some((5, 0)),
            deleted: vec!["run-0", "run-2"],
        },
        Case {
            name: "a negative limit is taken as zero",
            phases: vec![Successful, Successful],
            limits: Some((-1, 5)),
            deleted: vec!["run-0", "run-1"],
        },
    ];
    for case in cases {
        let mut sim = healthy();
        if let Some((successful, unsuccessful)) = case.limits {
            sim.edit_spec(|spec| {
                spec.analysis = Some(AnalysisRunStrategy {
                    successful_run_history_limit: Some(successful),
                    unsuccessful_run_history_limit: Some(unsuccessful),
                })
            });
        }
        with_runs(&mut sim, &case.phases);
        let (runs, experiments) = deleted(&mut sim);
        assert_eq!(runs, case.deleted, "{}", case.name);
        assert!(experiments.is_empty(), "{}", case.name);
        // Executed, the next plan deletes nothing more.
        assert_eq!(
            deleted(&mut sim),
            (vec![], vec![]),
            "{}: settled",
            case.name
        );
    }
}

#[test]
fn a_run_the_status_refers_to_is_kept() {
    let mut sim = healthy();
    sim.edit_spec(|spec| {
        spec.analysis = Some(AnalysisRunStrategy {
            successful_run_history_limit: Some(0),
            unsuccessful_run_history_limit: Some(0),
        })
    });
    with_runs(&mut sim, &[Successful, Successful]);
    if let Some(status) = sim.observed.rollout.status.as_mut() {
        status.canary.current_background_analysis_run_status = Some(RolloutAnalysisRunStatus {
            name: "run-1".into(),
            status: Some(Successful),
            message: None,
        });
    }
    let (runs, _) = deleted(&mut sim);
    assert_eq!(runs, ["run-0"]);
}

#[test]
fn experiments_have_the_same_limits() {
    let mut sim = healthy();
    let start = sim.now;
    sim.observed.experiments = (0..7)
        .map(|index| ObservedExperiment {
            name: format!("experiment-{index}"),
            phase: if index % 2 == 0 { Successful } else { Failed },
            message: None,
            terminating: false,
            created_at: start + SignedDuration::from_mins(index),
            templates: Vec::new(),
        })
        .collect();
    sim.edit_spec(|spec| {
        spec.analysis = Some(AnalysisRunStrategy {
            successful_run_history_limit: Some(2),
            unsuccessful_run_history_limit: Some(1),
        })
    });
    let (runs, experiments) = deleted(&mut sim);
    assert!(runs.is_empty());
    assert_eq!(
        experiments,
        [
            "experiment-0",
            "experiment-2",
            "experiment-1",
            "experiment-3"
        ]
    );
}
