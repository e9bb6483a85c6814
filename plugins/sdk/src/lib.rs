//! The guest SDK for Sluice plugins: traits, typed Kubernetes helpers and export macros over the WIT bindings.
