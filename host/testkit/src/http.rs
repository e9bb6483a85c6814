//! Scripted HTTP responses implementing the runtime's `HttpBackend`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_runtime::{
    BoxFuture, HttpBackend, HttpCallLimits, HttpFailure, HttpRequest, HttpResponse,
};

type Responder = Arc<dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync>;

/// One scripted route.
#[derive(Clone)]
pub struct HttpScript {
    /// Method to match (`None`: any).
    pub method: Option<String>,
    /// Exact URL to match.
    pub url: String,
    responder: Responder,
    /// Delay before answering (to test timeouts).
    pub delay: Option<Duration>,
}

impl std::fmt::Debug for HttpScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpScript")
            .field("method", &self.method)
            .field("url", &self.url)
            .finish()
    }
}

/// Answers allowed plugin requests from scripts; unmatched requests fail as a connection error.
#[derive(Default)]
pub struct ScriptedHttp {
    scripts: Mutex<Vec<HttpScript>>,
}

impl ScriptedHttp {
    /// No scripts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `method url` with `status` and `body`.
    pub fn respond(&self, method: &str, url: &str, status: u16, body: &str) {
        let response = HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        self.respond_with(Some(method), url, move |_| response.clone());
    }

    /// Answers requests to `url` (and `method`, if given) with a closure.
    pub fn respond_with(
        &self,
        method: Option<&str>,
        url: &str,
        responder: impl Fn(&HttpRequest) -> HttpResponse + Send + Sync + 'static,
    ) {
        self.add(HttpScript {
            method: method.map(str::to_ascii_uppercase),
            url: url.to_owned(),
            responder: Arc::new(responder),
            delay: None,
        });
    }

    /// Answers `url` with `status` and `body` after `delay`.
    pub fn respond_after(&self, url: &str, delay: Duration, status: u16, body: &str) {
        let response = HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        self.add(HttpScript {
            method: None,
            url: url.to_owned(),
            responder: Arc::new(move |_| response.clone()),
            delay: Some(delay),
        });
    }

    fn add(&self, script: HttpScript) {
        self.scripts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(script);
    }

    fn find(&self, request: &HttpRequest) -> Option<HttpScript> {
        self.scripts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|s| {
                s.url == request.url && s.method.as_deref().is_none_or(|m| m == request.method)
            })
            .cloned()
    }
}

impl HttpBackend for ScriptedHttp {
    fn send(
        &self,
        request: HttpRequest,
        limits: HttpCallLimits,
    ) -> BoxFuture<'static, Result<HttpResponse, HttpFailure>> {
        let script = self.find(&request);
        Box::pin(async move {
            let script = script.ok_or_else(|| {
                HttpFailure::Connect(format!(
                    "no scripted response for {} {}",
                    request.method, request.url
                ))
            })?;
            if let Some(delay) = script.delay {
                tokio::time::sleep(delay).await;
            }
            let response = (script.responder)(&request);
            if response.body.len() > limits.max_body_bytes {
                return Err(HttpFailure::BodyTooLarge(limits.max_body_bytes));
            }
            Ok(response)
        })
    }
}
