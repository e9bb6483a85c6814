//! Compiling one condition and evaluating it against a result.

use expr::{Context, ContextProvider, Program, Value};

use super::functions::{ENVIRONMENT, type_name};
use super::shorthand::{Expanded, expand_member_shorthand};
use super::value::MetricValue;

/// Why a condition could not produce a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The condition is not valid expr syntax.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// Evaluation failed: a type error (`'a' < 1`), indexing a number, an unknown function or
    /// variable, a function given the wrong argument (`asInt("abc")`), and so on.
    #[error("{0}")]
    Evaluation(String),
    /// The condition evaluated to something other than a bool; the Go type Argo would name.
    #[error("expected bool, but got {0}")]
    NotBool(&'static str),
    /// Evaluation failed and the metric result was nil or an empty list (see
    /// [`MetricValue::is_nil_or_empty`]): Argo then reports the missing data, not the failure.
    #[error("metric result is nil or empty: no data returned from the metric provider")]
    NoData {
        /// The failure that the missing data caused.
        #[source]
        underlying: Box<ConditionError>,
    },
}

/// A condition parsed once, to be evaluated against many measurements.
///
/// Argo compiles a condition for every measurement; compiling ahead changes nothing observable,
/// because a syntax error still surfaces on every evaluation through [`super::MetricConditions`].
#[derive(Debug, Clone)]
pub struct CompiledCondition {
    source: String,
    program: Program,
}

impl CompiledCondition {
    /// Parses `source` (an Argo `successCondition` or `failureCondition`).
    pub fn compile(source: &str) -> Result<Self, ConditionError> {
        let expanded = expand_member_shorthand(source);
        let program = expr::compile(&expanded.text)
            .map_err(|error| syntax_error(source, &expanded, error))?;
        Ok(Self {
            source: source.to_owned(),
            program,
        })
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition with `result` bound to the measured value.
    pub fn evaluate(&self, result: &MetricValue) -> Result<bool, ConditionError> {
        self.evaluate_in(&ResultContext::new(result))
    }

    /// Evaluates the condition in a context whose result is already converted.
    pub(super) fn evaluate_in(&self, context: &ResultContext) -> Result<bool, ConditionError> {
        match ENVIRONMENT.run(&self.program, context) {
            Ok(Value::Bool(verdict)) => Ok(verdict),
            Ok(other) => Err(ConditionError::NotBool(type_name(&other))),
            Err(error) => Err(ConditionError::Evaluation(error.to_string())),
        }
    }
}

/// Compiles and evaluates `condition` once: the convenience form of [`CompiledCondition`].
pub fn evaluate_condition(condition: &str, result: &MetricValue) -> Result<bool, ConditionError> {
    CompiledCondition::compile(condition)?.evaluate(result)
}

/// The variables a condition sees: only `result`.
pub(super) struct ResultContext {
    result: Value,
}

impl ResultContext {
    pub(super) fn new(result: &MetricValue) -> Self {
        Self {
            result: result.to_expr_value(),
        }
    }
}

impl ContextProvider for ResultContext {
    fn get(&self, key: &str) -> Option<&Value> {
        (key == "result").then_some(&self.result)
    }

    fn to_context(&self) -> Context {
        Context::from_iter([("result", self.result.clone())])
    }
}

/// A one-line syntax error with the position in the condition as written.
///
/// expr-lang reports pest's multi-line diagnostic (` --> 1:21`, the source line, a caret, and the
/// grammar rules it expected); a status message needs the position and the offending token.
fn syntax_error(source: &str, expanded: &Expanded, error: expr::Error) -> ConditionError {
    let expr::Error::PestError(_) = &error else {
        return ConditionError::Syntax(error.to_string());
    };
    let diagnostic = error.to_string();
    let Some((line, column)) = diagnostic_position(&diagnostic) else {
        return ConditionError::Syntax(diagnostic.split_whitespace().collect::<Vec<_>>().join(" "));
    };
    let column = expanded.original_column(line, column);
    ConditionError::Syntax(format!(
        "{} at line {line}, column {column}",
        unexpected_token(source, line, column)
    ))
}

/// The `line:column` of pest's ` --> line:column` header.
fn diagnostic_position(diagnostic: &str) -> Option<(usize, usize)> {
    let header = diagnostic
        .lines()
        .find_map(|line| line.trim().strip_prefix("-->"))?;
    let (line, column) = header.trim().split_once(':')?;
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// What stands at a 1-based position of `source`: a name or number, a quote, or one symbol.
fn unexpected_token(source: &str, line: usize, column: usize) -> String {
    let rest: Option<String> = source
        .lines()
        .nth(line - 1)
        .map(|text| text.chars().skip(column - 1).collect());
    let rest = rest.unwrap_or_default();
    let is_last_line = source.lines().count() <= line;
    let Some(first) = rest.chars().next() else {
        return if is_last_line {
            "unexpected end of condition".to_owned()
        } else {
            "unexpected end of line".to_owned()
        };
    };
    let token: String = if first.is_alphanumeric() || first == '_' {
        rest.chars()
            .take_while(|character| character.is_alphanumeric() || *character == '_')
            .collect()
    } else if first == '\'' || first == '"' {
        return format!("unterminated or invalid string {rest}");
    } else {
        first.to_string()
    };
    format!("unexpected {token:?}")
}
