//! `sluice plugin test SCENARIO.yaml…`: runs plugin scenarios on the mock host.

use std::path::PathBuf;
use std::process::ExitCode;

/// Runs each scenario, prints its report and returns failure if any scenario failed or could
/// not run.
pub fn test(scenarios: &[PathBuf]) -> ExitCode {
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
    if all_passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
