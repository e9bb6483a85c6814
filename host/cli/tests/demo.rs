//! `sluice demo --non-interactive` from start to end: it must promote v2 to Healthy through the
//! Prometheus analysis, abort v3 automatically with the route back to stable, exit 0, and leave no
//! process behind.
//!
//! Every process the demo starts inherits a marker variable in its environment; the test watches
//! `/proc` for it while the demo runs (so the scan is known to see the control plane and
//! Prometheus) and after it exits (nothing may remain).

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound against a hung demo (it normally takes one to two minutes).
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// `(pid, command name)` of the processes whose environment holds `marker`.
fn marked_processes(marker: &str) -> Vec<(u32, String)> {
    let needle = marker.as_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|byte| *byte == 0)
                    .any(|variable| variable == needle)
            })
        })
        .map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            (pid, name.trim().to_owned())
        })
        .collect()
}

#[test]
fn the_demo_promotes_a_good_version_aborts_a_bad_one_and_leaves_nothing_running() {
    let marker_value = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let marker = format!("SLUICE_DEMO_TEST_MARKER={marker_value}");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["demo", "--non-interactive"])
        .env("SLUICE_DEMO_TEST_MARKER", &marker_value)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluice demo");
    let mut stdout_pipe = demo.stdout.take().expect("stdout");
    let mut stderr_pipe = demo.stderr.take().expect("stderr");
    let stdout_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout_pipe.read_to_string(&mut text).map(|_| text)
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr_pipe.read_to_string(&mut text).map(|_| text)
    });

    let started = Instant::now();
    let mut seen = BTreeSet::new();
    let status = loop {
        if let Some(status) = demo.try_wait().expect("wait for the demo") {
            break status;
        }
        if started.elapsed() > HANG_LIMIT {
            demo.kill().ok();
            demo.wait().ok();
            panic!("sluice demo did not finish within {HANG_LIMIT:?}");
        }
        seen.extend(marked_processes(&marker).into_iter().map(|(_, name)| name));
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = stdout_reader
        .join()
        .expect("stdout reader")
        .expect("read stdout");
    let stderr = stderr_reader
        .join()
        .expect("stderr reader")
        .expect("read stderr");
    let context = format!("exit {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(status.success(), "{context}");

    // (a) v2 promoted through the analysis, then (b) v3 aborted with the route back to stable.
    let promoted = stdout
        .lines()
        .position(|line| line.starts_with("==> v2: Healthy"))
        .unwrap_or_else(|| panic!("no `v2: Healthy` line\n{context}"));
    let aborted = stdout
        .lines()
        .position(|line| line.starts_with("==> v3: aborted automatically"))
        .unwrap_or_else(|| panic!("no `v3: aborted automatically` line\n{context}"));
    assert!(promoted < aborted, "{context}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[promoted].contains("Successful"),
        "the v2 analysis passed: {}",
        lines[promoted]
    );
    assert!(
        lines[aborted].contains("Failed")
            && lines[aborted].contains("weights demo-stable 100, demo-canary 0"),
        "the v3 analysis failed and the canary lost its traffic: {}",
        lines[aborted]
    );
    assert!(
        stdout.contains("RolloutAborted"),
        "the rollout's message says it was aborted\n{context}"
    );
    // The live tree was printed along the way, in plain text.
    assert!(
        stdout.contains("Status:") && stdout.contains("⧉") && stdout.contains("α"),
        "{context}"
    );
    assert!(!stdout.contains("\x1b["), "plain output has no ANSI codes");

    // The scan saw the demo's processes while it ran, and none of them remain.
    for expected in ["etcd", "kube-apiserver", "prometheus"] {
        assert!(
            seen.iter().any(|name| name.starts_with(expected)),
            "{expected} was never seen running (saw {seen:?})"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = marked_processes(&marker);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = marked_processes(&marker);
    }
    assert!(left.is_empty(), "processes left behind: {left:?}");
}
