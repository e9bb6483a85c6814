//! Per-plugin Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::host::Capability;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    plugin: String,
    method: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    plugin: String,
    capability: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

type HistogramFamily = Family<CallLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 10 µs … ~2.6 s
    Histogram::new(exponential_buckets(0.000_01, 4.0, 10))
}

/// Metrics of all plugins of a registry; cheap to clone (shared handles).
#[derive(Clone, Debug)]
pub struct PluginMetrics {
    calls: Family<CallLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: HistogramFamily,
    denials: Family<DenialLabels, Counter>,
    memory_high_water: Family<PluginLabels, Gauge>,
    load_failures: Family<PluginLabels, Counter>,
    compilations: Family<PluginLabels, Counter>,
}

impl PluginMetrics {
    /// Creates the metrics and registers them (prefix `sluice_plugin_`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        let sub = registry.sub_registry_with_prefix("sluice_plugin");
        sub.register("calls", "Plugin calls", metrics.calls.clone());
        sub.register(
            "errors",
            "Failed plugin calls by error kind",
            metrics.errors.clone(),
        );
        sub.register(
            "call_duration_seconds",
            "Plugin call duration, including instantiation",
            metrics.duration.clone(),
        );
        sub.register(
            "capability_denials",
            "Host capability requests denied by grants",
            metrics.denials.clone(),
        );
        sub.register(
            "memory_high_water_bytes",
            "Largest linear memory of one plugin instance",
            metrics.memory_high_water.clone(),
        );
        sub.register(
            "load_failures",
            "Failed plugin loads",
            metrics.load_failures.clone(),
        );
        sub.register(
            "compilations",
            "Components compiled for a plugin (a component already compiled for the same bytes is reused)",
            metrics.compilations.clone(),
        );
        metrics
    }

    /// Metrics that are not exported anywhere (tests, tools).
    pub fn unregistered() -> Self {
        Self {
            calls: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            denials: Family::default(),
            memory_high_water: Family::default(),
            load_failures: Family::default(),
            compilations: Family::default(),
        }
    }

    pub(crate) fn call(
        &self,
        plugin: &str,
        method: &str,
        seconds: f64,
        error_kind: Option<&str>,
        memory_bytes: usize,
    ) {
        let labels = CallLabels {
            plugin: plugin.to_owned(),
            method: method.to_owned(),
        };
        self.calls.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(seconds);
        if let Some(kind) = error_kind {
            self.errors
                .get_or_create(&ErrorLabels {
                    plugin: labels.plugin,
                    method: labels.method,
                    kind: kind.to_owned(),
                })
                .inc();
        }
        let gauge = self.memory_high_water.get_or_create(&PluginLabels {
            plugin: plugin.to_owned(),
        });
        let bytes = i64::try_from(memory_bytes).unwrap_or(i64::MAX);
        if gauge.get() < bytes {
            gauge.set(bytes);
        }
    }

    pub(crate) fn denial(&self, plugin: &str, capability: Capability) {
        self.denials
            .get_or_create(&DenialLabels {
                plugin: plugin.to_owned(),
                capability: capability.as_str().to_owned(),
            })
            .inc();
    }

    pub(crate) fn load_failure(&self, plugin: &str) {
        self.load_failures
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .inc();
    }

    pub(crate) fn compilation(&self, plugin: &str) {
        self.compilations
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .inc();
    }

    /// Components compiled for `plugin` so far.
    pub fn compilations(&self, plugin: &str) -> u64 {
        self.compilations
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .get()
    }

    /// Calls made to `plugin`'s `method` so far.
    pub fn calls(&self, plugin: &str, method: &str) -> u64 {
        self.calls
            .get_or_create(&CallLabels {
                plugin: plugin.to_owned(),
                method: method.to_owned(),
            })
            .get()
    }

    /// Failed calls of `plugin`'s `method` with the given [`crate::CallError::kind`].
    pub fn errors(&self, plugin: &str, method: &str, kind: &str) -> u64 {
        self.errors
            .get_or_create(&ErrorLabels {
                plugin: plugin.to_owned(),
                method: method.to_owned(),
                kind: kind.to_owned(),
            })
            .get()
    }

    /// Denied capability requests of `plugin`.
    pub fn denials(&self, plugin: &str, capability: Capability) -> u64 {
        self.denials
            .get_or_create(&DenialLabels {
                plugin: plugin.to_owned(),
                capability: capability.as_str().to_owned(),
            })
            .get()
    }

    /// Largest instance memory of `plugin` seen so far, in bytes.
    pub fn memory_high_water(&self, plugin: &str) -> i64 {
        self.memory_high_water
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .get()
    }
}
