//! Web metric provider: an HTTP request whose JSON response is evaluated.
//!
//! The metric's `provider.web` block arrives as `plugin-config` (or, failing that, inside
//! `metric-json`). A 2xx response is a `successful` measurement whose value is the first match of
//! `jsonPath` in the body (or the body itself when it is not JSON); the host evaluates the
//! metric's conditions against it. A request that fails, or a non-2xx response, is an `error`
//! measurement. See `plugins/prometheus/README.md` for the contract and this crate's README.

mod jsonpath;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;
use sluice_plugin_sdk::http::{self, HttpError};
use sluice_plugin_sdk::{AnalysisContext, AnalysisPhase, Measurement, MetricProvider, PluginError};

pub use crate::jsonpath::{Template, WHOLE_DOCUMENT};

/// The plugin type the host checks at load (Argo's provider type name).
pub const PLUGIN_TYPE: &str = "Web";

/// Argo's default request timeout, in seconds.
const DEFAULT_TIMEOUT_SECONDS: u64 = 10;

/// The largest value text the host accepts in a measurement.
const MAX_VALUE_BYTES: usize = 64 << 10;

/// `metric.provider.web` (Argo `WebMetric`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebConfig {
    /// `GET` (default), `POST` or `PUT`.
    #[serde(default)]
    pub method: Option<String>,
    /// The URL to call.
    #[serde(default)]
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: Vec<Header>,
    /// A text body (POST and PUT only).
    pub body: Option<String>,
    /// A JSON body (POST and PUT only); sets `Content-Type: application/json`.
    pub json_body: Option<Value>,
    /// Request timeout in seconds (default 10).
    pub timeout_seconds: Option<u64>,
    /// Kubernetes JSONPath template selecting the result (default `{$}`).
    pub json_path: Option<String>,
    /// Skip TLS verification (Argo): done by the host, which reads this field
    /// (`tlsSkipVerifyFromConfig`).
    #[serde(default)]
    pub insecure: bool,
    /// Argo's `authentication` (`oauth2`, `sigv4`): see [`WebConfig::check_authentication`].
    pub authentication: Option<Value>,
}

/// One request header (Argo `WebMetricHeader`).
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
}

impl WebConfig {
    /// Reads the configuration of a call: `plugin-config` when it has a `url` (the host passes
    /// `provider.web` there), otherwise `provider.web` of `metric-json`.
    pub fn from_context(ctx: &AnalysisContext) -> Result<Self, PluginError> {
        let config: Self = PluginError::parse_config(&ctx.plugin_config)?;
        if !config.url.is_empty() {
            return Ok(config);
        }
        let metric: Value = PluginError::parse_config(&ctx.metric_json)?;
        match metric.pointer("/provider/web") {
            Some(block) => serde_json::from_value(block.clone())
                .map_err(|e| PluginError::InvalidConfig(format!("provider.web: {e}"))),
            None => Err(PluginError::InvalidConfig(
                "provider.web.url is required".into(),
            )),
        }
    }

    /// Rejects authentication the plugin cannot perform: `sigv4` signing, and `oauth2` unless the
    /// host has already resolved it into an `Authorization` header.
    pub fn check_authentication(&self) -> Result<(), PluginError> {
        let Some(authentication) = &self.authentication else {
            return Ok(());
        };
        if authentication.get("sigv4").is_some_and(|v| !v.is_null()) {
            return Err(PluginError::InvalidConfig(
                "provider.web.authentication.sigv4 is not supported by the built-in Web provider"
                    .into(),
            ));
        }
        let has_authorization = self
            .headers
            .iter()
            .any(|h| h.key.eq_ignore_ascii_case("authorization"));
        if authentication.get("oauth2").is_some_and(|v| !v.is_null()) && !has_authorization {
            return Err(PluginError::InvalidConfig(
                "provider.web.authentication.oauth2 must be resolved by the host into an Authorization header".into(),
            ));
        }
        Ok(())
    }

    /// The method, upper-cased; only GET, POST and PUT are accepted, as in Argo.
    pub fn method(&self) -> Result<String, PluginError> {
        let method = self.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        match method.as_str() {
            "GET" | "POST" | "PUT" => Ok(method),
            other => Err(PluginError::InvalidConfig(format!(
                "provider.web.method {other:?} is not supported; use GET, POST or PUT"
            ))),
        }
    }

    /// The request body and whether it is JSON.
    pub fn request_body(&self, method: &str) -> Result<(Vec<u8>, bool), PluginError> {
        let invalid = |m: &str| Err(PluginError::InvalidConfig(m.to_owned()));
        match (&self.body, &self.json_body) {
            (Some(_), Some(_)) => invalid("provider.web: set body or jsonBody, not both"),
            (None, None) => Ok((Vec::new(), false)),
            _ if method == "GET" => {
                invalid("provider.web: body and jsonBody need method POST or PUT")
            }
            (Some(body), None) => Ok((body.clone().into_bytes(), false)),
            (None, Some(json)) => Ok((json.to_string().into_bytes(), true)),
        }
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(
            self.timeout_seconds
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
        )
    }
}

/// The value text of a JSONPath match: strings as they are, unless the text would read back as
/// something else (a number, `true`, a list…), in which case it is JSON-quoted; anything else as
/// JSON.
pub fn value_text(matched: &Value) -> String {
    match matched {
        Value::String(text) => {
            let ambiguous = serde_json::from_str::<Value>(text).is_ok()
                || matches!(text.trim(), "NaN" | "Inf" | "+Inf" | "-Inf")
                || text.trim_start().starts_with('[');
            if ambiguous {
                matched.to_string()
            } else {
                text.clone()
            }
        }
        other => other.to_string(),
    }
}

/// Reads a 2xx response body into the measurement value.
pub fn response_value(body: &[u8], template: &Template) -> Result<String, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(document) => template.first_match(&document).map(value_text),
        Err(_) if template.is_whole_document() => Ok(String::from_utf8_lossy(body).into_owned()),
        Err(error) => Err(format!("could not parse JSON body: {error}")),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn finished(
    phase: AnalysisPhase,
    started: i64,
    value: Option<String>,
    message: Option<String>,
) -> Measurement {
    Measurement {
        phase,
        value,
        message,
        started_at: Some(started),
        finished_at: Some(now().max(started)),
        resume_at: None,
        metadata: Vec::new(),
    }
}

/// Words for the host's transport failures.
fn describe_transport_failure(error: &HttpError) -> String {
    match error {
        HttpError::Transport(code) if code.contains("Timeout") => {
            format!("request timed out ({code})")
        }
        HttpError::Transport(code) if code.contains("ConnectionRefused") => {
            format!("connection refused ({code})")
        }
        other => other.to_string(),
    }
}

/// The Web metric provider.
pub struct WebProvider;

impl MetricProvider for WebProvider {
    fn plugin_type() -> String {
        PLUGIN_TYPE.into()
    }

    fn run(ctx: AnalysisContext) -> Result<Measurement, PluginError> {
        let config = WebConfig::from_context(&ctx)?;
        config.check_authentication()?;
        let method = config.method()?;
        let (body, json) = config.request_body(&method)?;
        let template = Template::parse(config.json_path.as_deref().unwrap_or(WHOLE_DOCUMENT))
            .map_err(PluginError::InvalidConfig)?;
        let mut headers: Vec<(&str, &str)> = config
            .headers
            .iter()
            .filter(|h| !(json && h.key.eq_ignore_ascii_case("content-type")))
            .map(|h| (h.key.as_str(), h.value.as_str()))
            .collect();
        if json {
            headers.push(("Content-Type", "application/json"));
        }
        let started = now();
        let response = match http::send_with_timeout(
            &method,
            &config.url,
            &headers,
            &body,
            config.timeout(),
        ) {
            Ok(response) => response,
            Err(HttpError::Denied(message)) => return Err(PluginError::AccessDenied(message)),
            Err(HttpError::InvalidUrl(message)) => return Err(PluginError::InvalidConfig(message)),
            Err(error) => {
                let message = format!(
                    "{method} {}: {}",
                    config.url,
                    describe_transport_failure(&error)
                );
                sluice_plugin_sdk::warn!("metric {}: {message}", ctx.metric_name);
                return Ok(finished(AnalysisPhase::Error, started, None, Some(message)));
            }
        };
        if !(200..300).contains(&response.status) {
            let message = format!("received non 2xx response code: {}", response.status);
            return Ok(finished(AnalysisPhase::Error, started, None, Some(message)));
        }
        Ok(match response_value(&response.body, &template) {
            Ok(value) if value.len() > MAX_VALUE_BYTES => {
                let message = format!(
                    "result is {} bytes, more than the {MAX_VALUE_BYTES} a measurement holds",
                    value.len()
                );
                finished(AnalysisPhase::Error, started, None, Some(message))
            }
            Ok(value) => finished(AnalysisPhase::Successful, started, Some(value), None),
            Err(message) => finished(AnalysisPhase::Error, started, None, Some(message)),
        })
    }
}

sluice_plugin_sdk::export_metric_provider!(WebProvider);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strings_stay_plain_unless_they_would_read_back_as_something_else() {
        assert_eq!(value_text(&json!("healthy")), "healthy");
        assert_eq!(value_text(&json!("0.99")), "\"0.99\"");
        assert_eq!(value_text(&json!("true")), "\"true\"");
        assert_eq!(value_text(&json!("NaN")), "\"NaN\"");
        assert_eq!(value_text(&json!(0.99)), "0.99");
        assert_eq!(value_text(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
    }

    #[test]
    fn bodies_need_post_or_put_and_only_one_kind() {
        let config: WebConfig =
            serde_json::from_value(json!({"url": "http://x", "body": "a"})).unwrap();
        assert!(config.request_body("GET").is_err());
        assert_eq!(config.request_body("POST").unwrap(), (b"a".to_vec(), false));
        let both: WebConfig =
            serde_json::from_value(json!({"url": "http://x", "body": "a", "jsonBody": {}}))
                .unwrap();
        assert!(both.request_body("POST").is_err());
        let delete: WebConfig =
            serde_json::from_value(json!({"url": "http://x", "method": "delete"})).unwrap();
        assert!(delete.method().is_err());
    }

    #[test]
    fn non_json_bodies_are_the_value_only_for_the_whole_document() {
        let whole = Template::parse(WHOLE_DOCUMENT).unwrap();
        assert_eq!(
            response_value(b"all good", &whole),
            Ok("all good".to_owned())
        );
        let path = Template::parse("{$.ok}").unwrap();
        assert!(
            response_value(b"all good", &path)
                .unwrap_err()
                .contains("could not parse JSON body")
        );
        assert_eq!(
            response_value(br#"{"ok": true}"#, &path),
            Ok("true".to_owned())
        );
    }
}
