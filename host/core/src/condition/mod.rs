//! The condition language of analysis metrics: Argo's `successCondition` and `failureCondition`.
//!
//! Argo evaluates conditions with [expr](https://expr-lang.org) (`utils/evaluate/evaluate.go`),
//! with the provider's value bound to `result` and six functions of its own. Sluice does the
//! same with the `expr-lang` crate (expr.rs, the Rust implementation of expr), plus:
//!
//! - Argo's functions, registered on the crate's environment: `isNaN(x)`, `isInf(x)` (either
//!   sign), `isNil(x)`, `default(x, fallback)`, `asInt(x)` and `asFloat(x)` (from a number or a
//!   numeric string; anything else is an error). expr's own builtins stay available: `len`,
//!   `all`, `any`, `none`, `one`, `filter`, `map`, `count`, `sum`, `max`, `min`, `mean`, `abs`,
//!   `int`, `float`, `string`, `upper`, `lower`, `split`, the `in`, `contains`, `startsWith`,
//!   `endsWith` and `matches` operators, ternaries, `??`, `?.`, slices, `let`, and so on;
//! - strict `all`, `any`, `none`, `one` and `filter`: the crate's own versions take a predicate
//!   value that is not a bool as a verdict (`all` passes on nil, so a missing field would pass a
//!   check); Go's expr rejects it, and so do Sluice's replacements, which also bind `#index`;
//! - the closure member shorthand `.field` for `#.field` (`{asFloat(.value) >= 9900}`), which the
//!   crate's grammar accepts only as a whole predicate: the source is rewritten before parsing;
//! - one-line syntax errors with the position in the condition as written;
//! - the decision table and the "no data" message of Argo's `EvaluateResult`
//!   ([`MetricConditions`], [`evaluate_measurement`]).
//!
//! # Where Sluice differs from Argo, and why
//!
//! - **`isNil(x)` and `default(x, fallback)` look at their argument.** Argo's versions ignore the
//!   argument and test `result` itself. The two agree whenever the argument is `result`, which is
//!   how both are documented and used; with another argument Argo's answer is about the wrong
//!   value (`default(result.p99, 0)` returns the whole result).
//! - **No static type check.** Go's expr type-checks a condition against the concrete type of
//!   `result` before running it; expr.rs is dynamically typed. Every ill-typed operation is still
//!   an error when it runs, with one exception: `==` and `!=` between values of different types
//!   (a number and a string) are `false` here, where Argo rejects the condition. An operand that
//!   short-circuiting skips (`true || undefinedFunction()`) is not checked either.
//! - **An index past the end of a list is nil**, where Go's expr fails with "index out of range".
//!   Comparing nil to a number is an error, so `result[0] >= 0.95` on an empty vector is an
//!   error in both, reported as "no data"; only a condition that tests the element against nil
//!   (`result[0] == nil`, `result[0] ?? 0`) sees a difference.
//! - **No clock, no JSON or base64 builtins.** `now()`, `date()`, `duration()` and `timezone()`
//!   would read the system clock, and `sluice-core` is pure; `fromJSON`/`toJSON`/`toBase64`/
//!   `fromBase64` are left out with the crate's `json` and `base64` features (`json` would switch
//!   serde_json to `preserve_order` for the whole workspace). Each reports that it is not
//!   available. Argo's `EvalTime` for Prometheus range queries, which does need `now()`, is not
//!   part of this module.
//!
//! # Numbers, NaN and infinities
//!
//! [`MetricValue`] holds every number as an `f64`, as Go's `encoding/json` does, so NaN and ±Inf
//! are ordinary values: `isNaN(result) || result >= 0.95` works on a Prometheus `NaN` sample
//! given as `MetricValue::Number(f64::NAN)`. NaN compares false with everything, itself included.
//! JSON cannot carry NaN, so a provider passes such values as numbers, not as JSON text.

mod compiled;
mod decision;
mod functions;
mod shorthand;
mod value;

#[cfg(test)]
mod tests;

pub use compiled::{CompiledCondition, ConditionError, evaluate_condition};
pub use decision::{
    ConditionKind, Evaluation, MeasurementError, MetricConditions, evaluate_measurement,
};
pub use value::MetricValue;
