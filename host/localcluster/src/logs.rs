//! Control-plane log files: tails for error messages, printed when a test panics.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// Lines of each log printed when a test panics.
const PANIC_TAIL_LINES: usize = 30;

/// Log files of the clusters alive in this process, printed by the panic hook.
static LIVE_LOGS: Mutex<Vec<(u64, Vec<PathBuf>)>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// gRPC client chatter the 1.20 apiserver logs at the default verbosity; never informative here.
const NOISE: [&str; 4] = [
    "] parsed scheme:",
    "ccResolverWrapper: sending new addresses",
    "balancerWrapper: got update addr",
    "ClientConn switching balancer",
];

/// The last `lines` informative lines of `path`, or a note that it cannot be read.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text
                .lines()
                .filter(|line| !NOISE.iter().any(|noise| line.contains(noise)))
                .collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Tails of several logs with headers.
pub(crate) fn tails(paths: &[PathBuf], lines: usize) -> String {
    let mut out = String::new();
    for path in paths {
        out.push_str(&format!(
            "----- last {lines} lines of {} -----\n{}\n",
            path.display(),
            tail(path, lines)
        ));
    }
    out
}

/// Registers a cluster's logs so that a panicking test prints their tails.
pub(crate) fn register(id: u64, paths: Vec<PathBuf>) {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            // try_lock: never deadlock or double-panic from inside the hook.
            if let Ok(live) = LIVE_LOGS.try_lock() {
                for (_, paths) in live.iter() {
                    eprintln!(
                        "sluice-localcluster: control-plane logs at the time of the panic:\n{}",
                        tails(paths, PANIC_TAIL_LINES)
                    );
                }
            }
        }));
    });
    if let Ok(mut live) = LIVE_LOGS.lock() {
        live.push((id, paths));
    }
}

/// Forgets a cluster's logs (it is being dropped).
pub(crate) fn unregister(id: u64) {
    if let Ok(mut live) = LIVE_LOGS.lock() {
        live.retain(|(other, _)| *other != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_skips_grpc_chatter_and_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("kube-apiserver.log");
        let text = "one\nI1122 client.go:360] parsed scheme: \"endpoint\"\ntwo\nthree\n";
        std::fs::write(&log, text).expect("write");
        assert_eq!(tail(&log, 2), "two\nthree");
        assert_eq!(tail(&log, 10), "one\ntwo\nthree");
        assert!(tail(&dir.path().join("missing.log"), 3).starts_with("(cannot read"));
        assert!(tails(&[log], 1).contains("last 1 lines of"));
    }
}
