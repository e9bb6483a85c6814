//! `sluice plugin list|test|inspect`: the plugins Sluice runs, scenario tests on the mock host,
//! and a look inside a `.wasm` component.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use sluice_runtime::{
    Limits, PluginConfig, PluginEntry, PluginKind, PluginLocation, PluginSpec, parse_plugin_config,
    sha256_hex,
};

/// Arguments of `sluice plugin`.
#[derive(Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// List the configured plugins with their locations, digests and grants.
    ///
    /// Without `--config`, lists the built-in plugins as the default plugin ConfigMap
    /// configures them.
    List {
        /// A plugin ConfigMap manifest (YAML) to list instead of the defaults.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run plugin scenario files (YAML) on the mock host: fixtures, calls, expected results and
    /// expected Kubernetes state. Exits 1 if any scenario fails.
    Test {
        /// Scenario files.
        #[arg(value_name = "SCENARIO", required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Show a component's digest and size, and whether it loads as a traffic router or a
    /// metric provider (its `plugin-type`, or why it does not load).
    Inspect {
        /// The `.wasm` component.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Runs `sluice plugin ...`.
pub fn run(args: &PluginArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        PluginCommand::List { config } => list(config.as_deref()),
        PluginCommand::Test { scenarios } => Ok(test(scenarios)),
        PluginCommand::Inspect { file } => inspect(file),
    }
}

/// Runs each scenario, prints its report and returns failure if any scenario failed or could
/// not run.
fn test(scenarios: &[PathBuf]) -> ExitCode {
    let mut all_passed = true;
    for path in scenarios {
        match sluice_testkit::scenario::run_file(path) {
            Ok(report) => {
                println!("{report}");
                all_passed &= report.passed();
            }
            Err(error) => {
                eprintln!("{}: {error}", path.display());
                all_passed = false;
            }
        }
    }
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn config_map_data(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: serde_json::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    serde_json::from_value(manifest["data"].clone())
        .with_context(|| format!("{}: expected a ConfigMap with string data", path.display()))
}

/// The digest of a plugin, when it can be known without downloading it.
fn known_digest(entry: &PluginEntry) -> Option<String> {
    match &entry.location {
        PluginLocation::Builtin(name) => sluice_builtins::BUILTINS
            .iter()
            .find(|builtin| builtin.name == name)
            .map(|builtin| sha256_hex(builtin.wasm)),
        PluginLocation::File(path) => std::fs::read(path).ok().map(|bytes| sha256_hex(&bytes)),
        _ => entry.sha256.clone(),
    }
}

/// Renders the plugin table.
fn render_list(config: &PluginConfig) -> String {
    let mut out = String::new();
    for entry in &config.entries {
        let spec = &entry.spec;
        let digest = known_digest(entry).unwrap_or_else(|| "-".to_string());
        out.push_str(&format!(
            "{}\n  kind:     {}\n  location: {}\n  type:     {}\n  sha256:   {digest}\n  loads:    {}\n",
            spec.name,
            spec.kind.label(),
            entry.location,
            spec.expected_type.as_deref().unwrap_or("-"),
            if entry.disabled {
                "never (disabled)"
            } else if entry.loads_on_first_use() {
                "on first use"
            } else {
                "when the configuration is applied"
            },
        ));
        let grants: Vec<String> = spec
            .grants
            .kube
            .iter()
            .map(|rule| format!("kube {rule}"))
            .chain(
                spec.grants
                    .http
                    .iter()
                    .map(|origin| format!("http {origin}")),
            )
            .chain(
                spec.grants
                    .http_from_config
                    .iter()
                    .map(|field| format!("http to the origin of the metric's `{field}`")),
            )
            .chain(spec.grants.tls_skip_verify_from_config.iter().map(|field| {
                format!("tls verification skipped when the metric's `{field}` is true")
            }))
            .collect();
        if grants.is_empty() {
            out.push_str("  grants:   none\n");
        } else {
            out.push_str(&format!("  grants:   {}\n", grants.join("\n            ")));
        }
    }
    for invalid in &config.invalid {
        out.push_str(&format!(
            "{}\n  kind:     {}\n  INVALID:  {}\n",
            invalid.name,
            invalid.kind.label(),
            invalid.reason
        ));
    }
    out
}

fn list(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let data = match config {
        Some(path) => config_map_data(path)?,
        None => sluice_builtins::default_plugin_config(),
    };
    let config = parse_plugin_config(&data, &Limits::default())?;
    print!("{}", render_list(&config));
    Ok(if config.invalid.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn inspect(file: &Path) -> anyhow::Result<ExitCode> {
    let bytes: Arc<[u8]> = std::fs::read(file)
        .with_context(|| format!("reading {}", file.display()))?
        .into();
    println!("file:   {}", file.display());
    println!("size:   {} bytes", bytes.len());
    println!("sha256: {}", sha256_hex(&bytes));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let loads = runtime.block_on(async {
        let engine = sluice_testkit::shared_engine()?;
        let compiled = engine.compile_component(bytes).await?;
        let mut results = Vec::new();
        for kind in [
            PluginKind::TrafficRouter,
            PluginKind::MetricProvider,
            PluginKind::Step,
        ] {
            let spec = PluginSpec {
                name: "inspect".to_string(),
                kind,
                grants: Default::default(),
                limits: Limits::default(),
                args: Vec::new(),
                expected_type: None,
            };
            // Nothing is granted, so the in-memory backends are never reached.
            let services = sluice_runtime::HostServices {
                kube: Arc::new(sluice_testkit::InMemoryKube::new()),
                http: Arc::new(sluice_testkit::ScriptedHttp::default()),
                observer: None,
            };
            let mut registry = prometheus_client::registry::Registry::default();
            let metrics = sluice_runtime::PluginMetrics::register(&mut registry);
            let loaded = engine.load_plugin(spec, &compiled, services, metrics).await;
            results.push((kind, loaded.map(|plugin| plugin.plugin_type().to_string())));
        }
        anyhow::Ok(results)
    })?;
    let mut loads_as_any = false;
    for (kind, result) in loads {
        match result {
            Ok(plugin_type) => {
                loads_as_any = true;
                println!("{}: loads, plugin-type {plugin_type:?}", kind.label());
            }
            Err(error) => println!("{}: does not load: {error}", kind.label()),
        }
    }
    Ok(if loads_as_any {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_lists_every_builtin_with_its_digest_and_grants() {
        let config = parse_plugin_config(
            &sluice_builtins::default_plugin_config(),
            &Limits::default(),
        )
        .expect("default config parses");
        assert!(config.invalid.is_empty(), "{:?}", config.invalid);
        let listing = render_list(&config);
        for builtin in sluice_builtins::BUILTINS {
            assert!(
                listing.contains(&format!("location: builtin:{}", builtin.name)),
                "{listing}"
            );
            assert!(listing.contains(&sha256_hex(builtin.wasm)), "{listing}");
        }
        assert!(listing.contains(
            "argoproj-labs/gatewayAPI\n  kind:     traffic-router\n  location: builtin:gatewayapi\n  type:     GatewayAPI\n"
        ));
        assert!(listing.contains(
            "kube get,patch gateway.networking.k8s.io/{HTTPRoute,GRPCRoute,TCPRoute} in $rolloutNamespace"
        ));
        assert!(listing.contains(
            "prometheus\n  kind:     metric-provider\n  location: builtin:prometheus\n  type:     Prometheus\n"
        ));
        assert!(listing.contains("http to the origin of the metric's `address`"));
        assert!(listing.contains("  loads:    on first use\n"), "{listing}");
    }
}
