//! `sluice crds`: the CustomResourceDefinitions Sluice serves.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Arguments of `sluice crds`.
#[derive(Args)]
pub struct CrdsArgs {
    /// Write one `<name>.yaml` file per CRD into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

/// Prints the CRDs as one multi-document YAML stream, or writes them to files.
pub fn run(args: &CrdsArgs) -> anyhow::Result<()> {
    let crds = sluice_api::crd::all();
    let Some(dir) = &args.output_dir else {
        let documents: Vec<String> = crds.iter().map(sluice_api::crd::to_yaml).collect();
        print!("{}", documents.join("---\n"));
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for crd in &crds {
        let path = dir.join(sluice_api::crd::file_name(crd));
        std::fs::write(&path, sluice_api::crd::to_yaml(crd))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
