//! The pure core of Sluice: the canary and blue-green step machine, the analysis engine and the condition language.

pub mod condition;

/// The analysis engine: measurement scheduling, counters, limits, run outcome, args templating.
pub mod analysis;
