//! Prometheus metric provider: instant and range queries.
