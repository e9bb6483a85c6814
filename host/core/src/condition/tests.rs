//! Table tests of the condition language and Argo's decision table.

use serde_json::json;

use super::shorthand::expand_member_shorthand;
use super::{
    CompiledCondition, ConditionError, ConditionKind, Evaluation, MetricConditions, MetricValue,
    evaluate_condition, evaluate_measurement,
};

fn from_json(value: serde_json::Value) -> MetricValue {
    MetricValue::from(value)
}

fn number(value: f64) -> MetricValue {
    MetricValue::Number(value)
}

fn vector(values: &[f64]) -> MetricValue {
    MetricValue::from(values.to_vec())
}

/// What evaluating one condition must give.
#[derive(Debug)]
enum Expected {
    True,
    False,
    /// An error whose message contains this text.
    ErrorContaining(&'static str),
    /// An error with exactly this message.
    ErrorExactly(&'static str),
}

struct ConditionCase {
    name: &'static str,
    condition: &'static str,
    result: MetricValue,
    expected: Expected,
}

fn case(
    name: &'static str,
    condition: &'static str,
    result: MetricValue,
    expected: Expected,
) -> ConditionCase {
    ConditionCase {
        name,
        condition,
        result,
        expected,
    }
}

fn condition_cases() -> Vec<ConditionCase> {
    use Expected::{ErrorContaining, ErrorExactly, False, True};
    vec![
        // Every example of the Argo docs (inventory §2.3).
        case(
            "doc: vector sample above threshold",
            "result[0] >= 0.95",
            vector(&[0.97]),
            True,
        ),
        case(
            "doc: vector sample below threshold",
            "result[0] >= 0.95",
            vector(&[0.5]),
            False,
        ),
        case(
            "doc: len guard accepts an empty vector",
            "len(result) == 0 || result[0] >= 0.95",
            vector(&[]),
            True,
        ),
        case(
            "doc: len guard falls through to the sample",
            "len(result) == 0 || result[0] >= 0.95",
            vector(&[0.9]),
            False,
        ),
        case(
            "doc: isNaN guard accepts a NaN scalar",
            "isNaN(result) || result >= 0.95",
            number(f64::NAN),
            True,
        ),
        case(
            "doc: isNaN guard with a good finite scalar",
            "isNaN(result) || result >= 0.95",
            number(0.96),
            True,
        ),
        case(
            "doc: isNaN guard with a bad finite scalar",
            "isNaN(result) || result >= 0.95",
            number(0.5),
            False,
        ),
        case(
            "doc: isInf on +Inf",
            "isInf(result)",
            number(f64::INFINITY),
            True,
        ),
        case(
            "doc: isInf on -Inf",
            "isInf(result)",
            number(f64::NEG_INFINITY),
            True,
        ),
        case(
            "doc: isInf on a finite number",
            "isInf(result)",
            number(1.0),
            False,
        ),
        case(
            "doc: isInf on NaN",
            "isInf(result)",
            number(f64::NAN),
            False,
        ),
        case(
            "doc: default replaces nil",
            "default(result, 0) < 0.05",
            MetricValue::Nil,
            True,
        ),
        case(
            "doc: default keeps a value",
            "default(result, 0) < 0.05",
            number(0.2),
            False,
        ),
        case(
            "doc: default keeps a small value",
            "default(result, 0) < 0.05",
            number(0.01),
            True,
        ),
        case(
            "doc: single-quoted string equality",
            "result == 'true'",
            "true".into(),
            True,
        ),
        case(
            "doc: single-quoted string inequality",
            "result == 'true'",
            "false".into(),
            False,
        ),
        case(
            "doc: all with bare # predicate",
            "all(result, # < 1000)",
            vector(&[1.0, 999.0]),
            True,
        ),
        case(
            "doc: all with bare # predicate, one too big",
            "all(result, # < 1000)",
            vector(&[1.0, 1000.0]),
            False,
        ),
        case(
            "doc: cloudwatch Values, enough and all small",
            "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
            from_json(json!([{"Values": [0.001, 0.002, 0.01, 0.0, 0.005]}])),
            True,
        ),
        case(
            "doc: cloudwatch Values, one too big",
            "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
            from_json(json!([{"Values": [0.001, 0.002, 0.02, 0.0, 0.005]}])),
            False,
        ),
        case(
            "doc: cloudwatch Values, too few",
            "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
            from_json(json!([{"Values": [0.001]}])),
            False,
        ),
        case(
            "doc: skywalking .value shorthand with asFloat, all good",
            "all(result.service_apdex.values.values, {asFloat(.value) >= 9900})",
            from_json(json!({"service_apdex": {"values": {"values": [
                {"value": "9950"}, {"value": "10000"}
            ]}}})),
            True,
        ),
        case(
            "doc: skywalking .value shorthand with asFloat, one bad",
            "all(result.service_apdex.values.values, {asFloat(.value) >= 9900})",
            from_json(json!({"service_apdex": {"values": {"values": [
                {"value": "9950"}, {"value": "9800"}
            ]}}})),
            False,
        ),
        case(
            "doc: datadog max below",
            "max(result) < 0.05",
            vector(&[0.01, 0.04]),
            True,
        ),
        case(
            "doc: datadog max above",
            "max(result) < 0.05",
            vector(&[0.01, 0.06]),
            False,
        ),
        case(
            "doc: web ok and successPercent",
            "result.ok && result.successPercent >= 0.90",
            from_json(json!({"ok": true, "successPercent": 0.95})),
            True,
        ),
        case(
            "doc: web not ok",
            "result.ok && result.successPercent >= 0.90",
            from_json(json!({"ok": false, "successPercent": 0.95})),
            False,
        ),
        // NaN, infinities, nil.
        case(
            "NaN is not >= a threshold",
            "result >= 0.95",
            number(f64::NAN),
            False,
        ),
        case(
            "NaN is not < a threshold",
            "result < 0.95",
            number(f64::NAN),
            False,
        ),
        case(
            "NaN is not equal to itself",
            "result == result",
            number(f64::NAN),
            False,
        ),
        case(
            "NaN is unequal to itself",
            "result != result",
            number(f64::NAN),
            True,
        ),
        case(
            "isNaN on a finite number",
            "isNaN(result)",
            number(0.0),
            False,
        ),
        case(
            "NaN inside a vector",
            "any(result, isNaN(#))",
            vector(&[0.1, f64::NAN]),
            True,
        ),
        case(
            "+Inf exceeds any finite bound",
            "result > 1e308",
            number(f64::INFINITY),
            True,
        ),
        case(
            "-Inf is below any finite bound",
            "result < -1e308",
            number(f64::NEG_INFINITY),
            True,
        ),
        case(
            "float division by zero is +Inf",
            "isInf(result / 0)",
            number(1.0),
            True,
        ),
        case("isNil on nil", "isNil(result)", MetricValue::Nil, True),
        case("isNil on a number", "isNil(result)", number(0.0), False),
        case(
            "isNil on an empty vector",
            "isNil(result)",
            vector(&[]),
            False,
        ),
        case("nil equals nil", "result == nil", MetricValue::Nil, True),
        case(
            "?? replaces nil",
            "(result ?? 0) < 1",
            MetricValue::Nil,
            True,
        ),
        case(
            "missing member is nil",
            "result.missing == nil",
            from_json(json!({})),
            True,
        ),
        // Type errors and other evaluation errors.
        case(
            "comparing a number with a string",
            "result < 'abc'",
            number(1.0),
            ErrorContaining("Invalid operands for operator <"),
        ),
        case(
            "indexing a number",
            "result[0] > 1",
            number(5.0),
            ErrorContaining("Invalid operand for operator []"),
        ),
        case(
            "member access on a number",
            "result.ok",
            number(5.0),
            ErrorContaining("Invalid operand for operator []"),
        ),
        case(
            "unknown function",
            "frobnicate(result) > 1",
            number(1.0),
            ErrorExactly("Unknown function: frobnicate"),
        ),
        case(
            "unknown variable",
            "results > 1",
            number(1.0),
            ErrorExactly("unknown variable: results"),
        ),
        case(
            "asInt on a non-numeric string",
            "asInt('abc') > 1",
            number(1.0),
            ErrorExactly(r#"asInt() cannot parse "abc" as an integer"#),
        ),
        case(
            "asInt on a bool",
            "asInt(result) > 1",
            MetricValue::Bool(true),
            ErrorExactly("asInt() not supported on bool true"),
        ),
        case(
            "asFloat on a non-numeric result string",
            "asFloat(result) > 1",
            "n/a".into(),
            ErrorExactly(r#"asFloat() cannot parse "n/a" as a number"#),
        ),
        case(
            "asFloat on an out-of-range string",
            "asFloat('1e999') > 1",
            number(1.0),
            ErrorExactly(r#"asFloat() value "1e999" is out of range"#),
        ),
        case(
            "asFloat with two arguments",
            "asFloat('1', '2') > 1",
            number(1.0),
            ErrorExactly("asFloat() takes exactly 1 argument, got 2"),
        ),
        case(
            "isNaN on a string",
            "isNaN(result)",
            "NaN".into(),
            ErrorExactly(r#"isNaN() takes a number, got string "NaN""#),
        ),
        case(
            "default with one argument",
            "default(result) < 1",
            number(1.0),
            ErrorExactly("default() takes exactly 2 arguments, got 1"),
        ),
        case(
            "modulo on a float result (every provider number is a float, as in Go)",
            "result % 2 == 0",
            from_json(json!(4)),
            ErrorContaining("Invalid operands for operator %"),
        ),
        case(
            "now() is not available",
            "now() > 0",
            number(1.0),
            ErrorContaining("now() is not available in Sluice metric conditions"),
        ),
        case(
            "and with a non-bool operand",
            "result and true",
            number(1.0),
            ErrorContaining("Invalid operands for operator and"),
        ),
        // Conditions that do not yield a bool.
        case(
            "a float is not a verdict",
            "result",
            number(1.0),
            ErrorExactly("expected bool, but got float64"),
        ),
        case(
            "an int is not a verdict",
            "len(result)",
            vector(&[1.0]),
            ErrorExactly("expected bool, but got int"),
        ),
        case(
            "a string is not a verdict",
            "result",
            "yes".into(),
            ErrorExactly("expected bool, but got string"),
        ),
        case(
            "nil is not a verdict",
            "result",
            MetricValue::Nil,
            ErrorExactly("expected bool, but got <nil>"),
        ),
        case(
            "a list is not a verdict",
            "filter(result, # > 0)",
            vector(&[1.0]),
            ErrorExactly("expected bool, but got []interface {}"),
        ),
        case(
            "a map is not a verdict",
            "result",
            from_json(json!({"ok": true})),
            ErrorExactly("expected bool, but got map[string]interface {}"),
        ),
        // Syntax errors, with positions in the condition as written.
        case(
            "syntax: condition ends after an operator",
            "result >=",
            number(1.0),
            ErrorExactly("syntax error: unexpected end of condition at line 1, column 10"),
        ),
        case(
            "syntax: dangling &&",
            "result[0] >= 0.95 &&",
            number(1.0),
            ErrorExactly("syntax error: unexpected end of condition at line 1, column 21"),
        ),
        case(
            "syntax: stray symbol",
            "result @ 1",
            number(1.0),
            ErrorExactly(r#"syntax error: unexpected "@" at line 1, column 8"#),
        ),
        case(
            "syntax: unclosed parenthesis",
            "(result > 1",
            number(1.0),
            ErrorExactly("syntax error: unexpected end of condition at line 1, column 12"),
        ),
        case(
            "syntax: position after a .field shorthand is in source columns",
            "all(result, {.a >})",
            vector(&[]),
            ErrorExactly(r#"syntax error: unexpected "}" at line 1, column 18"#),
        ),
        case(
            "syntax: second line of a multi-line condition",
            "result > 1 &&\n  result <",
            number(1.0),
            ErrorExactly("syntax error: unexpected end of condition at line 2, column 11"),
        ),
        case(
            "syntax: empty condition",
            "",
            number(1.0),
            ErrorContaining("syntax error"),
        ),
        // in, ternaries, not, logic words.
        case(
            "in: string in a list",
            "'a' in result",
            from_json(json!(["a", "b"])),
            True,
        ),
        case(
            "in: number not in a list",
            "3 in result",
            vector(&[1.0, 2.0]),
            False,
        ),
        case(
            "in: key of a map",
            "'ok' in result",
            from_json(json!({"ok": 1})),
            True,
        ),
        case(
            "not in: value outside a literal list",
            "result not in [1, 2]",
            number(3.0),
            True,
        ),
        case(
            "in: a string is not a collection (use contains)",
            "'a' in result",
            "abc".into(),
            ErrorContaining("Invalid operands for operator in"),
        ),
        case(
            "ternary: guard on an empty vector",
            "len(result) > 0 ? result[0] < 0.1 : true",
            vector(&[]),
            True,
        ),
        case(
            "ternary: guard passes to the sample",
            "len(result) > 0 ? result[0] < 0.1 : true",
            vector(&[0.2]),
            False,
        ),
        case(
            "ternary: nested",
            "result > 10 ? false : result > 5 ? true : false",
            number(7.0),
            True,
        ),
        case("not: word form", "not (result > 1)", number(0.5), True),
        case(
            "not: bang on a member",
            "!result.ok",
            from_json(json!({"ok": false})),
            True,
        ),
        case(
            "not: negated isNaN on NaN",
            "not isNaN(result)",
            number(f64::NAN),
            False,
        ),
        case(
            "and/or: word forms",
            "result > 0 and result < 1 or false",
            number(0.5),
            True,
        ),
        case(
            "or: short-circuits past an error",
            "true || result.x.y > 1",
            number(1.0),
            True,
        ),
        // String operators and functions.
        case(
            "startsWith operator",
            "result startsWith 'OK'",
            "OK: fine".into(),
            True,
        ),
        case(
            "contains operator",
            "result contains 'err'",
            "an error".into(),
            True,
        ),
        case(
            "endsWith operator",
            "result endsWith '!'",
            "done".into(),
            False,
        ),
        case(
            "matches operator",
            "result matches '^[0-9]+$'",
            "123".into(),
            True,
        ),
        case("upper function", "upper(result) == 'OK'", "ok".into(), True),
        case("trim function", "trim(result) == 'ok'", " ok ".into(), True),
        case(
            "double-quoted string literal",
            r#"result == "it's""#,
            "it's".into(),
            True,
        ),
        // Collection builtins and closures.
        case(
            "filter then len",
            "len(filter(result, # > 0.5)) == 2",
            vector(&[0.1, 0.6, 0.9]),
            True,
        ),
        case(
            "map then all",
            "all(map(result, # * 100), {# < 100})",
            vector(&[0.1, 0.99]),
            True,
        ),
        case(
            "any with a bare predicate",
            "any(result, # > 0.8)",
            vector(&[0.1, 0.9]),
            True,
        ),
        case(
            "any with a braced predicate",
            "any(result, {# > 1})",
            vector(&[0.1, 0.9]),
            False,
        ),
        case("none", "none(result, # < 0)", vector(&[0.1, 0.9]), True),
        case(
            "count",
            "count(result, # > 0.5) == 2",
            vector(&[0.1, 0.6, 0.9]),
            True,
        ),
        case("min", "min(result) > 0", vector(&[0.3, 0.1, 0.2]), True),
        case("sum", "sum(result) < 1", vector(&[0.3, 0.4]), True),
        case(
            "all on an empty list is true",
            "all(result, # > 1)",
            vector(&[]),
            True,
        ),
        case(
            "closure: #.field",
            "all(result, {#.code < 500})",
            from_json(json!([{"code": 200}, {"code": 404}])),
            True,
        ),
        case(
            "closure: unbraced .field shorthand",
            "any(result, .code >= 500)",
            from_json(json!([{"code": 200}, {"code": 503}])),
            True,
        ),
        case(
            "closure: map to a field",
            "map(result, .code)[1] == 404",
            from_json(json!([{"code": 200}, {"code": 404}])),
            True,
        ),
        case(
            "closure: nested closures",
            "all(result, {all(#.values, {# > 0})})",
            from_json(json!([{"values": [1, 2]}, {"values": [3]}])),
            True,
        ),
        case(
            "closure: a nil verdict does not pass all()",
            "all(result, {#.healthy})",
            from_json(json!([{"healthy": true}, {"name": "b"}])),
            ErrorExactly("all() predicate must return a bool, got <nil> nil"),
        ),
        case(
            "closure: a number is not a filter verdict",
            "len(filter(result, #)) > 0",
            vector(&[1.0]),
            ErrorExactly("filter() predicate must return a bool, got float64 1"),
        ),
        case(
            "closure: #index is the element's position",
            "any(result, #index == 1 && # > 0.5)",
            vector(&[0.9, 0.7]),
            True,
        ),
        case(
            "closure: one() needs exactly one match",
            "one(result, # > 0.5)",
            vector(&[0.9, 0.7]),
            False,
        ),
        case(
            "closure: predicate sees result",
            "all(result, # <= max(result))",
            vector(&[0.9, 0.7]),
            True,
        ),
        case(
            "closure: all() on a number",
            "all(result, # > 0)",
            number(1.0),
            ErrorExactly("all() takes an array as the first argument, got float64"),
        ),
        // Arithmetic, members, literals.
        case(
            "arithmetic: ratio of samples",
            "result[0] / result[1] < 0.05",
            vector(&[1.0, 100.0]),
            True,
        ),
        case(
            "arithmetic: error percentage from a map",
            "(result.errors / result.total) * 100 <= 1",
            from_json(json!({"errors": 3, "total": 1000})),
            True,
        ),
        case(
            "arithmetic: asInt allows modulo",
            "asInt(result) % 2 == 0",
            number(4.0),
            True,
        ),
        case(
            "asInt truncates toward zero",
            "asInt(result) == 3",
            number(3.9),
            True,
        ),
        case(
            "asInt parses a signed string",
            "asInt('-7') == -7",
            MetricValue::Nil,
            True,
        ),
        case(
            "asFloat parses a decimal string",
            "asFloat(result) == 0.5",
            "0.5".into(),
            True,
        ),
        case(
            "asFloat parses NaN",
            "isNaN(asFloat('NaN'))",
            MetricValue::Nil,
            True,
        ),
        case(
            "asFloat parses +Inf",
            "isInf(asFloat('+Inf'))",
            MetricValue::Nil,
            True,
        ),
        case(
            "asFloat of an int",
            "asFloat(3) == 3.0",
            MetricValue::Nil,
            True,
        ),
        case(
            "nested members and index",
            "result.data.values[1] == 2",
            from_json(json!({"data": {"values": [1, 2]}})),
            True,
        ),
        case(
            "bracket string key",
            "result['service-name'] == 'x'",
            from_json(json!({"service-name": "x"})),
            True,
        ),
        case(
            "negative index counts from the end",
            "result[-1] == 3",
            vector(&[1.0, 2.0, 3.0]),
            True,
        ),
        case(
            "int literal equals float result",
            "result == 1",
            number(1.0),
            True,
        ),
        case("exponent literal", "result == 1e3", number(1000.0), True),
        case(
            "trailing line comment",
            "result > 1 // threshold",
            number(2.0),
            True,
        ),
        case(
            "multi-line folded condition",
            "result[0] >= 0.95 &&\n  result[1] >= 0.9\n",
            vector(&[0.96, 0.91]),
            True,
        ),
    ]
}

#[test]
fn conditions_evaluate_like_argo() {
    let mut failures = Vec::new();
    for case in condition_cases() {
        let outcome = evaluate_condition(case.condition, &case.result);
        let matches = match (&case.expected, &outcome) {
            (Expected::True, Ok(true)) | (Expected::False, Ok(false)) => true,
            (Expected::ErrorContaining(fragment), Err(error)) => {
                error.to_string().contains(fragment)
            }
            (Expected::ErrorExactly(message), Err(error)) => error.to_string() == *message,
            _ => false,
        };
        if !matches {
            failures.push(format!(
                "{}: `{}` gave {outcome:?} ({}), expected {:?}",
                case.name,
                case.condition,
                outcome
                    .as_ref()
                    .map_or_else(ToString::to_string, ToString::to_string),
                case.expected
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What a measurement must be decided as.
#[derive(Debug)]
enum Decided {
    Successful,
    Failed,
    Inconclusive,
    /// An Error whose full message (Argo's measurement message) is exactly this.
    ErrorExactly(&'static str),
    /// An Error whose full message contains this text.
    ErrorContaining(&'static str),
}

struct DecisionCase {
    name: &'static str,
    success: Option<&'static str>,
    failure: Option<&'static str>,
    result: MetricValue,
    expected: Decided,
}

fn decision(
    name: &'static str,
    success: Option<&'static str>,
    failure: Option<&'static str>,
    result: MetricValue,
    expected: Decided,
) -> DecisionCase {
    DecisionCase {
        name,
        success,
        failure,
        result,
        expected,
    }
}

const NO_DATA_SUCCESS: &str = "could not evaluate successCondition \"result[0] >= 0.95\": metric \
     result is nil or empty: no data returned from the metric provider";

fn decision_cases() -> Vec<DecisionCase> {
    use Decided::{ErrorContaining, ErrorExactly, Failed, Inconclusive, Successful};
    const HOLDS: Option<&str> = Some("result > 1");
    const DOES_NOT_HOLD: Option<&str> = Some("result > 100");
    let two = || number(2.0);
    vec![
        decision("neither set", None, None, two(), Successful),
        decision(
            "neither set, even without data",
            None,
            None,
            MetricValue::Nil,
            Successful,
        ),
        decision(
            "empty strings count as unset",
            Some(""),
            Some(""),
            two(),
            Successful,
        ),
        decision("success only, holds", HOLDS, None, two(), Successful),
        decision(
            "success only, does not hold",
            DOES_NOT_HOLD,
            None,
            two(),
            Failed,
        ),
        decision("failure only, holds", None, HOLDS, two(), Failed),
        decision(
            "failure only, does not hold",
            None,
            DOES_NOT_HOLD,
            two(),
            Successful,
        ),
        decision(
            "empty success string with failure holding",
            Some(""),
            HOLDS,
            two(),
            Failed,
        ),
        decision("both hold: failure wins", HOLDS, HOLDS, two(), Failed),
        decision(
            "failure holds, success does not",
            DOES_NOT_HOLD,
            HOLDS,
            two(),
            Failed,
        ),
        decision(
            "success holds, failure does not",
            HOLDS,
            DOES_NOT_HOLD,
            two(),
            Successful,
        ),
        decision(
            "neither holds: inconclusive",
            DOES_NOT_HOLD,
            DOES_NOT_HOLD,
            two(),
            Inconclusive,
        ),
        decision(
            "NaN fails a success threshold",
            Some("result >= 0.95"),
            None,
            number(f64::NAN),
            Failed,
        ),
        decision(
            "NaN passes a failure threshold (NaN < x is false)",
            None,
            Some("result < 0.95"),
            number(f64::NAN),
            Successful,
        ),
        decision(
            "NaN with both conditions is inconclusive",
            Some("result >= 0.95"),
            Some("result < 0.5"),
            number(f64::NAN),
            Inconclusive,
        ),
        decision(
            "no data: nil result and an index",
            Some("result[0] >= 0.95"),
            None,
            MetricValue::Nil,
            ErrorExactly(NO_DATA_SUCCESS),
        ),
        decision(
            "no data: empty vector and an index",
            Some("result[0] >= 0.95"),
            None,
            vector(&[]),
            ErrorExactly(NO_DATA_SUCCESS),
        ),
        decision(
            "no data: failure condition named in the message",
            None,
            Some("result > 1"),
            MetricValue::Nil,
            ErrorExactly(
                "could not evaluate failureCondition \"result > 1\": metric result is nil or \
                 empty: no data returned from the metric provider",
            ),
        ),
        decision(
            "no data: even a syntax error reads as no data (as in Argo)",
            Some("result >"),
            None,
            MetricValue::Nil,
            ErrorContaining("metric result is nil or empty"),
        ),
        decision(
            "an empty string result is data",
            Some("result > 1"),
            None,
            "".into(),
            ErrorExactly(
                "could not evaluate successCondition \"result > 1\": Invalid operands for \
                 operator >",
            ),
        ),
        decision(
            "an empty object result is data",
            Some("result.x > 1"),
            None,
            from_json(json!({})),
            ErrorContaining("Invalid operands for operator >"),
        ),
        decision(
            "default() makes nil a pass",
            Some("default(result, 0) < 0.05"),
            None,
            MetricValue::Nil,
            Successful,
        ),
        decision(
            "len guard makes an empty vector a pass",
            Some("len(result) == 0 || result[0] >= 0.95"),
            None,
            vector(&[]),
            Successful,
        ),
        decision(
            "success error stops before the failure condition",
            Some("result.x > 1"),
            HOLDS,
            two(),
            ErrorContaining("could not evaluate successCondition \"result.x > 1\""),
        ),
        decision(
            "failure error after a good success condition",
            HOLDS,
            Some("nope(result)"),
            two(),
            ErrorExactly(
                "could not evaluate failureCondition \"nope(result)\": Unknown function: nope",
            ),
        ),
        decision(
            "syntax error with data",
            None,
            Some("result >"),
            two(),
            ErrorExactly(
                "could not evaluate failureCondition \"result >\": syntax error: unexpected end \
                 of condition at line 1, column 9",
            ),
        ),
        decision(
            "non-bool condition",
            Some("result"),
            None,
            two(),
            ErrorExactly(
                "could not evaluate successCondition \"result\": expected bool, but got float64",
            ),
        ),
    ]
}

#[test]
fn measurements_follow_argos_decision_table() {
    let mut failures = Vec::new();
    for case in decision_cases() {
        let outcome = evaluate_measurement(case.success, case.failure, &case.result);
        let matches = match (&case.expected, &outcome) {
            (Decided::Successful, Evaluation::Successful)
            | (Decided::Failed, Evaluation::Failed)
            | (Decided::Inconclusive, Evaluation::Inconclusive) => true,
            (Decided::ErrorExactly(message), Evaluation::Error(error)) => {
                error.to_string() == *message
            }
            (Decided::ErrorContaining(fragment), Evaluation::Error(error)) => {
                error.to_string().contains(fragment)
            }
            _ => false,
        };
        if !matches {
            failures.push(format!(
                "{}: success {:?}, failure {:?} gave {outcome:?}, expected {:?}",
                case.name, case.success, case.failure, case.expected
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn member_shorthand_expands_only_where_an_operand_starts() {
    let cases = [
        ("closure member", "{.value > 1}", "{#.value > 1}"),
        ("function argument", "asFloat(.value)", "asFloat(#.value)"),
        ("after a keyword operator", "a and .b", "a and #.b"),
        ("both ternary branches", "x ? .a : .b", "x ? #.a : #.b"),
        ("member access kept", "result.ok", "result.ok"),
        (
            "member after an index kept",
            "result[0].Values",
            "result[0].Values",
        ),
        ("member of # kept", "#.a", "#.a"),
        (
            "member named like a keyword kept",
            "result.in.x",
            "result.in.x",
        ),
        ("decimals kept", "0.95 + .5", "0.95 + .5"),
        ("range kept", "1..3", "1..3"),
        ("optional chaining kept", "result?.ok", "result?.ok"),
        ("string contents kept", "'.value' + .a", "'.value' + #.a"),
        (
            "escaped quote in a string",
            r"'it\'s .x' + .a",
            r"'it\'s .x' + #.a",
        ),
        ("line comment kept", "1 // .x", "1 // .x"),
        ("block comment kept", "/* .x */ .y", "/* .x */ #.y"),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, source, expected)| {
            let expanded = expand_member_shorthand(source).text;
            (expanded != *expected).then(|| format!("{name}: `{source}` became `{expanded}`"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn compiled_condition_is_reusable_across_measurements() {
    let compiled = CompiledCondition::compile("all(result, {# < 0.05})").expect("valid condition");
    assert_eq!(compiled.source(), "all(result, {# < 0.05})");
    assert_eq!(compiled.evaluate(&vector(&[0.01, 0.02])), Ok(true));
    assert_eq!(compiled.evaluate(&vector(&[0.01, 0.2])), Ok(false));
    assert_eq!(
        compiled.evaluate(&number(1.0)),
        Err(ConditionError::Evaluation(
            "all() takes an array as the first argument, got float64".to_owned()
        ))
    );
}

#[test]
fn metric_conditions_compile_once_and_decide_each_measurement() {
    let conditions = MetricConditions::new(Some("result[0] >= 0.95"), Some("result[0] < 0.5"));
    assert!(conditions.compile_errors().is_empty());
    assert_eq!(
        conditions.evaluate(&vector(&[0.99])),
        Evaluation::Successful
    );
    assert_eq!(conditions.evaluate(&vector(&[0.2])), Evaluation::Failed);
    assert_eq!(
        conditions.evaluate(&vector(&[0.7])),
        Evaluation::Inconclusive
    );
}

#[test]
fn compiled_conditions_can_be_shared_between_threads() {
    let conditions = MetricConditions::new(Some("all(result, {# < 0.05})"), None);
    std::thread::scope(|scope| {
        let measurements = [vector(&[0.01]), vector(&[0.5])];
        let handles = measurements.map(|result| {
            let conditions = &conditions;
            scope.spawn(move || conditions.evaluate(&result))
        });
        let outcomes = handles.map(|handle| handle.join().expect("evaluation thread"));
        assert_eq!(outcomes, [Evaluation::Successful, Evaluation::Failed]);
    });
}

#[test]
fn compile_errors_name_the_broken_condition() {
    let conditions = MetricConditions::new(Some("result >= 0.95"), Some("result <"));
    let errors = conditions.compile_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].condition, ConditionKind::Failure);
    assert_eq!(errors[0].expression, "result <");
    assert!(matches!(errors[0].cause, ConditionError::Syntax(_)));
    // The compile error is reported on every measurement, as Argo compiles per measurement.
    for _ in 0..2 {
        assert!(matches!(
            conditions.evaluate(&number(1.0)),
            Evaluation::Error(_)
        ));
    }
}

#[test]
fn no_data_error_keeps_the_underlying_failure_as_its_source() {
    let Evaluation::Error(error) =
        evaluate_measurement(Some("result[0] >= 0.95"), None, &MetricValue::Nil)
    else {
        panic!("a nil result must make the measurement an error");
    };
    let ConditionError::NoData { underlying } = &error.cause else {
        panic!("expected the no-data cause, got {:?}", error.cause);
    };
    assert_eq!(
        **underlying,
        ConditionError::Evaluation("Invalid operand for operator []: Integer(0)".to_owned())
    );
    let source = std::error::Error::source(&error.cause).expect("the underlying error");
    assert_eq!(source.to_string(), underlying.to_string());
}

#[test]
fn json_results_convert_like_go_encoding_json() {
    let value =
        from_json(json!({"n": 3, "big": 9_007_199_254_740_993_u64, "list": [true, null, "x"]}));
    let MetricValue::Object(fields) = &value else {
        panic!("an object must convert to an Object, got {value:?}");
    };
    assert_eq!(fields["n"], MetricValue::Number(3.0));
    assert_eq!(fields["big"], MetricValue::Number(9_007_199_254_740_992.0));
    assert_eq!(
        fields["list"],
        MetricValue::Array(vec![
            MetricValue::Bool(true),
            MetricValue::Nil,
            MetricValue::String("x".to_owned())
        ])
    );
    assert_eq!(MetricValue::from(None::<f64>), MetricValue::Nil);
    assert_eq!(MetricValue::from(Some(0.5)), MetricValue::Number(0.5));
}

#[test]
fn nil_or_empty_means_nil_or_an_empty_list_only() {
    let cases = [
        ("nil", MetricValue::Nil, true),
        ("empty list", vector(&[]), true),
        ("list with a sample", vector(&[0.0]), false),
        ("empty string", "".into(), false),
        ("empty object", from_json(json!({})), false),
        ("zero", number(0.0), false),
        ("NaN", number(f64::NAN), false),
    ];
    for (name, value, expected) in cases {
        assert_eq!(value.is_nil_or_empty(), expected, "{name}");
    }
}

/// Any f64, weighted towards the values conditions trip over.
fn any_sample() -> impl proptest::strategy::Strategy<Value = f64> {
    use proptest::prelude::*;
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        -1e6..1e6_f64,
        any::<f64>(),
    ]
}

proptest::proptest! {
    #[test]
    fn threshold_verdict_is_ieee_comparison(sample in any_sample(), threshold in -1e6..1e6_f64) {
        let condition = format!("result >= {threshold:?}");
        let expected = if sample >= threshold { Evaluation::Successful } else { Evaluation::Failed };
        proptest::prop_assert_eq!(
            evaluate_measurement(Some(&condition), None, &number(sample)),
            expected
        );
    }

    #[test]
    fn all_over_a_vector_is_iterator_all(
        samples in proptest::collection::vec(any_sample(), 0..8),
        threshold in -1e6..1e6_f64,
    ) {
        let condition = format!("all(result, {{# < {threshold:?}}})");
        let expected = samples.iter().all(|sample| *sample < threshold);
        proptest::prop_assert_eq!(
            evaluate_condition(&condition, &vector(&samples)),
            Ok(expected)
        );
    }

    #[test]
    fn shorthand_expansion_only_inserts_hashes(source in "[ a-z.#(){}'\"0-9<>&|?:,]{0,40}") {
        let expanded = expand_member_shorthand(&source);
        let mut restored = expanded.text.clone();
        // Remove the inserted '#'s, last first, by their (line, column) in the expanded text.
        for (line, column) in expanded.insertions.iter().rev() {
            proptest::prop_assert_eq!(*line, 1);
            let byte = restored.char_indices().nth(column - 1).map(|(byte, _)| byte);
            proptest::prop_assert_eq!(byte.map(|byte| &restored[byte..=byte]), Some("#"));
            restored.remove(byte.unwrap_or_default());
        }
        proptest::prop_assert_eq!(restored, source);
    }
}
