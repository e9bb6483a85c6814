//! Errors of plugin calls and plugin loading.

use std::time::Duration;

pub use crate::bindings::types::PluginError;

/// Why a plugin call did not return a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (panic, `unreachable`, out-of-bounds access, stack overflow…).
    #[error("plugin {plugin} trapped in {method}: {message}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// Method name.
        method: &'static str,
        /// The trap and its backtrace as wasmtime reports it.
        message: String,
    },
    /// The call exceeded its wall-clock timeout (often a slow host call).
    #[error("plugin {plugin} timed out in {method} after {after:?}")]
    Timeout {
        /// Plugin name.
        plugin: String,
        /// Method name.
        method: &'static str,
        /// The configured timeout.
        after: Duration,
    },
    /// The guest used up its CPU budget and was interrupted.
    #[error("plugin {plugin} exhausted its CPU budget of {budget:?} in {method}")]
    CpuExhausted {
        /// Plugin name.
        plugin: String,
        /// Method name.
        method: &'static str,
        /// The configured budget.
        budget: Duration,
    },
    /// The guest tried to grow its memory past the limit.
    #[error("plugin {plugin} exceeded its memory limit of {limit_bytes} bytes in {method}")]
    OutOfMemory {
        /// Plugin name.
        plugin: String,
        /// Method name.
        method: &'static str,
        /// The configured limit.
        limit_bytes: u64,
    },
    /// The plugin failed because a host capability was denied (it reported `access-denied`, or
    /// returned an error after a denial).
    #[error("plugin {plugin} was denied access in {method}: {message}")]
    AccessDenied {
        /// Plugin name.
        plugin: String,
        /// Method name.
        method: &'static str,
        /// The denial(s) and the plugin's message.
        message: String,
    },
    /// The plugin returned a typed error.
    #[error("plugin {plugin} failed in {method}: {error:?}")]
    Plugin {
        /// Plugin name.
        plugin: String,
        /// Method name.
        method: &'static str,
        /// The error the plugin returned.
        error: PluginError,
    },
    /// The plugin returned a value the host rejects (e.g. an inconsistent measurement).
    #[error("plugin {plugin} returned invalid output from {method}: {message}")]
    InvalidOutput {
        /// Plugin name.
        plugin: String,
        /// Method name.
        method: &'static str,
        /// What is wrong with the output.
        message: String,
    },
    /// The plugin is not available: not configured, or it failed to load.
    #[error("plugin {plugin} is not available: {reason}")]
    Load {
        /// Plugin name.
        plugin: String,
        /// Why it is not available.
        reason: String,
    },
    /// The plugin is disabled in the configuration (step plugins only).
    #[error("plugin {plugin} is disabled")]
    Disabled {
        /// Plugin name.
        plugin: String,
    },
}

impl CallError {
    /// A short stable label for metrics and conditions (`trap`, `timeout`, `cpu_exhausted`,
    /// `out_of_memory`, `access_denied`, `plugin_error`, `invalid_output`, `load_error`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Trap { .. } => "trap",
            Self::Timeout { .. } => "timeout",
            Self::CpuExhausted { .. } => "cpu_exhausted",
            Self::OutOfMemory { .. } => "out_of_memory",
            Self::AccessDenied { .. } => "access_denied",
            Self::Plugin { .. } => "plugin_error",
            Self::InvalidOutput { .. } => "invalid_output",
            Self::Load { .. } => "load_error",
            Self::Disabled { .. } => "disabled",
        }
    }

    /// Whether retrying later may succeed (timeouts, CPU exhaustion, transient or conflict errors).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::CpuExhausted { .. } => true,
            Self::Plugin { error, .. } => {
                matches!(error, PluginError::Transient(_) | PluginError::Conflict(_))
            }
            _ => false,
        }
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The location is not `builtin:NAME`, `file://PATH` or `https://URL`.
    #[error(
        "unsupported plugin location {location:?}: use builtin:NAME, file:///path or https://url"
    )]
    UnsupportedLocation {
        /// The location as written.
        location: String,
    },
    /// An `https://` location without `sha256`.
    #[error("plugin location {location} needs a sha256 (64 hex characters)")]
    MissingSha256 {
        /// The location.
        location: String,
    },
    /// A `builtin:` name the controller does not embed.
    #[error("no built-in plugin named {name:?}; built-ins: {available}")]
    UnknownBuiltin {
        /// The requested name.
        name: String,
        /// Comma-separated list of available built-ins.
        available: String,
    },
    /// Reading a `file://` location failed.
    #[error("cannot read plugin file {path}: {reason}")]
    File {
        /// The path.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// Downloading an `https://` location failed.
    #[error("cannot download plugin from {url}: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The bytes do not hash to the configured sha256.
    #[error("sha256 mismatch for {location}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The location.
        location: String,
        /// The configured digest.
        expected: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {reason}")]
    Compile {
        /// The compiler's message.
        reason: String,
    },
    /// The component does not export the interface of the configured plugin kind.
    #[error("component does not implement world {expected}: it exports [{exports}]")]
    WrongWorld {
        /// The expected world.
        expected: &'static str,
        /// What the component exports.
        exports: String,
    },
    /// The component imports interfaces the host does not provide to this kind of plugin.
    #[error("component imports {import}, which the host does not provide to {world} plugins")]
    MissingImport {
        /// The missing import names, comma-separated.
        import: String,
        /// The world the plugin is loaded as.
        world: &'static str,
    },
    /// Linking failed for another reason (e.g. a type mismatch in an import).
    #[error("cannot link component: {reason}")]
    Link {
        /// The linker's message.
        reason: String,
    },
    /// `plugin-type` returned something other than the configured `type`.
    #[error("plugin-type mismatch: configured {expected:?}, plugin reports {actual:?}")]
    WrongPluginType {
        /// The configured type.
        expected: String,
        /// What the plugin returned.
        actual: String,
    },
    /// `plugin-type` or `init` failed.
    #[error("plugin failed verification: {0}")]
    Verification(CallError),
    /// The plugin's limits exceed what the engine was configured for.
    #[error("memory limit of {requested} bytes exceeds the engine's ceiling of {ceiling} bytes")]
    LimitTooLarge {
        /// The plugin's limit.
        requested: u64,
        /// The engine's ceiling.
        ceiling: u64,
    },
}
