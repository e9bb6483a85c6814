//! Per-plugin resource limits and the store's own `ResourceLimiter`.

use std::time::Duration;

use serde::Deserialize;

/// Bounds applied to every call of one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Guest CPU time per call, enforced with epoch ticks.
    pub cpu: Duration,
    /// Wall-clock time per call, including instantiation and host I/O.
    pub wall: Duration,
    /// Total linear memory per instance, in bytes.
    pub memory_bytes: u64,
    /// Timeout of one outbound HTTP request; guest-requested timeouts are clamped to it.
    pub http_timeout: Duration,
    /// Maximum size of an outbound HTTP response body, in bytes.
    pub http_max_body_bytes: usize,
    /// Maximum size of JSON a kube call returns to the guest, in bytes.
    pub kube_max_response_bytes: usize,
    /// Maximum log records (including stdout/stderr lines) kept per call; the rest are dropped.
    pub log_records_per_call: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu: Duration::from_secs(1),
            wall: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            http_timeout: Duration::from_secs(5),
            http_max_body_bytes: 4 << 20,
            kube_max_response_bytes: 8 << 20,
            log_records_per_call: 200,
        }
    }
}

/// The `limits` block of a plugin entry in the plugin ConfigMap; unset fields keep defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSpec {
    /// Guest CPU per call, e.g. `500ms`.
    pub cpu: Option<String>,
    /// Wall-clock time per call, e.g. `10s`.
    pub timeout: Option<String>,
    /// Linear memory per instance, e.g. `64Mi`.
    pub memory: Option<String>,
    /// Outbound HTTP request timeout, e.g. `5s`.
    pub http_timeout: Option<String>,
    /// Outbound HTTP response body cap, e.g. `4Mi`.
    pub http_max_body: Option<String>,
    /// Log records kept per call.
    pub log_records_per_call: Option<u32>,
}

/// A limit value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {reason}")]
pub struct LimitError {
    /// The field, e.g. `limits.cpu`.
    pub field: &'static str,
    /// The value as written.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl LimitsSpec {
    /// Applies the spec on top of `base`.
    pub fn resolve(&self, base: &Limits) -> Result<Limits, LimitError> {
        let mut limits = base.clone();
        if let Some(v) = &self.cpu {
            limits.cpu = parse_duration("limits.cpu", v)?;
        }
        if let Some(v) = &self.timeout {
            limits.wall = parse_duration("limits.timeout", v)?;
        }
        if let Some(v) = &self.memory {
            limits.memory_bytes = parse_quantity("limits.memory", v)?;
        }
        if let Some(v) = &self.http_timeout {
            limits.http_timeout = parse_duration("limits.httpTimeout", v)?;
        }
        if let Some(v) = &self.http_max_body {
            limits.http_max_body_bytes = usize::try_from(parse_quantity("limits.httpMaxBody", v)?)
                .map_err(|_| LimitError {
                    field: "limits.httpMaxBody",
                    value: v.clone(),
                    reason: "too large",
                })?;
        }
        if let Some(v) = self.log_records_per_call {
            limits.log_records_per_call = v;
        }
        Ok(limits)
    }
}

/// Parses `250ms`, `2s`, `1m` or `1h` (a positive integer and a unit).
pub fn parse_duration(field: &'static str, value: &str) -> Result<Duration, LimitError> {
    let err = |reason| LimitError {
        field,
        value: value.to_owned(),
        reason,
    };
    let trimmed = value.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(err("missing unit (ms, s, m, h)"))?;
    let (digits, unit) = trimmed.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| err("expected a positive integer"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(amount),
        "s" => Duration::from_secs(amount),
        "m" => Duration::from_secs(amount * 60),
        "h" => Duration::from_secs(amount * 3600),
        _ => return Err(err("unknown unit; use ms, s, m or h")),
    };
    if duration.is_zero() {
        return Err(err("must be greater than zero"));
    }
    Ok(duration)
}

/// Parses a byte quantity: `1048576`, `512Ki`, `64Mi`, `1Gi`.
pub fn parse_quantity(field: &'static str, value: &str) -> Result<u64, LimitError> {
    let err = |reason| LimitError {
        field,
        value: value.to_owned(),
        reason,
    };
    let trimmed = value.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| err("expected a positive integer"))?;
    let factor: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err(err("unknown unit; use Ki, Mi or Gi")),
    };
    match amount.checked_mul(factor) {
        Some(0) => Err(err("must be greater than zero")),
        Some(bytes) => Ok(bytes),
        None => Err(err("too large")),
    }
}

/// Tracks linear-memory growth of one store: refuses growth past the limit, remembers that it
/// did (so the call outcome is classified as out-of-memory) and keeps the high-water mark.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit_bytes: usize,
    /// Sum of all linear memories' current sizes.
    total_bytes: usize,
    /// Highest `total_bytes` seen.
    pub(crate) high_water_bytes: usize,
    /// Set when a growth request was refused.
    pub(crate) limit_hit: bool,
}

/// Table elements per store; generous for Rust guests, small enough to bound host memory.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl MemoryLimiter {
    pub(crate) fn new(limit_bytes: u64) -> Self {
        Self {
            limit_bytes: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            total_bytes: 0,
            high_water_bytes: 0,
            limit_hit: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.total_bytes.saturating_add(growth);
        if total > self.limit_bytes {
            self.limit_hit = true;
            return Err(wasmtime::Error::msg(format!(
                "plugin memory limit of {} bytes exceeded (wanted {total} bytes)",
                self.limit_bytes
            )));
        }
        self.total_bytes = total;
        self.high_water_bytes = self.high_water_bytes.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn durations_and_quantities_parse() {
        assert_eq!(
            parse_duration("f", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("f", "2m").unwrap(), Duration::from_secs(120));
        assert!(
            parse_duration("f", "10")
                .unwrap_err()
                .reason
                .contains("unit")
        );
        assert!(parse_duration("f", "0s").is_err());
        assert_eq!(parse_quantity("f", "64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_quantity("f", "4096").unwrap(), 4096);
        assert!(parse_quantity("f", "1MB").is_err());
    }

    #[test]
    fn spec_overrides_only_given_fields() {
        let spec = LimitsSpec {
            memory: Some("16Mi".into()),
            ..Default::default()
        };
        let limits = spec.resolve(&Limits::default()).unwrap();
        assert_eq!(limits.memory_bytes, 16 << 20);
        assert_eq!(limits.cpu, Limits::default().cpu);
    }

    #[test]
    fn limiter_sums_memories_and_flags_the_limit() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 40, None).unwrap());
        assert_eq!(limiter.high_water_bytes, 100);
        assert!(limiter.memory_growing(40, 41, None).is_err());
        assert!(limiter.limit_hit);
    }
}
