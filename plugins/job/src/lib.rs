//! Job metric provider: a Kubernetes Job whose outcome is the measurement.
