//! Manifest placeholder.
