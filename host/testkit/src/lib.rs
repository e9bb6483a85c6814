//! A mock host for Sluice plugins: in-memory Kubernetes objects, scripted HTTP and call recording.
