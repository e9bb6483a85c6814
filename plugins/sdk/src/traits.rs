//! The plugin traits and export macros.

use crate::{
    AnalysisContext, HeaderRoute, Measurement, MirrorRoute, PluginError, RolloutContext,
    Verification, WeightDestination,
};

/// A traffic-router plugin (Argo's traffic-router RPC contract). Every call runs on a fresh
/// instance, so keep state in Kubernetes objects, not in statics.
pub trait TrafficRouter {
    /// The type name reported to the host (Argo `Type()`).
    fn plugin_type() -> String;

    /// Validates the plugin's static setup; the default accepts.
    fn init() -> Result<(), PluginError> {
        Ok(())
    }

    /// Reacts to new canary/stable pod-template hashes; the default does nothing.
    fn update_hash(
        _ctx: RolloutContext,
        _canary_hash: String,
        _stable_hash: String,
        _additional_destinations: Vec<WeightDestination>,
    ) -> Result<(), PluginError> {
        Ok(())
    }

    /// Routes `desired_weight` percent of traffic to the canary.
    fn set_weight(
        ctx: RolloutContext,
        desired_weight: i32,
        additional_destinations: Vec<WeightDestination>,
    ) -> Result<(), PluginError>;

    /// Header-based routing; the default fails loudly rather than pretending to succeed.
    fn set_header_route(_ctx: RolloutContext, _route: HeaderRoute) -> Result<(), PluginError> {
        Err(PluginError::InvalidConfig(format!(
            "{} does not support header routes",
            Self::plugin_type()
        )))
    }

    /// Mirror routing; the default fails loudly rather than pretending to succeed.
    fn set_mirror_route(_ctx: RolloutContext, _route: MirrorRoute) -> Result<(), PluginError> {
        Err(PluginError::InvalidConfig(format!(
            "{} does not support mirror routes",
            Self::plugin_type()
        )))
    }

    /// Reports whether the weight is in place; the default is `not-implemented`.
    fn verify_weight(
        _ctx: RolloutContext,
        _desired_weight: i32,
        _additional_destinations: Vec<WeightDestination>,
    ) -> Result<Verification, PluginError> {
        Ok(Verification::NotImplemented)
    }

    /// Removes managed header/mirror routes; the default has none to remove.
    fn remove_managed_routes(_ctx: RolloutContext) -> Result<(), PluginError> {
        Ok(())
    }
}

/// A metric-provider plugin (Argo's metric-provider RPC contract).
pub trait MetricProvider {
    /// The type name reported to the host (Argo `Type()`).
    fn plugin_type() -> String;

    /// Validates the plugin's static setup; the default accepts.
    fn init() -> Result<(), PluginError> {
        Ok(())
    }

    /// Takes a measurement; leave `finished_at` unset to be resumed later.
    fn run(ctx: AnalysisContext) -> Result<Measurement, PluginError>;

    /// Continues a running measurement; the default returns it unchanged.
    fn resume(_ctx: AnalysisContext, current: Measurement) -> Result<Measurement, PluginError> {
        Ok(current)
    }

    /// Stops a running measurement; the default returns it unchanged.
    fn terminate(_ctx: AnalysisContext, current: Measurement) -> Result<Measurement, PluginError> {
        Ok(current)
    }

    /// Cleans up external state of old measurements; the default has none.
    fn garbage_collect(_ctx: AnalysisContext, _limit: u32) -> Result<(), PluginError> {
        Ok(())
    }

    /// Extra metadata shown with the metric; the default is empty.
    fn get_metadata(_ctx: AnalysisContext) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// A step plugin: the canary `plugin` step (Argo's step plugin RPC contract). Every call runs on
/// a fresh instance; keep what `run` needs next time in [`StepResult::status`] (JSON), which
/// comes back as [`StepContext::status`].
#[cfg(feature = "step")]
pub trait StepPlugin {
    /// The type name reported to the host (Argo `Type()`).
    fn plugin_type() -> String;

    /// Validates the plugin's static setup; the default accepts.
    fn init() -> Result<(), PluginError> {
        Ok(())
    }

    /// Carries out the step; called again after `requeue_after_ms` while it returns Running.
    fn run(ctx: crate::StepContext) -> Result<crate::StepResult, PluginError>;

    /// Stops a running step on full promotion; the default succeeds with nothing to stop.
    fn terminate(_ctx: crate::StepContext) -> Result<crate::StepResult, PluginError> {
        Ok(crate::StepResult::done("nothing to terminate"))
    }

    /// Undoes the step on abort; the default succeeds with nothing to undo.
    fn abort(_ctx: crate::StepContext) -> Result<crate::StepResult, PluginError> {
        Ok(crate::StepResult::done("nothing to undo"))
    }
}

#[cfg(feature = "step")]
impl crate::StepResult {
    /// A Successful result with `message` and no status.
    pub fn done(message: &str) -> Self {
        Self {
            phase: crate::StepPhase::Successful,
            message: message.to_owned(),
            requeue_after_ms: 0,
            status: String::new(),
        }
    }
}

/// Exports a [`StepPlugin`] implementation as the plugin's component. Expands to a trait check
/// only when not compiling for `wasm32`.
#[cfg(feature = "step")]
#[macro_export]
macro_rules! export_step_plugin {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::wit::step::exports::sluice::plugin::step as __step;
            impl __step::Guest for $ty {
                fn plugin_type() -> ::std::string::String {
                    <$ty as $crate::StepPlugin>::plugin_type()
                }
                fn init() -> ::core::result::Result<(), $crate::PluginError> {
                    <$ty as $crate::StepPlugin>::init()
                }
                fn run(
                    ctx: $crate::StepContext,
                ) -> ::core::result::Result<$crate::StepResult, $crate::PluginError> {
                    <$ty as $crate::StepPlugin>::run(ctx)
                }
                fn terminate(
                    ctx: $crate::StepContext,
                ) -> ::core::result::Result<$crate::StepResult, $crate::PluginError> {
                    <$ty as $crate::StepPlugin>::terminate(ctx)
                }
                fn abort(
                    ctx: $crate::StepContext,
                ) -> ::core::result::Result<$crate::StepResult, $crate::PluginError> {
                    <$ty as $crate::StepPlugin>::abort(ctx)
                }
            }
    $crate::wit::step::__export_step_world!($ty with_types_in $crate::wit::step);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn assert_step_plugin<T: $crate::StepPlugin>() {}
            assert_step_plugin::<$ty>();
        };
    };
}

/// Exports a [`TrafficRouter`] implementation as the plugin's component. Expands to a trait
/// check only when not compiling for `wasm32`.
#[macro_export]
macro_rules! export_traffic_router {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::wit::router::exports::sluice::plugin::traffic_router as __tr;
            impl __tr::Guest for $ty {
                fn plugin_type() -> ::std::string::String {
                    <$ty as $crate::TrafficRouter>::plugin_type()
                }
                fn init() -> ::core::result::Result<(), $crate::PluginError> {
                    <$ty as $crate::TrafficRouter>::init()
                }
                fn update_hash(
                    ctx: $crate::RolloutContext,
                    canary_hash: ::std::string::String,
                    stable_hash: ::std::string::String,
                    additional: ::std::vec::Vec<$crate::WeightDestination>,
                ) -> ::core::result::Result<(), $crate::PluginError> {
                    <$ty as $crate::TrafficRouter>::update_hash(ctx, canary_hash, stable_hash, additional)
                }
                fn set_weight(
                    ctx: $crate::RolloutContext,
                    weight: i32,
                    additional: ::std::vec::Vec<$crate::WeightDestination>,
                ) -> ::core::result::Result<(), $crate::PluginError> {
                    <$ty as $crate::TrafficRouter>::set_weight(ctx, weight, additional)
                }
                fn set_header_route(
                    ctx: $crate::RolloutContext,
                    route: $crate::HeaderRoute,
                ) -> ::core::result::Result<(), $crate::PluginError> {
                    <$ty as $crate::TrafficRouter>::set_header_route(ctx, route)
                }
                fn set_mirror_route(
                    ctx: $crate::RolloutContext,
                    route: $crate::MirrorRoute,
                ) -> ::core::result::Result<(), $crate::PluginError> {
                    <$ty as $crate::TrafficRouter>::set_mirror_route(ctx, route)
                }
                fn verify_weight(
                    ctx: $crate::RolloutContext,
                    weight: i32,
                    additional: ::std::vec::Vec<$crate::WeightDestination>,
                ) -> ::core::result::Result<$crate::Verification, $crate::PluginError> {
                    <$ty as $crate::TrafficRouter>::verify_weight(ctx, weight, additional)
                }
                fn remove_managed_routes(ctx: $crate::RolloutContext) -> ::core::result::Result<(), $crate::PluginError> {
                    <$ty as $crate::TrafficRouter>::remove_managed_routes(ctx)
                }
            }
            $crate::wit::router::__export_traffic_router_world!($ty with_types_in $crate::wit::router);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn assert_traffic_router<T: $crate::TrafficRouter>() {}
            assert_traffic_router::<$ty>();
        };
    };
}

/// Exports a [`MetricProvider`] implementation as the plugin's component. Expands to a trait
/// check only when not compiling for `wasm32`.
#[macro_export]
macro_rules! export_metric_provider {
    ($ty:ident) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::wit::provider::exports::sluice::plugin::metric_provider as __mp;
            impl __mp::Guest for $ty {
                fn plugin_type() -> ::std::string::String {
                    <$ty as $crate::MetricProvider>::plugin_type()
                }
                fn init() -> ::core::result::Result<(), $crate::PluginError> {
                    <$ty as $crate::MetricProvider>::init()
                }
                fn run(ctx: $crate::AnalysisContext) -> ::core::result::Result<$crate::Measurement, $crate::PluginError> {
                    <$ty as $crate::MetricProvider>::run(ctx)
                }
                fn resume(
                    ctx: $crate::AnalysisContext,
                    current: $crate::Measurement,
                ) -> ::core::result::Result<$crate::Measurement, $crate::PluginError> {
                    <$ty as $crate::MetricProvider>::resume(ctx, current)
                }
                fn terminate(
                    ctx: $crate::AnalysisContext,
                    current: $crate::Measurement,
                ) -> ::core::result::Result<$crate::Measurement, $crate::PluginError> {
                    <$ty as $crate::MetricProvider>::terminate(ctx, current)
                }
                fn garbage_collect(
                    ctx: $crate::AnalysisContext,
                    limit: u32,
                ) -> ::core::result::Result<(), $crate::PluginError> {
                    <$ty as $crate::MetricProvider>::garbage_collect(ctx, limit)
                }
                fn get_metadata(ctx: $crate::AnalysisContext) -> ::std::vec::Vec<(::std::string::String, ::std::string::String)> {
                    <$ty as $crate::MetricProvider>::get_metadata(ctx)
                }
            }
            $crate::wit::provider::__export_metric_provider_world!($ty with_types_in $crate::wit::provider);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn assert_metric_provider<T: $crate::MetricProvider>() {}
            assert_metric_provider::<$ty>();
        };
    };
}
