//! The function environment: expr-lang's builtins plus the functions Argo adds.

use std::sync::LazyLock;

use expr::Error::ExprError;
use expr::{Context, ContextProvider, Environment, Program, Value};

/// The environment every condition runs in, built once.
pub(super) static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut environment = Environment::new();
    environment.add_function("isNaN", |call| {
        let number = single_number("isNaN", call.args)?;
        Ok(Value::Bool(number.is_nan()))
    });
    environment.add_function("isInf", |call| {
        let number = single_number("isInf", call.args)?;
        Ok(Value::Bool(number.is_infinite()))
    });
    environment.add_function("isNil", |call| {
        let value = single_argument("isNil", call.args)?;
        Ok(Value::Bool(value.is_nil()))
    });
    environment.add_function("default", |call| {
        let [value, fallback] = two_arguments("default", call.args)?;
        Ok(if value.is_nil() { fallback } else { value })
    });
    environment.add_function("asInt", |call| as_int(single_argument("asInt", call.args)?));
    environment.add_function("asFloat", |call| {
        as_float(single_argument("asFloat", call.args)?)
    });
    add_predicate_function(&mut environment, "all", |call| {
        for (index, element) in call.elements.iter().enumerate() {
            if !call.holds_for(index, element)? {
                return Ok(Value::Bool(false));
            }
        }
        Ok(Value::Bool(true))
    });
    add_predicate_function(&mut environment, "any", |call| {
        for (index, element) in call.elements.iter().enumerate() {
            if call.holds_for(index, element)? {
                return Ok(Value::Bool(true));
            }
        }
        Ok(Value::Bool(false))
    });
    add_predicate_function(&mut environment, "none", |call| {
        for (index, element) in call.elements.iter().enumerate() {
            if call.holds_for(index, element)? {
                return Ok(Value::Bool(false));
            }
        }
        Ok(Value::Bool(true))
    });
    add_predicate_function(&mut environment, "one", |call| {
        let mut matching = 0;
        for (index, element) in call.elements.iter().enumerate() {
            if call.holds_for(index, element)? {
                matching += 1;
            }
        }
        Ok(Value::Bool(matching == 1))
    });
    add_predicate_function(&mut environment, "filter", |call| {
        let mut kept = Vec::new();
        for (index, element) in call.elements.iter().enumerate() {
            if call.holds_for(index, element)? {
                kept.push(element.clone());
            }
        }
        Ok(Value::Array(kept))
    });
    for (name, reason) in UNSUPPORTED_BUILTINS {
        environment.add_function(name, move |call| {
            Err(ExprError(format!(
                "{}() is not available in Sluice metric conditions: {reason}",
                call.ident
            )))
        });
    }
    environment
});

/// expr builtins Sluice leaves out, and why. Without this they would report a missing expr-lang
/// Cargo feature, which means nothing to someone writing a condition.
const UNSUPPORTED_BUILTINS: [(&str, &str); 8] = [
    ("now", CLOCK_FREE),
    ("date", CLOCK_FREE),
    ("duration", CLOCK_FREE),
    ("timezone", CLOCK_FREE),
    ("fromJSON", NOT_PROVIDED),
    ("toJSON", NOT_PROVIDED),
    ("toBase64", NOT_PROVIDED),
    ("fromBase64", NOT_PROVIDED),
];

const CLOCK_FREE: &str =
    "conditions are pure functions of the metric result and never read the clock";
const NOT_PROVIDED: &str = "the function is not provided";

/// Registers one of `all`, `any`, `none`, `one`, `filter` in place of expr-lang's own.
///
/// expr-lang's versions treat a predicate value that is not a bool as a verdict (`all` passes on
/// nil); Go's expr rejects it, so here a missing field cannot pass a check either.
fn add_predicate_function(
    environment: &mut Environment<'static>,
    name: &str,
    decide: fn(&PredicateCall<'_, '_>) -> expr::Result<Value>,
) {
    environment.add_function(name, move |call| {
        let call = PredicateCall::new(&call.ident, &call.args, call.predicate, call.ctx, call.env)?;
        decide(&call)
    });
}

/// A call such as `all(list, predicate)`.
struct PredicateCall<'call, 'env> {
    function: &'call str,
    elements: &'call [Value],
    predicate: &'call Program,
    context: &'call dyn ContextProvider,
    environment: &'call Environment<'env>,
}

impl<'call, 'env> PredicateCall<'call, 'env> {
    fn new(
        function: &'call str,
        arguments: &'call [Value],
        predicate: Option<&'call Program>,
        context: &'call dyn ContextProvider,
        environment: &'call Environment<'env>,
    ) -> expr::Result<Self> {
        match (arguments, predicate) {
            ([Value::Array(elements)], Some(predicate)) => Ok(Self {
                function,
                elements,
                predicate,
                context,
                environment,
            }),
            ([other], Some(_)) => Err(ExprError(format!(
                "{function}() takes an array as the first argument, got {}",
                type_name(other)
            ))),
            _ => Err(ExprError(format!(
                "{function}() takes exactly one array and a predicate"
            ))),
        }
    }

    /// Runs the predicate for one element; it must give a bool.
    fn holds_for(&self, index: usize, element: &Value) -> expr::Result<bool> {
        let scope = ElementScope {
            parent: self.context,
            element: element.clone(),
            index: Value::Integer(i64::try_from(index).unwrap_or(i64::MAX)),
        };
        match self.environment.run(self.predicate, &scope)? {
            Value::Bool(verdict) => Ok(verdict),
            other => Err(ExprError(format!(
                "{}() predicate must return a bool, got {} {}",
                self.function,
                type_name(&other),
                describe(&other)
            ))),
        }
    }
}

/// The variables inside a predicate: the enclosing ones plus `#` and `#index`.
struct ElementScope<'parent> {
    parent: &'parent dyn ContextProvider,
    element: Value,
    index: Value,
}

impl ContextProvider for ElementScope<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        match key {
            "#" => Some(&self.element),
            "#index" => Some(&self.index),
            _ => self.parent.get(key),
        }
    }

    fn to_context(&self) -> Context {
        let mut context = self.parent.to_context();
        context.insert("#", self.element.clone());
        context.insert("#index", self.index.clone());
        context
    }

    fn environment(&self) -> Context {
        self.parent.environment()
    }
}

fn single_argument(function: &str, arguments: Vec<Value>) -> expr::Result<Value> {
    let [value] = exact_arguments::<1>(function, arguments)?;
    Ok(value)
}

fn two_arguments(function: &str, arguments: Vec<Value>) -> expr::Result<[Value; 2]> {
    exact_arguments::<2>(function, arguments)
}

fn exact_arguments<const N: usize>(
    function: &str,
    arguments: Vec<Value>,
) -> expr::Result<[Value; N]> {
    let count = arguments.len();
    arguments.try_into().map_err(|_| {
        ExprError(format!(
            "{function}() takes exactly {N} argument{}, got {count}",
            if N == 1 { "" } else { "s" }
        ))
    })
}

fn single_number(function: &str, arguments: Vec<Value>) -> expr::Result<f64> {
    match single_argument(function, arguments)? {
        Value::Float(number) => Ok(number),
        // An integer (a literal, a `len(...)`) is never NaN or infinite.
        Value::Integer(number) => Ok(number as f64),
        other => Err(ExprError(format!(
            "{function}() takes a number, got {} {}",
            type_name(&other),
            describe(&other)
        ))),
    }
}

/// Argo's `asInt`: a number truncated toward zero, or a base-10 integer string.
fn as_int(value: Value) -> expr::Result<Value> {
    match value {
        Value::Integer(number) => Ok(Value::Integer(number)),
        // Go's int64(float64) conversion; `as` saturates where Go's result is unspecified.
        Value::Float(number) => Ok(Value::Integer(number as i64)),
        Value::String(text) => text
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| ExprError(format!("asInt() cannot parse {text:?} as an integer"))),
        other => Err(not_supported("asInt", &other)),
    }
}

/// Argo's `asFloat`: a number, or a string Go's `strconv.ParseFloat` accepts (including "NaN",
/// "Inf", "+Inf", "-Inf"); a string outside float64's range is an error, as it is in Go.
fn as_float(value: Value) -> expr::Result<Value> {
    match value {
        Value::Float(number) => Ok(Value::Float(number)),
        Value::Integer(number) => Ok(Value::Float(number as f64)),
        Value::String(text) => match text.parse::<f64>() {
            Ok(number) if number.is_infinite() && !spells_infinity(&text) => Err(ExprError(
                format!("asFloat() value {text:?} is out of range"),
            )),
            Ok(number) => Ok(Value::Float(number)),
            Err(_) => Err(ExprError(format!(
                "asFloat() cannot parse {text:?} as a number"
            ))),
        },
        other => Err(not_supported("asFloat", &other)),
    }
}

fn spells_infinity(text: &str) -> bool {
    let unsigned = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    unsigned == "inf" || unsigned == "infinity"
}

fn not_supported(function: &str, value: &Value) -> expr::Error {
    ExprError(format!(
        "{function}() not supported on {} {}",
        type_name(value),
        describe(value)
    ))
}

/// A value as it appears in an error message.
fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        Value::Float(number) => number.to_string(),
        Value::Integer(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Nil => "nil".to_owned(),
        Value::Array(elements) => format!("(an array of {} elements)", elements.len()),
        Value::Map(fields) => format!("(a map of {} keys)", fields.len()),
        Value::KeyedMap(fields) => format!("(a map of {} keys)", fields.len()),
        Value::Bytes(bytes) => format!("({} bytes)", bytes.len()),
    }
}

/// The Go type Argo would name for a value of this kind (Argo reports a non-bool condition
/// result with `%T`).
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Integer(_) => "int",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::Bytes(_) => "[]uint8",
        Value::Array(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::KeyedMap(_) => "map[interface {}]interface {}",
    }
}
