//! Validation placeholder.
