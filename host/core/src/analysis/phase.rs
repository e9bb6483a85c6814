//! Argo's ordering of analysis phases (`analysisStatusOrder` in `utils/analysis/helpers.go`),
//! used to pick a run's worst metric phase.

use sluice_api::analysis::AnalysisPhase;

/// The rank of a phase from best (0) to worst (5), in Argo's order
/// Successful < Running < Pending < Inconclusive < Error < Failed.
pub fn phase_severity(phase: AnalysisPhase) -> u8 {
    match phase {
        AnalysisPhase::Successful => 0,
        AnalysisPhase::Running => 1,
        AnalysisPhase::Pending => 2,
        AnalysisPhase::Inconclusive => 3,
        AnalysisPhase::Error => 4,
        AnalysisPhase::Failed => 5,
    }
}

/// Whether `candidate` is strictly worse than `current` (Argo's `IsWorse`).
pub fn is_worse(current: AnalysisPhase, candidate: AnalysisPhase) -> bool {
    phase_severity(candidate) > phase_severity(current)
}

/// The worse of two phases; `left` when they rank the same (Argo's `Worst`).
pub fn worst(left: AnalysisPhase, right: AnalysisPhase) -> AnalysisPhase {
    if is_worse(left, right) { right } else { left }
}
