//! Fetching plugin bytes from `builtin:`, `file://` and `https://` locations, with digests.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::config::PluginLocation;
use crate::error::LoadError;

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Options of the fetcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Accept `http://` locations (still sha256-checked); for air-gapped mirrors and tests.
    pub allow_plain_http: bool,
    /// Timeout of one download.
    pub download_timeout: Duration,
    /// Largest plugin accepted, in bytes.
    pub max_plugin_bytes: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            allow_plain_http: false,
            download_timeout: Duration::from_secs(30),
            max_plugin_bytes: 64 << 20,
        }
    }
}

/// Gets plugin bytes and checks their digest.
pub(crate) struct Fetcher {
    builtins: BTreeMap<String, Bytes>,
    client: reqwest::Client,
    options: FetchOptions,
}

impl Fetcher {
    pub(crate) fn new(builtins: BTreeMap<String, Bytes>, options: FetchOptions) -> Self {
        let client = reqwest::Client::builder()
            .timeout(options.download_timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            builtins,
            client,
            options,
        }
    }

    /// Returns the bytes and their digest; fails if `sha256` is given and does not match.
    pub(crate) async fn fetch(
        &self,
        location: &PluginLocation,
        sha256: Option<&str>,
    ) -> Result<(Bytes, String), LoadError> {
        let bytes = match location {
            PluginLocation::Builtin(name) => self.builtin(name)?,
            PluginLocation::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| LoadError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                bytes.into()
            }
            PluginLocation::Https(url) => self.download(url).await?,
            PluginLocation::Http(url) if self.options.allow_plain_http => {
                self.download(url).await?
            }
            PluginLocation::Http(url) => {
                return Err(LoadError::UnsupportedLocation {
                    location: url.clone(),
                });
            }
        };
        let actual = sha256_hex(&bytes);
        match sha256 {
            Some(expected) if expected != actual => Err(LoadError::DigestMismatch {
                location: location.to_string(),
                expected: expected.to_owned(),
                actual,
            }),
            _ => Ok((bytes, actual)),
        }
    }

    /// The embedded component registered as `builtin:NAME` (shared, not copied).
    pub(crate) fn builtin(&self, name: &str) -> Result<Bytes, LoadError> {
        self.builtins
            .get(name)
            .cloned()
            .ok_or_else(|| LoadError::UnknownBuiltin {
                name: name.to_owned(),
                available: self.builtins.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    async fn download(&self, url: &str) -> Result<Bytes, LoadError> {
        let fail = |reason: String| LoadError::Download {
            url: url.to_owned(),
            reason,
        };
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP status {}", response.status())));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(e.to_string()))? {
            if bytes.len() + chunk.len() > self.options.max_plugin_bytes {
                return Err(fail(format!(
                    "larger than {} bytes",
                    self.options.max_plugin_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes.into())
    }
}
