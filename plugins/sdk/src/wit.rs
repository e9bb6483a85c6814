//! Generated bindings, one module per world.
//!
//! Each world is behind its cargo feature so a plugin's component only describes the world it
//! implements. Without features the traffic-router world is generated (so the crate builds on
//! its own). When several features are enabled (native workspace builds), the first generated
//! world (traffic-router, then metric-provider) owns the host interfaces and shared types and
//! the others reuse them.

#![allow(
    missing_docs,
    reason = "generated bindings; the WIT doc comments are carried over"
)]

/// The `traffic-router-plugin` world.
#[cfg(any(
    feature = "traffic-router",
    not(any(feature = "metric-provider", feature = "step"))
))]
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

/// The `step-plugin` world.
#[cfg(all(
    feature = "step",
    not(any(feature = "traffic-router", feature = "metric-provider"))
))]
pub mod step {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sluice:plugin/step-plugin",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_step_world",
        default_bindings_module: "sluice_plugin_sdk::wit::step",
    });
}

/// The `step-plugin` world, sharing the types of the module that owns them.
#[cfg(all(
    feature = "step",
    any(feature = "traffic-router", feature = "metric-provider")
))]
pub mod step {
    #[cfg(not(feature = "traffic-router"))]
    use crate::wit::provider as owner;
    #[cfg(feature = "traffic-router")]
    use crate::wit::router as owner;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "sluice:plugin/step-plugin",
        with: {
            "sluice:host/log@0.1.0": owner::sluice::host::log,
            "sluice:host/kube@0.1.0": owner::sluice::host::kube,
            "sluice:plugin/types@0.1.0": owner::sluice::plugin::types,
        },
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_step_world",
        default_bindings_module: "sluice_plugin_sdk::wit::step",
    });
}

#[cfg(any(
    feature = "traffic-router",
    not(any(feature = "metric-provider", feature = "step"))
))]
pub use router::sluice::{host, plugin::types};

#[cfg(all(feature = "metric-provider", not(feature = "traffic-router")))]
pub use provider::sluice::{host, plugin::types};

#[cfg(all(
    feature = "step",
    not(any(feature = "traffic-router", feature = "metric-provider"))
))]
pub use step::sluice::{host, plugin::types};

/// The `wasi` bindings `crate::http` uses: the metric-provider world's, else the step world's.
#[cfg(feature = "metric-provider")]
pub use provider::wasi as http_wasi;
#[cfg(all(feature = "step", not(feature = "metric-provider")))]
pub use step::wasi as http_wasi;
