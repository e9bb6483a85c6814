//! The sandboxed WebAssembly plugin runtime of Sluice (the only crate that imports wasmtime).
