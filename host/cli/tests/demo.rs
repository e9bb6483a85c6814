//! `sluice demo --non-interactive`: run to the end, it must promote v2 to Healthy through the
//! Prometheus analysis, abort v3 automatically with the route back to stable, exit 0, and leave no
//! process behind; interrupted with Ctrl-C (SIGINT) in the middle, it must stop everything it
//! started.
//!
//! Every process the demo starts inherits a marker variable in its environment; the tests watch
//! `/proc` for it while the demo runs (so the scan is known to see the control plane and
//! Prometheus) and after it exits (nothing may remain).

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One demo at a time: each starts a control plane and Prometheus.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Generous bound against a hung demo (it normally takes one to two minutes).
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// `(pid, command name)` of the processes whose environment holds `marker` (`NAME=value`).
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

/// A running `sluice demo --non-interactive`, its output collected as it comes.
struct Demo {
    child: Child,
    marker: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    /// Names of the marked processes seen while it ran.
    seen: BTreeSet<String>,
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0_u8; 4096];
        while let Ok(read) = pipe.read(&mut buffer) {
            if read == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buffer[..read]).into_owned();
            into.lock().expect("output lock").push_str(&text);
        }
    })
}

impl Demo {
    fn start(name: &str) -> Self {
        let value = format!(
            "{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["demo", "--non-interactive"])
            .env("SLUICE_DEMO_TEST_MARKER", &value)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice demo");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), stdout.clone()),
            collect(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Self {
            child,
            marker: format!("SLUICE_DEMO_TEST_MARKER={value}"),
            stdout,
            stderr,
            readers,
            seen: BTreeSet::new(),
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().expect("output lock").clone()
    }

    /// Polls the demo (recording its processes) until it exits or `stop` says so; `None` when
    /// `stop` ended the wait.
    fn watch(&mut self, stop: impl Fn(&str) -> bool) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the demo") {
                return Some(status);
            }
            if stop(&self.stdout()) {
                return None;
            }
            if started.elapsed() > HANG_LIMIT {
                self.child.kill().ok();
                self.child.wait().ok();
                panic!("sluice demo did not finish within {HANG_LIMIT:?}");
            }
            self.seen.extend(
                marked_processes(&self.marker)
                    .into_iter()
                    .map(|(_, name)| name),
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Everything it printed, after it exited.
    fn output(mut self, status: ExitStatus) -> (String, String, Self) {
        for reader in self.readers.drain(..) {
            reader.join().expect("output reader");
        }
        let stdout = self.stdout();
        let context = format!(
            "exit {status}\n--- stdout\n{stdout}\n--- stderr\n{}",
            self.stderr.lock().expect("output lock")
        );
        (stdout, context, self)
    }

    /// Asserts that the control plane and Prometheus were seen running and that none of the
    /// demo's processes is left.
    fn assert_nothing_left(&self) {
        for expected in ["etcd", "kube-apiserver", "prometheus"] {
            assert!(
                self.seen.iter().any(|name| name.starts_with(expected)),
                "{expected} was never seen running (saw {:?})",
                self.seen
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = marked_processes(&self.marker);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            left = marked_processes(&self.marker);
        }
        assert!(left.is_empty(), "processes left behind: {left:?}");
    }
}

#[test]
fn the_demo_promotes_a_good_version_aborts_a_bad_one_and_leaves_nothing_running() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let mut demo = Demo::start("complete");
    let status = demo.watch(|_| false).expect("the demo exits");
    let (stdout, context, demo) = demo.output(status);
    assert!(status.success(), "{context}");

    // (a) v2 promoted through the analysis, then (b) v3 aborted with the route back to stable.
    let lines: Vec<&str> = stdout.lines().collect();
    let promoted = lines
        .iter()
        .position(|line| line.starts_with("==> v2: Healthy"))
        .unwrap_or_else(|| panic!("no `v2: Healthy` line\n{context}"));
    let aborted = lines
        .iter()
        .position(|line| line.starts_with("==> v3: aborted automatically"))
        .unwrap_or_else(|| panic!("no `v3: aborted automatically` line\n{context}"));
    assert!(promoted < aborted, "{context}");
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
    demo.assert_nothing_left();
}

#[test]
fn ctrl_c_in_the_middle_stops_everything_the_demo_started() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let mut demo = Demo::start("interrupted");
    let early_exit = demo.watch(|stdout| stdout.contains("==> (a) Updating to v2"));
    assert!(
        early_exit.is_none(),
        "the demo exited before the update: {early_exit:?}\n{}",
        demo.stdout()
    );
    let interrupt = Command::new("kill")
        .args(["-INT", &demo.child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupt.success());
    let status = demo.watch(|_| false).expect("the demo exits");
    let (stdout, context, demo) = demo.output(status);
    assert_eq!(status.code(), Some(130), "{context}");
    assert!(
        stdout.contains("Stopped the controller, Prometheus and the local control plane"),
        "{context}"
    );
    assert!(!stdout.contains("==> v3:"), "{context}");
    demo.assert_nothing_left();
}
