//! Generated bindings, one module per world.
//!
//! Each world is behind its cargo feature so a plugin's component only describes the world it
//! implements. Without features the traffic-router world is generated (so the crate builds on
//! its own); with both (native workspace builds), the metric-provider bindings reuse the
//! traffic-router module's host interfaces and shared types.

#![allow(
    missing_docs,
    reason = "generated bindings; the WIT doc comments are carried over"
)]

/// The `traffic-router-plugin` world.
#[cfg(any(feature = "traffic-router", not(feature = "metric-provider")))]
pub mod router {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sluice:plugin/traffic-router-plugin",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_traffic_router_world",
        default_bindings_module: "sluice_plugin_sdk::wit::router",
    });
}

/// The `metric-provider-plugin` world.
#[cfg(all(feature = "metric-provider", not(feature = "traffic-router")))]
pub mod provider {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sluice:plugin/metric-provider-plugin",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_metric_provider_world",
        default_bindings_module: "sluice_plugin_sdk::wit::provider",
    });
}

/// The `metric-provider-plugin` world, sharing the traffic-router module's types.
#[cfg(all(feature = "metric-provider", feature = "traffic-router"))]
pub mod provider {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sluice:plugin/metric-provider-plugin",
        with: {
            "sluice:host/log@0.1.0": crate::wit::router::sluice::host::log,
            "sluice:host/kube@0.1.0": crate::wit::router::sluice::host::kube,
            "sluice:plugin/types@0.1.0": crate::wit::router::sluice::plugin::types,
        },
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_metric_provider_world",
        default_bindings_module: "sluice_plugin_sdk::wit::provider",
    });
}

#[cfg(any(feature = "traffic-router", not(feature = "metric-provider")))]
pub use router::sluice::host;
#[cfg(any(feature = "traffic-router", not(feature = "metric-provider")))]
pub use router::sluice::plugin::types;

#[cfg(all(feature = "metric-provider", not(feature = "traffic-router")))]
pub use provider::sluice::host;
#[cfg(all(feature = "metric-provider", not(feature = "traffic-router")))]
pub use provider::sluice::plugin::types;
