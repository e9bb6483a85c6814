//! `sluice:host/log`: guest log records into `tracing` (target `plugin_log`), bounded per call.

use serde::Serialize;

use super::{CallScope, HostState};
use crate::bindings::wit_log;

/// Longest message kept; longer ones are truncated.
const MAX_MESSAGE_BYTES: usize = 4096;
/// Most fields kept per record.
const MAX_FIELDS: usize = 16;

/// Severity of a plugin log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very verbose.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Recovered problems.
    Warn,
    /// Failures.
    Error,
}

/// One log record of a plugin (from `log.emit` or a captured stdout/stderr line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRecord {
    /// The plugin.
    pub plugin: String,
    /// The method being called.
    pub method: &'static str,
    /// Severity.
    pub level: LogLevel,
    /// The message (truncated to 4 KiB).
    pub message: String,
    /// Structured fields.
    pub fields: Vec<(String, String)>,
}

/// Per-call record budget.
pub(crate) struct LogBudget {
    remaining: u32,
    dropped: u32,
}

impl LogBudget {
    pub(crate) fn new(records: u32) -> Self {
        Self {
            remaining: records,
            dropped: 0,
        }
    }

    fn take(&mut self) -> bool {
        if self.remaining == 0 {
            self.dropped += 1;
            false
        } else {
            self.remaining -= 1;
            true
        }
    }

    pub(crate) fn report_dropped(&mut self, scope: &CallScope) {
        if self.dropped > 0 {
            let dropped = std::mem::take(&mut self.dropped);
            scope.span.in_scope(|| {
                tracing::warn!(target: "plugin_log", dropped, "plugin log records over the per-call limit were dropped");
            });
        }
    }
}

impl From<wit_log::Level> for LogLevel {
    fn from(level: wit_log::Level) -> Self {
        match level {
            wit_log::Level::Trace => Self::Trace,
            wit_log::Level::Debug => Self::Debug,
            wit_log::Level::Info => Self::Info,
            wit_log::Level::Warn => Self::Warn,
            wit_log::Level::Error => Self::Error,
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

impl HostState {
    pub(crate) fn emit_log(
        &mut self,
        level: LogLevel,
        message: String,
        mut fields: Vec<(String, String)>,
    ) {
        if !self.logs.take() {
            return;
        }
        let message = truncate(message, MAX_MESSAGE_BYTES);
        fields.truncate(MAX_FIELDS);
        let rendered: String = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.scope.span.in_scope(|| match level {
            LogLevel::Trace => {
                tracing::trace!(target: "plugin_log", fields = %rendered, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "plugin_log", fields = %rendered, "{message}")
            }
            LogLevel::Info => tracing::info!(target: "plugin_log", fields = %rendered, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "plugin_log", fields = %rendered, "{message}"),
            LogLevel::Error => {
                tracing::error!(target: "plugin_log", fields = %rendered, "{message}")
            }
        });
        if let Some(observer) = &self.scope.plugin.services.observer {
            observer.log(LogRecord {
                plugin: self.scope.plugin.name.clone(),
                method: self.scope.method,
                level,
                message,
                fields,
            });
        }
    }
}

impl wit_log::Host for HostState {
    async fn emit(
        &mut self,
        level: wit_log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        self.emit_log(level.into(), message, fields);
        Ok(())
    }

    async fn enabled(&mut self, level: wit_log::Level) -> wasmtime::Result<bool> {
        let enabled = self.scope.plugin.services.observer.is_some()
            || match LogLevel::from(level) {
                LogLevel::Trace => tracing::enabled!(target: "plugin_log", tracing::Level::TRACE),
                LogLevel::Debug => tracing::enabled!(target: "plugin_log", tracing::Level::DEBUG),
                LogLevel::Info => tracing::enabled!(target: "plugin_log", tracing::Level::INFO),
                LogLevel::Warn => tracing::enabled!(target: "plugin_log", tracing::Level::WARN),
                LogLevel::Error => tracing::enabled!(target: "plugin_log", tracing::Level::ERROR),
            };
        Ok(enabled)
    }
}
