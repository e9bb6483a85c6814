//! Builds Sluice plugin crates for `wasm32-wasip2`, so tests, benches and build scripts get
//! `.wasm` components without a manual step.
//!
//! Each package is built by a nested `cargo build --release --target wasm32-wasip2 -p NAME`
//! with its own target directory (`<target>/wasm-plugins`), so it never waits on the outer
//! cargo's target-directory lock. Packages are built one by one so the SDK's world features
//! (`traffic-router`, `metric-provider`) never unify across plugins.
//!
//! In a test:
//! ```no_run
//! let wasm = sluice_plugin_build::build_plugin(
//!     std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")),
//!     "sluice-fixture-echo-router",
//! ).unwrap();
//! ```
//! In a `build.rs` (e.g. to embed built-in plugins with `include_bytes!(env!("…"))`), use
//! [`build_for_build_script`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// A plugin could not be built.
#[derive(Debug)]
pub struct BuildError {
    /// The package.
    pub package: String,
    /// What went wrong (includes the tail of cargo's output).
    pub message: String,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "building plugin {} for {TARGET} failed: {}",
            self.package, self.message
        )
    }
}

impl std::error::Error for BuildError {}

/// Environment variables of an outer cargo invocation that must not leak into the nested build.
const SCRUBBED_ENV: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
];

/// The directory nested plugin builds use: `$CARGO_TARGET_DIR/wasm-plugins`, or
/// `<workspace>/target/wasm-plugins`.
pub fn plugin_target_dir(workspace_root: &Path) -> PathBuf {
    let outer = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"));
    outer.join("wasm-plugins")
}

/// Builds one plugin package (release) and returns the path of its `.wasm` component.
pub fn build_plugin(workspace_root: &Path, package: &str) -> Result<PathBuf, BuildError> {
    let fail = |message: String| BuildError {
        package: package.to_owned(),
        message,
    };
    let target_dir = plugin_target_dir(workspace_root);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root)
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "-p",
            package,
            "--target-dir",
        ])
        .arg(&target_dir);
    for var in SCRUBBED_ENV {
        command.env_remove(var);
    }
    let output = command
        .output()
        .map_err(|e| fail(format!("cannot run cargo: {e}")))?;
    if !output.status.success() {
        return Err(fail(stderr_tail(&output)));
    }
    let path = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    if path.is_file() {
        Ok(path)
    } else {
        Err(fail(format!(
            "cargo succeeded but {} is missing (is the crate a cdylib?)",
            path.display()
        )))
    }
}

/// The last lines of a failed command's stderr.
fn stderr_tail(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Builds a plugin written in another language by running its build script with `bash` and
/// returns the `.wasm` path the script prints as the last line of its stdout (the convention of
/// `plugins/examples/*/build.sh`).
pub fn build_with_script(script: &Path) -> Result<PathBuf, BuildError> {
    let fail = |message: String| BuildError {
        package: script.display().to_string(),
        message,
    };
    let output = Command::new("bash")
        .arg(script)
        .output()
        .map_err(|e| fail(format!("cannot run bash: {e}")))?;
    if !output.status.success() {
        return Err(fail(stderr_tail(&output)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(fail(format!(
            "the script succeeded but its last line {:?} is not a file",
            path.display()
        )))
    }
}

/// Builds several plugin packages; returns package name → `.wasm` path.
pub fn build_plugins(
    workspace_root: &Path,
    packages: &[&str],
) -> Result<BTreeMap<String, PathBuf>, BuildError> {
    packages
        .iter()
        .map(|package| {
            build_plugin(workspace_root, package).map(|path| ((*package).to_owned(), path))
        })
        .collect()
}

/// For `build.rs`: builds the packages, prints `cargo:rerun-if-changed` for `watch` (plugin
/// sources, the SDK and `wit/`) and `cargo:rustc-env=SLUICE_PLUGIN_WASM_<PACKAGE>=<path>`
/// (package upper-cased, `-` → `_`), so the crate can `include_bytes!(env!(…))` or read the path.
pub fn build_for_build_script(
    workspace_root: &Path,
    packages: &[&str],
    watch: &[&Path],
) -> Result<(), BuildError> {
    for path in watch {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for (package, wasm) in build_plugins(workspace_root, packages)? {
        println!(
            "cargo:rustc-env={}={}",
            env_var_name(&package),
            wasm.display()
        );
    }
    Ok(())
}

/// The environment variable [`build_for_build_script`] sets for `package`.
pub fn env_var_name(package: &str) -> String {
    format!(
        "SLUICE_PLUGIN_WASM_{}",
        package.to_ascii_uppercase().replace('-', "_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_are_shell_safe() {
        assert_eq!(
            env_var_name("sluice-fixture-echo-router"),
            "SLUICE_PLUGIN_WASM_SLUICE_FIXTURE_ECHO_ROUTER"
        );
    }
}
