//! `sluice lint`: offline validation of manifests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sluice_api::manifest;

/// Arguments of `sluice lint`.
#[derive(Args)]
pub struct LintArgs {
    /// Manifest files (multi-document YAML). `-` reads standard input.
    #[arg(value_name = "FILE", required_unless_present = "filename")]
    files: Vec<PathBuf>,
    /// Manifest files, as with `kubectl -f` (may be repeated).
    #[arg(short = 'f', long = "filename", value_name = "FILE", num_args = 1..)]
    filename: Vec<PathBuf>,
}

/// Lints every file; prints one line per problem and returns exit code 1 if there is any.
pub fn run(args: &LintArgs) -> anyhow::Result<ExitCode> {
    let mut problems = 0;
    for file in args.files.iter().chain(&args.filename) {
        let name = file.display().to_string();
        let text = if name == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(file)
        };
        let lines = match text {
            Ok(text) => lint_text(&text),
            Err(error) => vec![format!("cannot read file: {error}")],
        };
        for line in &lines {
            println!("{name}: {line}");
        }
        problems += lines.len();
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The problems of one file's text, each as `Kind/name: path: message` (or the parser's
/// position for malformed YAML).
fn lint_text(text: &str) -> Vec<String> {
    manifest::parse_documents(text)
        .into_iter()
        .flat_map(|parsed| match parsed {
            Err(error) => vec![error.to_string()],
            Ok(object) => {
                let described = object.describe();
                object
                    .violations()
                    .into_iter()
                    .map(|violation| format!("{described}: {violation}"))
                    .collect()
            }
        })
        .collect()
}
