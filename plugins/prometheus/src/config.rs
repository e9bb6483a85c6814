//! The `provider.prometheus` block of an Argo metric.

use serde::Deserialize;
use sluice_plugin_sdk::{AnalysisContext, PluginError};

/// Argo's default query timeout, in seconds.
const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

/// `metric.provider.prometheus` (Argo `PrometheusMetric`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus server, e.g. `http://prometheus.monitoring:9090`.
    #[serde(default)]
    pub address: String,
    /// The PromQL query, with the AnalysisRun's arguments already substituted by the host.
    #[serde(default)]
    pub query: String,
    /// Request timeout in seconds (default 30).
    pub timeout: Option<u64>,
    /// Skip TLS verification (Argo): done by the host, which reads this field
    /// (`tlsSkipVerifyFromConfig`).
    #[serde(default)]
    pub insecure: bool,
    /// Extra request headers.
    #[serde(default)]
    pub headers: Vec<Header>,
    /// Authentication settings.
    #[serde(default)]
    pub authentication: Authentication,
    /// Makes the query a range query.
    pub range_query: Option<RangeQuery>,
}

/// One request header (Argo `WebMetricHeader`).
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
}

/// `authentication` (Argo `PrometheusAuth`, plus basic auth).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// AWS SigV4 signing: not supported by the built-in plugin.
    pub sigv4: Option<serde_json::Value>,
    /// OAuth2 client credentials: the host resolves them into an `Authorization` header.
    pub oauth2: Option<serde_json::Value>,
}

/// HTTP basic authentication credentials.
#[derive(Debug, Clone, Deserialize)]
pub struct BasicAuth {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

/// `rangeQuery` (Argo `PrometheusRangeQueryArgs`).
#[derive(Debug, Clone, Deserialize)]
pub struct RangeQuery {
    /// Start time expression, e.g. `now() - duration("5m")`.
    pub start: String,
    /// End time expression, e.g. `now()`.
    pub end: String,
    /// Resolution step as a duration, e.g. `1m`.
    pub step: String,
}

impl PrometheusConfig {
    /// Reads the configuration of a call: `plugin-config` when it names a query (the host passes
    /// `provider.prometheus` there), otherwise `provider.prometheus` of `metric-json`.
    pub fn from_context(ctx: &AnalysisContext) -> Result<Self, PluginError> {
        let config: Self = PluginError::parse_config(&ctx.plugin_config)?;
        let config = if config.query.is_empty() && config.address.is_empty() {
            let metric: serde_json::Value = PluginError::parse_config(&ctx.metric_json)?;
            match metric.pointer("/provider/prometheus") {
                Some(block) => serde_json::from_value(block.clone())
                    .map_err(|e| PluginError::InvalidConfig(format!("provider.prometheus: {e}")))?,
                None => config,
            }
        } else {
            config
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), PluginError> {
        let invalid = |message: &str| Err(PluginError::InvalidConfig(message.to_owned()));
        if self.address.is_empty() {
            return invalid("provider.prometheus.address is required");
        }
        if !self.address.starts_with("http://") && !self.address.starts_with("https://") {
            return invalid("provider.prometheus.address must start with http:// or https://");
        }
        if self.query.is_empty() {
            return invalid("provider.prometheus.query is required");
        }
        if self.authentication.sigv4.is_some() {
            return invalid(
                "provider.prometheus.authentication.sigv4 is not supported by the built-in Prometheus provider",
            );
        }
        let has_authorization = self
            .headers
            .iter()
            .any(|h| h.key.eq_ignore_ascii_case("authorization"));
        if self.authentication.oauth2.is_some() && !has_authorization {
            return invalid(
                "provider.prometheus.authentication.oauth2 must be resolved by the host into an Authorization header",
            );
        }
        Ok(())
    }

    /// The request timeout.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.timeout
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
        )
    }
}
