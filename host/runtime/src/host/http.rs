//! Outbound HTTP for metric providers: `wasi:http` filtered by an exact origin allow-list,
//! with clamped timeouts and a response size cap, sent through a pluggable [`HttpBackend`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::json;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::kube::BoxFuture;
use super::{CallScope, Capability};
use crate::grants::HttpOrigin;

/// An outbound request, fully buffered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes (UTF-8 text in exchange records when possible).
    #[serde(serialize_with = "serialize_body")]
    pub body: Vec<u8>,
    /// Skip TLS certificate verification (the metric asked for `insecure`, and the plugin's
    /// grants take that from its configuration).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_tls_verify: bool,
}

/// A response, fully buffered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    #[serde(serialize_with = "serialize_body")]
    pub body: Vec<u8>,
}

fn serialize_body<S: serde::Serializer>(body: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(body))
}

/// A secret the host substitutes into a call's outgoing HTTP requests (URL, header values and
/// body) in place of `placeholder`, so the plugin never holds the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretSubstitution {
    /// The text the plugin sees instead of the secret.
    pub placeholder: String,
    /// The secret value.
    pub value: String,
}

impl std::fmt::Debug for SecretSubstitution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSubstitution")
            .field("placeholder", &self.placeholder)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// The HTTP access of one call beyond its plugin's grants.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallAccess {
    /// Origins this call may reach (from the grants' `httpFromConfig`).
    pub(crate) origins: Vec<HttpOrigin>,
    /// Whether this call's requests skip TLS certificate verification.
    pub(crate) skip_tls_verify: bool,
    /// Secrets substituted into this call's requests.
    pub(crate) secrets: Arc<[SecretSubstitution]>,
}

impl CallAccess {
    /// `text` with every secret placeholder replaced by its value.
    fn reveal(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |text, secret| {
            text.replace(&secret.placeholder, &secret.value)
        })
    }

    /// `text` with every secret value replaced by its placeholder: what flows back into the
    /// plugin (or into call records) never carries a secret.
    pub(crate) fn conceal(&self, text: String) -> String {
        self.secrets.iter().fold(text, |text, secret| {
            if secret.value.is_empty() {
                text
            } else {
                text.replace(&secret.value, &secret.placeholder)
            }
        })
    }

    /// [`CallAccess::conceal`] for a JSON value.
    pub(crate) fn conceal_json(&self, value: serde_json::Value) -> serde_json::Value {
        if self.secrets.is_empty() {
            return value;
        }
        serde_json::from_str(&self.conceal(value.to_string())).unwrap_or(value)
    }

    /// A JSON value with every secret placeholder replaced by its value (for objects the plugin
    /// sends to the Kubernetes API, such as a Job whose environment holds a secret argument).
    pub(crate) fn reveal_json(&self, value: serde_json::Value) -> serde_json::Value {
        if self.secrets.is_empty() {
            return value;
        }
        let text = value.to_string();
        let revealed = self.secrets.iter().fold(text, |text, secret| {
            let escaped = serde_json::Value::from(secret.value.as_str()).to_string();
            text.replace(&secret.placeholder, &escaped[1..escaped.len() - 1])
        });
        serde_json::from_str(&revealed).unwrap_or(value)
    }

    /// A request as the backend sends it: placeholders replaced in the URL, header values and
    /// (UTF-8) body.
    fn revealed(&self, request: &HttpRequest) -> HttpRequest {
        if self.secrets.is_empty() {
            return request.clone();
        }
        let body = match std::str::from_utf8(&request.body) {
            Ok(text) => self.reveal(text).into_bytes(),
            Err(_) => request.body.clone(),
        };
        HttpRequest {
            method: request.method.clone(),
            url: self.reveal(&request.url),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), self.reveal(value)))
                .collect(),
            body,
            skip_tls_verify: request.skip_tls_verify,
        }
    }
}

/// Bounds the backend must honour for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCallLimits {
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Maximum response body size.
    pub max_body_bytes: usize,
}

/// Why an outbound request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "kebab-case")]
pub enum HttpFailure {
    /// The request took longer than its timeout.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The server's certificate was not accepted.
    #[error("TLS certificate rejected: {0}")]
    TlsCertificate(String),
    /// The response body exceeded the limit.
    #[error("response body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Sends allowed outbound requests (real network in the controller, scripted in the testkit).
pub trait HttpBackend: Send + Sync {
    /// Sends one request within `limits`.
    fn send(
        &self,
        request: HttpRequest,
        limits: HttpCallLimits,
    ) -> BoxFuture<'static, Result<HttpResponse, HttpFailure>>;
}

/// [`HttpBackend`] over `reqwest`, without redirects (a redirect could leave the allow-list).
#[derive(Debug, Clone)]
pub struct ReqwestHttpBackend {
    client: reqwest::Client,
    /// The same, without certificate verification (for requests with `skip_tls_verify`).
    insecure_client: reqwest::Client,
}

impl ReqwestHttpBackend {
    /// Builds a client that never follows redirects and uses no proxy from the environment.
    pub fn new() -> Result<Self, HttpFailure> {
        let client = |skip_tls_verify: bool| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .danger_accept_invalid_certs(skip_tls_verify)
                .build()
                .map_err(|e| HttpFailure::Other(e.to_string()))
        };
        Ok(Self {
            client: client(false)?,
            insecure_client: client(true)?,
        })
    }
}

impl HttpBackend for ReqwestHttpBackend {
    fn send(
        &self,
        request: HttpRequest,
        limits: HttpCallLimits,
    ) -> BoxFuture<'static, Result<HttpResponse, HttpFailure>> {
        let client = if request.skip_tls_verify {
            self.insecure_client.clone()
        } else {
            self.client.clone()
        };
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(request.method.as_bytes())
                .map_err(|e| HttpFailure::Other(e.to_string()))?;
            let mut builder = client
                .request(method, &request.url)
                .timeout(limits.timeout)
                .body(request.body);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            let mut response = builder.send().await.map_err(|e| {
                if e.is_timeout() {
                    HttpFailure::Timeout
                } else {
                    let message = with_causes(&e);
                    if message.contains("certificate") {
                        HttpFailure::TlsCertificate(message)
                    } else {
                        HttpFailure::Connect(message)
                    }
                }
            })?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| {
                if e.is_timeout() {
                    HttpFailure::Timeout
                } else {
                    HttpFailure::Other(e.to_string())
                }
            })? {
                if body.len() + chunk.len() > limits.max_body_bytes {
                    return Err(HttpFailure::BodyTooLarge(limits.max_body_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        })
    }
}

/// An error with its chain of causes, e.g. `error sending request: …: invalid peer certificate`.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `wasi:http` hooks of one call: allow-list check, clamping, delegation to the backend.
pub(crate) struct HttpHooks {
    scope: Arc<CallScope>,
    denials: Vec<String>,
}

impl HttpHooks {
    pub(crate) fn new(scope: Arc<CallScope>) -> Self {
        Self {
            scope,
            denials: Vec::new(),
        }
    }

    pub(crate) fn denials(&self) -> &[String] {
        &self.denials
    }
}

fn clamp(requested: Option<Duration>, max: Duration) -> Duration {
    requested.map_or(max, |d| d.min(max))
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn std::future::Future<Output = SendResult> + Send> {
        let url = request.uri().to_string();
        let method = request.method().to_string();
        let origin = HttpOrigin::of_uri(request.uri());
        let revealed_origin = self
            .scope
            .access
            .reveal(&url)
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| HttpOrigin::of_uri(&uri));
        let allowed = origin.is_some()
            && revealed_origin.as_ref().is_some_and(|o| {
                self.scope.plugin.grants.allows_http(o) || self.scope.access.origins.contains(o)
            });
        if !allowed {
            let message = format!(
                "plugin {} has no grant for HTTP origin {}",
                self.scope.plugin.name,
                origin.map_or_else(|| url.clone(), |o| o.to_string())
            );
            let scope = self.scope.clone();
            scope.deny(
                &mut self.denials,
                Capability::Http,
                json!({"method": method, "url": url}),
                message,
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let limits = &self.scope.plugin.limits;
        let requested = options.and_then(|o| o.first_byte_timeout.or(o.connect_timeout));
        let call_limits = HttpCallLimits {
            timeout: clamp(requested, limits.http_timeout),
            max_body_bytes: limits.http_max_body_bytes,
        };
        let scope = self.scope.clone();
        Box::new(async move {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))?
                .to_bytes();
            let outgoing = HttpRequest {
                method,
                url,
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.to_vec(),
                skip_tls_verify: scope.access.skip_tls_verify,
            };
            let request_json = serde_json::to_value(&outgoing).unwrap_or_default();
            let outgoing = scope.access.revealed(&outgoing);
            let backend = scope.plugin.services.http.clone();
            let result = match tokio::time::timeout(
                call_limits.timeout,
                backend.send(outgoing, call_limits),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(HttpFailure::Timeout),
            };
            let response_json = match &result {
                Ok(response) => json!({"ok": response}),
                Err(failure) => json!({"error": failure}),
            };
            scope.observe(Capability::Http, request_json, response_json);
            let response = result.map(|response| HttpResponse {
                body: match String::from_utf8(response.body) {
                    Ok(text) => scope.access.conceal(text).into_bytes(),
                    Err(binary) => binary.into_bytes(),
                },
                ..response
            });
            let response = response.map_err(|failure| match failure {
                HttpFailure::Timeout => wasmtime_wasi_http::Error::ConnectionReadTimeout,
                HttpFailure::Connect(_) => wasmtime_wasi_http::Error::ConnectionRefused,
                HttpFailure::TlsCertificate(_) => wasmtime_wasi_http::Error::TlsCertificateError,
                HttpFailure::BodyTooLarge(limit) => {
                    wasmtime_wasi_http::Error::HttpResponseBodySize(u64::try_from(limit).ok())
                }
                HttpFailure::Other(message) => {
                    wasmtime_wasi_http::Error::InternalError(Some(message))
                }
            })?;
            let mut builder = http::Response::builder().status(response.status);
            for (name, value) in &response.headers {
                builder = builder.header(name, value);
            }
            let body = Full::new(Bytes::from(response.body))
                .map_err(|never| match never {})
                .boxed_unsync();
            let response = builder
                .body(body)
                .map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))?;
            let done: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}
