//! Sluice's Kubernetes API: the argoproj.io/v1alpha1 types, their defaults, validation and CRD generation.
