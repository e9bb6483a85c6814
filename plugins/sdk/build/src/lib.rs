//! Builds Sluice plugin crates for wasm32-wasip2.
