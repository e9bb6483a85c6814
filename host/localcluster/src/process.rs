//! Child processes of a cluster and the watchdog that kills them if the test process dies.
//!
//! Children are killed on [`Drop`]. A cluster kept in a `static` is never dropped, and a test
//! process may be killed outright, so every cluster also starts a tiny watchdog shell in its own
//! process group. The watchdog reads child pids from a pipe whose write end only this process holds
//! (std opens pipes close-on-exec); when that end closes without a `disarm` line (the process
//! exited, panicked or was killed), the watchdog kills the children's process groups and removes
//! the cluster's temporary directory.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::Error;

const WATCHDOG_SCRIPT: &str = r#"
pids=""
while IFS= read -r line; do
    case "$line" in
        disarm) exit 0 ;;
        *) pids="$pids $line" ;;
    esac
done
for p in $pids; do
    kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null
done
if [ -n "$1" ]; then
    sleep 1
    rm -rf -- "$1"
fi
"#;

/// Kills the registered processes (and removes a directory) when this process goes away.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts the watchdog; `cleanup_dir` is removed after the kill, unless `None`.
    pub(crate) fn start(cleanup_dir: Option<&Path>) -> Result<Self, Error> {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("sluice-localcluster-watchdog")
            .arg(cleanup_dir.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Own process group: a Ctrl-C aimed at the test process must not kill the watchdog.
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(Error::io("starting the watchdog (/bin/sh)"))?;
        let pipe = child.stdin.take();
        Ok(Self { child, pipe })
    }

    /// Registers a process (group leader) to kill.
    pub(crate) fn watch(&mut self, pid: u32) -> Result<(), Error> {
        let pipe = self
            .pipe
            .as_mut()
            .ok_or_else(|| Error::io("watchdog")(std::io::ErrorKind::BrokenPipe.into()))?;
        writeln!(pipe, "{pid}")
            .and_then(|()| pipe.flush())
            .map_err(Error::io("registering a process with the watchdog"))
    }

    /// Tells the watchdog that everything was cleaned up normally.
    fn disarm(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            // If the watchdog is gone already there is nothing left to tell it.
            let _ = writeln!(pipe, "disarm").and_then(|()| pipe.flush());
        }
        let _ = self.child.wait();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// A control-plane process whose output goes to a log file; killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Supervised {
    name: &'static str,
    child: Child,
}

impl Supervised {
    /// Spawns `command` in its own process group with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
        watchdog: &mut Watchdog,
    ) -> Result<Self, Error> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(Error::io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("opening {}", log.display())))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        tracing::debug!(process = name, ?command, "starting");
        let child = command
            .spawn()
            .map_err(Error::io(format!("starting {name}")))?;
        let supervised = Self { name, child };
        watchdog.watch(supervised.child.id())?;
        Ok(supervised)
    }

    /// `Some(description)` if the process has exited.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            Ok(None) => None,
            Err(e) => Some(format!("{} cannot be waited for: {e}", self.name)),
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Errors mean the process is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
