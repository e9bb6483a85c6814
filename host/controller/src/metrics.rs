//! Prometheus metrics of the controller, named as Argo Rollouts names them so that existing
//! dashboards keep working (`rollout_info`, `rollout_phase`, `analysis_run_info`, …).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `{namespace, name}` of a Rollout or AnalysisRun.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Labels of `rollout_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutInfoLabels {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `canary` or `blueGreen`.
    pub strategy: String,
    /// The configured traffic routers, comma-separated (empty without traffic routing).
    pub traffic_router: String,
    /// The Rollout's phase.
    pub phase: String,
}

/// Labels of `rollout_phase` (one series per phase, 1 for the current one).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutPhaseLabels {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `canary` or `blueGreen`.
    pub strategy: String,
    /// The phase this series stands for.
    pub phase: String,
}

/// Labels of `analysis_run_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnalysisRunInfoLabels {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The run's phase.
    pub phase: String,
}

/// Labels of `analysis_run_metric_phase`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MetricPhaseLabels {
    /// Namespace.
    pub namespace: String,
    /// AnalysisRun name.
    pub name: String,
    /// Metric name.
    pub metric: String,
    /// Provider type (`prometheus`, `web`, `job`, `plugin`).
    pub r#type: String,
    /// Whether the metric is a dry run.
    pub dry_run: String,
    /// The metric's phase.
    pub phase: String,
}

/// Labels of `controller_clientset_k8s_request_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Kind of the object.
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Verb (`Create`, `Patch`, `Delete`).
    pub verb: String,
    /// HTTP status code, or `error` when no response came back.
    pub status_code: String,
}

/// Labels of `rollout_events_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `Normal` or `Warning`.
    pub r#type: String,
    /// The event's reason, e.g. `RolloutAborted`.
    pub reason: String,
}

/// Labels of the reconcile error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// [`crate::Error::metric_label`].
    pub error: String,
}

/// Every metric the reconcilers update.
#[derive(Debug)]
pub struct Metrics {
    rollout_info: Family<RolloutInfoLabels, Gauge>,
    rollout_phase: Family<RolloutPhaseLabels, Gauge>,
    rollout_reconcile: Family<ObjectLabels, Histogram, fn() -> Histogram>,
    rollout_reconcile_error: Family<ErrorLabels, Counter>,
    analysis_run_info: Family<AnalysisRunInfoLabels, Gauge>,
    analysis_run_metric_phase: Family<MetricPhaseLabels, Gauge>,
    analysis_run_reconcile: Family<ObjectLabels, Histogram, fn() -> Histogram>,
    analysis_run_reconcile_error: Family<ErrorLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    rollout_events: Family<EventLabels, Counter>,
    /// Label sets last exported per object, so that a phase change removes the old series.
    rollout_series: Mutex<HashMap<ObjectLabels, RolloutInfoLabels>>,
    run_series: Mutex<HashMap<ObjectLabels, (AnalysisRunInfoLabels, Vec<MetricPhaseLabels>)>>,
    /// Write requests per namespace, for tests and diagnostics.
    requests_per_namespace: Mutex<HashMap<String, u64>>,
}

/// Argo's reconcile histogram buckets, in seconds.
const RECONCILE_BUCKETS: [f64; 5] = [0.01, 0.15, 0.25, 0.5, 1.0];

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

/// Every Rollout phase, for `rollout_phase`.
const ROLLOUT_PHASES: [&str; 4] = ["Progressing", "Paused", "Healthy", "Degraded"];

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            rollout_info: Family::default(),
            rollout_phase: Family::default(),
            rollout_reconcile: Family::new_with_constructor(reconcile_histogram),
            rollout_reconcile_error: Family::default(),
            analysis_run_info: Family::default(),
            analysis_run_metric_phase: Family::default(),
            analysis_run_reconcile: Family::new_with_constructor(reconcile_histogram),
            analysis_run_reconcile_error: Family::default(),
            requests: Family::default(),
            rollout_events: Family::default(),
            rollout_series: Mutex::default(),
            run_series: Mutex::default(),
            requests_per_namespace: Mutex::default(),
        };
        registry.register(
            "rollout_info",
            "Information about a Rollout",
            metrics.rollout_info.clone(),
        );
        registry.register(
            "rollout_phase",
            "Information on the state of the Rollout (1 for the current phase)",
            metrics.rollout_phase.clone(),
        );
        registry.register(
            "rollout_reconcile",
            "Rollout reconciliation performance, in seconds",
            metrics.rollout_reconcile.clone(),
        );
        registry.register(
            "rollout_reconcile_error",
            "Errors during Rollout reconciliation",
            metrics.rollout_reconcile_error.clone(),
        );
        registry.register(
            "analysis_run_info",
            "Information about an AnalysisRun",
            metrics.analysis_run_info.clone(),
        );
        registry.register(
            "analysis_run_metric_phase",
            "Information on the duration of a specific metric in the AnalysisRun",
            metrics.analysis_run_metric_phase.clone(),
        );
        registry.register(
            "analysis_run_reconcile",
            "AnalysisRun reconciliation performance, in seconds",
            metrics.analysis_run_reconcile.clone(),
        );
        registry.register(
            "analysis_run_reconcile_error",
            "Errors during AnalysisRun reconciliation",
            metrics.analysis_run_reconcile_error.clone(),
        );
        registry.register(
            "controller_clientset_k8s_request",
            "Kubernetes write requests made by the reconcilers",
            metrics.requests.clone(),
        );
        registry.register(
            "rollout_events",
            "Kubernetes Events published about Rollouts",
            metrics.rollout_events.clone(),
        );
        metrics
    }

    /// Records one Rollout reconcile and its duration.
    pub fn observe_rollout_reconcile(&self, object: &ObjectLabels, duration: Duration) {
        self.rollout_reconcile
            .get_or_create(object)
            .observe(duration.as_secs_f64());
    }

    /// Records a failed Rollout reconcile.
    pub fn rollout_reconcile_failed(&self, object: &ObjectLabels, error: &crate::Error) {
        self.rollout_reconcile_error
            .get_or_create(&ErrorLabels {
                namespace: object.namespace.clone(),
                name: object.name.clone(),
                error: error.metric_label(),
            })
            .inc();
    }

    /// Records one AnalysisRun reconcile and its duration.
    pub fn observe_run_reconcile(&self, object: &ObjectLabels, duration: Duration) {
        self.analysis_run_reconcile
            .get_or_create(object)
            .observe(duration.as_secs_f64());
    }

    /// Records a failed AnalysisRun reconcile.
    pub fn run_reconcile_failed(&self, object: &ObjectLabels, error: &crate::Error) {
        self.analysis_run_reconcile_error
            .get_or_create(&ErrorLabels {
                namespace: object.namespace.clone(),
                name: object.name.clone(),
                error: error.metric_label(),
            })
            .inc();
    }

    /// Exports a Rollout's `rollout_info` and `rollout_phase`, replacing its previous series.
    pub fn set_rollout_state(&self, info: RolloutInfoLabels) {
        let object = ObjectLabels {
            namespace: info.namespace.clone(),
            name: info.name.clone(),
        };
        let mut series = lock(&self.rollout_series);
        if let Some(previous) = series.insert(object, info.clone())
            && previous != info
        {
            self.rollout_info.remove(&previous);
        }
        self.rollout_info.get_or_create(&info).set(1);
        for phase in ROLLOUT_PHASES {
            self.rollout_phase
                .get_or_create(&RolloutPhaseLabels {
                    namespace: info.namespace.clone(),
                    name: info.name.clone(),
                    strategy: info.strategy.clone(),
                    phase: phase.to_string(),
                })
                .set(i64::from(phase == info.phase));
        }
    }

    /// Forgets a deleted Rollout's series.
    pub fn forget_rollout(&self, object: &ObjectLabels) {
        if let Some(info) = lock(&self.rollout_series).remove(object) {
            self.rollout_info.remove(&info);
            for phase in ROLLOUT_PHASES {
                self.rollout_phase.remove(&RolloutPhaseLabels {
                    namespace: info.namespace.clone(),
                    name: info.name.clone(),
                    strategy: info.strategy.clone(),
                    phase: phase.to_string(),
                });
            }
        }
    }

    /// Exports an AnalysisRun's `analysis_run_info` and `analysis_run_metric_phase`.
    pub fn set_run_state(&self, info: AnalysisRunInfoLabels, metrics: Vec<MetricPhaseLabels>) {
        let object = ObjectLabels {
            namespace: info.namespace.clone(),
            name: info.name.clone(),
        };
        let mut series = lock(&self.run_series);
        if let Some((previous_info, previous_metrics)) = series.remove(&object) {
            self.analysis_run_info.remove(&previous_info);
            for labels in &previous_metrics {
                self.analysis_run_metric_phase.remove(labels);
            }
        }
        self.analysis_run_info.get_or_create(&info).set(1);
        for labels in &metrics {
            self.analysis_run_metric_phase.get_or_create(labels).set(1);
        }
        series.insert(object, (info, metrics));
    }

    /// Counts one write request to the Kubernetes API by its outcome: `200` when it succeeded,
    /// the API status code when the server refused it, `error` when it never got an answer.
    pub fn count_request<T>(
        &self,
        kind: &str,
        namespace: &str,
        verb: &str,
        result: &kube::Result<T>,
    ) {
        let status_code = match result {
            Ok(_) => "200".to_string(),
            Err(kube::Error::Api(status)) => status.code.to_string(),
            Err(_) => "error".to_string(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                kind: kind.to_string(),
                namespace: namespace.to_string(),
                verb: verb.to_string(),
                status_code: status_code.to_string(),
            })
            .inc();
        *lock(&self.requests_per_namespace)
            .entry(namespace.to_string())
            .or_default() += 1;
    }

    /// Counts one event published about a Rollout.
    pub fn count_rollout_event(&self, r#type: &str, reason: &str) {
        self.rollout_events
            .get_or_create(&EventLabels {
                r#type: r#type.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Write requests the reconcilers made so far in `namespace` (every kind, verb and status).
    pub fn requests_in_namespace(&self, namespace: &str) -> u64 {
        lock(&self.requests_per_namespace)
            .get(namespace)
            .copied()
            .unwrap_or_default()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
