//! Prometheus metric provider: instant and range queries.
//!
//! The metric's `provider.prometheus` block arrives as `plugin-config` (or, failing that, inside
//! `metric-json`). A query that returns data is a `successful` measurement whose value is the
//! result as text (a scalar's number, or `[v1,v2]` for all samples of a vector or matrix); the
//! host evaluates the metric's conditions against it. A query that cannot be answered is an
//! `error` measurement whose message says why. See the crate README for the whole contract.

mod config;
mod encoding;
mod response;
mod time;

use std::time::{SystemTime, UNIX_EPOCH};

use sluice_plugin_sdk::http::{self, HttpError};
use sluice_plugin_sdk::{AnalysisContext, AnalysisPhase, Measurement, MetricProvider, PluginError};

pub use crate::config::PrometheusConfig;
pub use crate::response::{QueryOutcome, interpret, warnings_metadata};
pub use crate::time::{evaluate_time_expression, parse_go_duration};

/// The plugin type the host checks at load (Argo's provider type name).
pub const PLUGIN_TYPE: &str = "Prometheus";

/// Metadata key of the query as sent (Argo's `ResolvedPrometheusQuery`).
pub const RESOLVED_QUERY_KEY: &str = "ResolvedPrometheusQuery";

/// Metadata key of the server's warnings.
pub const WARNINGS_KEY: &str = "warnings";

/// The largest value text the host accepts in a measurement.
const MAX_VALUE_BYTES: usize = 64 << 10;

/// The Prometheus metric provider.
pub struct PrometheusProvider;

/// Seconds since the Unix epoch, with sub-second precision.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Formats a Unix time as Prometheus accepts it (seconds, millisecond precision).
fn unix_time_parameter(seconds: f64) -> String {
    format!("{seconds:.3}")
}

/// The request URL of the configured query at time `now`.
pub fn query_url(config: &PrometheusConfig, now: f64) -> Result<String, PluginError> {
    let base = config.address.trim_end_matches('/');
    let query = encoding::percent_encode(&config.query);
    let Some(range) = &config.range_query else {
        return Ok(format!("{base}/api/v1/query?query={query}"));
    };
    let invalid = |field: &str, message: String| {
        PluginError::InvalidConfig(format!("provider.prometheus.rangeQuery.{field}: {message}"))
    };
    let start = evaluate_time_expression(&range.start, now).map_err(|m| invalid("start", m))?;
    let end = evaluate_time_expression(&range.end, now).map_err(|m| invalid("end", m))?;
    let step = parse_go_duration(range.step.trim()).map_err(|m| invalid("step", m))?;
    if step.is_zero() {
        return Err(invalid("step", "must be greater than zero".into()));
    }
    if end < start {
        return Err(invalid(
            "end",
            format!("{:?} is before start {:?}", range.end, range.start),
        ));
    }
    Ok(format!(
        "{base}/api/v1/query_range?query={query}&start={}&end={}&step={}",
        unix_time_parameter(start),
        unix_time_parameter(end),
        step.as_secs_f64()
    ))
}

/// The request headers: the configured ones, then basic authentication if configured.
pub fn request_headers(config: &PrometheusConfig) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = config
        .headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    if let Some(basic) = &config.authentication.basic_auth {
        let credentials =
            encoding::base64(format!("{}:{}", basic.username, basic.password).as_bytes());
        headers.push(("Authorization".into(), format!("Basic {credentials}")));
    }
    headers
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

fn finished(
    phase: AnalysisPhase,
    started: i64,
    value: Option<String>,
    message: Option<String>,
    metadata: Vec<(String, String)>,
) -> Measurement {
    let finished = (now() as i64).max(started);
    Measurement {
        phase,
        value,
        message,
        started_at: Some(started),
        finished_at: Some(finished),
        resume_at: None,
        metadata,
    }
}

impl MetricProvider for PrometheusProvider {
    fn plugin_type() -> String {
        PLUGIN_TYPE.into()
    }

    fn run(ctx: AnalysisContext) -> Result<Measurement, PluginError> {
        let config = PrometheusConfig::from_context(&ctx)?;
        let started_at = now();
        let started = started_at as i64;
        let url = query_url(&config, started_at)?;
        let headers = request_headers(&config);
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut metadata = vec![(RESOLVED_QUERY_KEY.to_owned(), config.query.clone())];
        let response =
            match http::send_with_timeout("GET", &url, &header_refs, &[], config.timeout()) {
                Ok(response) => response,
                Err(HttpError::Denied(message)) => return Err(PluginError::AccessDenied(message)),
                Err(HttpError::InvalidUrl(message)) => {
                    return Err(PluginError::InvalidConfig(message));
                }
                Err(error) => {
                    let message = format!("GET {url}: {}", describe_transport_failure(&error));
                    sluice_plugin_sdk::warn!("metric {}: {message}", ctx.metric_name);
                    return Ok(finished(
                        AnalysisPhase::Error,
                        started,
                        None,
                        Some(message),
                        metadata,
                    ));
                }
            };
        match interpret(response.status, &response.body) {
            Ok(outcome) if outcome.value.len() > MAX_VALUE_BYTES => {
                let message = format!(
                    "query result is {} bytes, more than the {MAX_VALUE_BYTES} a measurement holds",
                    outcome.value.len()
                );
                Ok(finished(
                    AnalysisPhase::Error,
                    started,
                    None,
                    Some(message),
                    metadata,
                ))
            }
            Ok(outcome) => {
                if !outcome.warnings.is_empty() {
                    metadata.push((
                        WARNINGS_KEY.to_owned(),
                        warnings_metadata(&outcome.warnings),
                    ));
                }
                Ok(finished(
                    AnalysisPhase::Successful,
                    started,
                    Some(outcome.value),
                    None,
                    metadata,
                ))
            }
            Err(message) => Ok(finished(
                AnalysisPhase::Error,
                started,
                None,
                Some(message),
                metadata,
            )),
        }
    }

    fn get_metadata(ctx: AnalysisContext) -> Vec<(String, String)> {
        PrometheusConfig::from_context(&ctx)
            .map(|config| vec![(RESOLVED_QUERY_KEY.to_owned(), config.query)])
            .unwrap_or_default()
    }
}

sluice_plugin_sdk::export_metric_provider!(PrometheusProvider);
