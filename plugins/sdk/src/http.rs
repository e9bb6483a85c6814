//! Blocking outbound HTTP for metric providers and step plugins, over `wasi:http/outgoing-handler`.
//!
//! Only origins in the plugin's `grants.http` are reachable; others fail with
//! [`HttpError::Denied`]. Timeouts and the response size are capped by the host.

/// A response, fully read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (name, value).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| HttpError::Body(format!("invalid JSON: {e}")))
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL could not be parsed.
    InvalidUrl(String),
    /// The origin is not in the plugin's grants.
    Denied(String),
    /// Transport failure (connect, timeout, size cap…), as reported by the host.
    Transport(String),
    /// Reading or decoding the body failed.
    Body(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            Self::Denied(m) => write!(f, "HTTP access denied: {m}"),
            Self::Transport(m) => write!(f, "HTTP request failed: {m}"),
            Self::Body(m) => write!(f, "HTTP body: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for crate::PluginError {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::Denied(m) => Self::AccessDenied(m),
            HttpError::InvalidUrl(m) => Self::InvalidConfig(m),
            HttpError::Transport(m) | HttpError::Body(m) => Self::Transient(m),
        }
    }
}

/// Parts of an absolute `http(s)://authority/path?query` URL.
#[derive(Debug, PartialEq, Eq)]
struct UrlParts<'a> {
    https: bool,
    authority: &'a str,
    path_with_query: String,
}

fn split_url(url: &str) -> Result<UrlParts<'_>, HttpError> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(HttpError::InvalidUrl(format!(
            "{url}: must start with http:// or https://"
        )));
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(HttpError::InvalidUrl(format!("{url}: missing host")));
    }
    let path_with_query = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    Ok(UrlParts {
        https,
        authority,
        path_with_query,
    })
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    send("GET", url, &[], &[])
}

/// Sends a request and reads the whole response.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    send_request(method, url, headers, body, None)
}

/// Sends a request like [`send`], asking the host to give up after `timeout` (connect and first
/// byte); the host clamps it to the plugin's `limits.httpTimeout`.
pub fn send_with_timeout(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: std::time::Duration,
) -> Result<Response, HttpError> {
    send_request(method, url, headers, body, Some(timeout))
}

fn send_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Option<std::time::Duration>,
) -> Result<Response, HttpError> {
    let parts = split_url(url)?;
    #[cfg(target_arch = "wasm32")]
    {
        wasm::send(method, &parts, headers, body, timeout)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (method, parts, headers, body, timeout);
        Err(HttpError::Transport(
            "the Sluice host is only available to wasm32 plugins".into(),
        ))
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::{HttpError, Response, UrlParts};
    use crate::wit::http_wasi::http::outgoing_handler;
    use crate::wit::http_wasi::http::types::{
        ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions,
        Scheme,
    };
    use crate::wit::http_wasi::io::streams::StreamError;

    fn transport(code: ErrorCode) -> HttpError {
        match code {
            ErrorCode::HttpRequestDenied => HttpError::Denied("origin not in grants.http".into()),
            other => HttpError::Transport(format!("{other:?}")),
        }
    }

    pub(super) fn send(
        method: &str,
        url: &UrlParts<'_>,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Option<std::time::Duration>,
    ) -> Result<Response, HttpError> {
        let fields = Fields::new();
        for (name, value) in headers {
            fields
                .append(name, value.as_bytes())
                .map_err(|e| HttpError::InvalidUrl(format!("header {name}: {e:?}")))?;
        }
        let request = OutgoingRequest::new(fields);
        let method = match method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_owned()),
        };
        let invalid = |what: &str| HttpError::InvalidUrl(format!("invalid {what}"));
        request
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(if url.https {
                &Scheme::Https
            } else {
                &Scheme::Http
            }))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(url.authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(&url.path_with_query))
            .map_err(|()| invalid("path"))?;
        let outgoing_body = request
            .body()
            .map_err(|()| HttpError::Body("request body unavailable".into()))?;
        let options = match timeout {
            Some(timeout) => {
                let options = RequestOptions::new();
                let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
                options
                    .set_connect_timeout(Some(nanos))
                    .map_err(|()| invalid("timeout"))?;
                options
                    .set_first_byte_timeout(Some(nanos))
                    .map_err(|()| invalid("timeout"))?;
                Some(options)
            }
            None => None,
        };
        let future = outgoing_handler::handle(request, options).map_err(transport)?;
        {
            let stream = outgoing_body
                .write()
                .map_err(|()| HttpError::Body("request stream unavailable".into()))?;
            for chunk in body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| HttpError::Body(format!("{e:?}")))?;
            }
        }
        OutgoingBody::finish(outgoing_body, None).map_err(transport)?;
        let response = loop {
            if let Some(result) = future.get() {
                break result
                    .map_err(|()| HttpError::Transport("response already taken".into()))?
                    .map_err(transport)?;
            }
            future.subscribe().block();
        };
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response
            .consume()
            .map_err(|()| HttpError::Body("response body unavailable".into()))?;
        let mut bytes = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| HttpError::Body("response stream unavailable".into()))?;
            loop {
                match stream.blocking_read(64 << 10) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(HttpError::Body(e.to_debug_string()));
                    }
                }
            }
        }
        drop(IncomingBody::finish(incoming));
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let parts = split_url("http://prometheus.monitoring:9090/api/v1/query?query=up").unwrap();
        assert_eq!(
            parts,
            UrlParts {
                https: false,
                authority: "prometheus.monitoring:9090",
                path_with_query: "/api/v1/query?query=up".into()
            }
        );
        assert_eq!(
            split_url("https://example.com").unwrap().path_with_query,
            "/"
        );
        assert_eq!(
            split_url("https://example.com?x=1")
                .unwrap()
                .path_with_query,
            "/?x=1"
        );
        assert!(matches!(
            split_url("ftp://x"),
            Err(HttpError::InvalidUrl(_))
        ));
    }
}
