//! Host-side bindings of the `sluice:plugin@0.1.0` worlds, generated from `wit/`.
//!
//! One `bindgen!` per world; the metric-provider and step worlds reuse the host interfaces and shared
//! types of the traffic-router world so all worlds link against one store type.

#![allow(
    missing_docs,
    reason = "bindgen-generated code; the WIT doc comments are carried over"
)]

/// The `traffic-router-plugin` world.
pub mod router {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sluice:plugin/traffic-router-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq],
        require_store_data_send: true,
    });
}

/// The `metric-provider-plugin` world.
pub mod provider {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sluice:plugin/metric-provider-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "sluice:host": crate::bindings::router::sluice::host,
            "sluice:plugin/types": crate::bindings::router::sluice::plugin::types,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

/// The `step-plugin` world.
pub mod step {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "sluice:plugin/step-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "sluice:host": crate::bindings::router::sluice::host,
            "sluice:plugin/types": crate::bindings::router::sluice::plugin::types,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub use router::sluice::host::{kube as wit_kube, log as wit_log};
pub use router::sluice::plugin::types;
