//! Maps a Prometheus HTTP API response (`/api/v1/query`, `/api/v1/query_range`) to a measurement
//! value the way Argo's provider does.

use serde::Deserialize;
use serde_json::Value;

/// A successful query's value text and the server's warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOutcome {
    /// The value text: a number for a scalar, `[v1,v2]` for a vector or matrix (all samples).
    pub value: String,
    /// Warnings the server attached to the response.
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResponse {
    status: String,
    data: Option<QueryData>,
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: Value,
}

#[derive(Deserialize)]
struct Series {
    value: Option<(Value, String)>,
    #[serde(default)]
    values: Vec<(Value, String)>,
}

/// Reads a response with HTTP `status` and `body`; the error is the measurement's message.
pub fn interpret(status: u16, body: &[u8]) -> Result<QueryOutcome, String> {
    let response: ApiResponse = match serde_json::from_slice(body) {
        Ok(response) => response,
        Err(error) if (200..300).contains(&status) => {
            return Err(format!("invalid Prometheus response: {error}"));
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let snippet: String = text.trim().chars().take(200).collect();
            return Err(format!("server_error: server error: {status}: {snippet}"));
        }
    };
    if response.status != "success" {
        let kind = response.error_type.unwrap_or_else(|| "error".to_owned());
        let message = response
            .error
            .unwrap_or_else(|| format!("HTTP status {status}"));
        return Err(format!("{kind}: {message}"));
    }
    let data = response
        .data
        .ok_or("invalid Prometheus response: no data")?;
    let value = match data.result_type.as_str() {
        "scalar" => {
            let (_, sample): (Value, String) = serde_json::from_value(data.result)
                .map_err(|e| format!("invalid Prometheus scalar: {e}"))?;
            check_sample(&sample)?;
            sample
        }
        "vector" | "matrix" => {
            let series: Vec<Series> = serde_json::from_value(data.result)
                .map_err(|e| format!("invalid Prometheus {}: {e}", data.result_type))?;
            let mut samples = Vec::new();
            for s in series {
                for (_, sample) in s.value.into_iter().chain(s.values) {
                    check_sample(&sample)?;
                    samples.push(sample);
                }
            }
            format!("[{}]", samples.join(","))
        }
        other => return Err(format!("Prometheus metric type not supported: {other}")),
    };
    Ok(QueryOutcome {
        value,
        warnings: response.warnings,
    })
}

/// Checks that a sample is a float as Prometheus writes it (`0.95`, `NaN`, `+Inf`, `-Inf`).
fn check_sample(sample: &str) -> Result<(), String> {
    let valid = matches!(sample, "NaN" | "+Inf" | "-Inf")
        || (sample.parse::<f64>().is_ok()
            && sample
                .chars()
                .all(|c| c.is_ascii_digit() || "+-.eE".contains(c)));
    if valid {
        Ok(())
    } else {
        Err(format!("invalid Prometheus sample value {sample:?}"))
    }
}

/// Argo's `warnings` metadata: each warning quoted, joined with `, `.
pub fn warnings_metadata(warnings: &[String]) -> String {
    warnings
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> QueryOutcome {
        interpret(200, body.as_bytes()).unwrap()
    }

    #[test]
    fn scalars_vectors_and_matrices_become_value_text() {
        let scalar = ok(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"0.95"]}}"#,
        );
        assert_eq!(scalar.value, "0.95");
        let vector = ok(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"a":"1"},"value":[1700000000,"0.97"]},{"metric":{"a":"2"},"value":[1700000000,"NaN"]}]}}"#,
        );
        assert_eq!(vector.value, "[0.97,NaN]");
        let matrix = ok(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{},"values":[[1,"1"],[2,"+Inf"]]},{"metric":{},"values":[[1,"3"]]}]}}"#,
        );
        assert_eq!(matrix.value, "[1,+Inf,3]");
        assert_eq!(
            ok(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#).value,
            "[]"
        );
    }

    #[test]
    fn errors_say_what_the_server_said() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        assert_eq!(
            interpret(400, body.as_bytes()).unwrap_err(),
            "bad_data: parse error at char 4"
        );
        let err = interpret(503, b"Service Unavailable").unwrap_err();
        assert!(
            err.contains("503") && err.contains("Service Unavailable"),
            "{err}"
        );
        let err = interpret(200, b"<html>").unwrap_err();
        assert!(err.contains("invalid Prometheus response"), "{err}");
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(
            interpret(200, string.as_bytes())
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn warnings_are_quoted_and_joined() {
        let outcome = ok(
            r#"{"status":"success","warnings":["a","b c"],"data":{"resultType":"scalar","result":[1,"1"]}}"#,
        );
        assert_eq!(warnings_metadata(&outcome.warnings), r#""a", "b c""#);
    }
}
