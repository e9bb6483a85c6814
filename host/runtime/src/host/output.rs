//! Captured guest stdout/stderr: bounded, never traps (excess bytes are dropped and flagged).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

#[derive(Clone)]
pub(super) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    capacity: usize,
    bytes: Vec<u8>,
    truncated: bool,
}

impl CapturedOutput {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                capacity,
                bytes: Vec::new(),
                truncated: false,
            })),
        }
    }

    /// Takes the captured text and whether some was dropped.
    pub(super) fn take(&self) -> (String, bool) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bytes = std::mem::take(&mut inner.bytes);
        let truncated = std::mem::replace(&mut inner.truncated, false);
        (String::from_utf8_lossy(&bytes).into_owned(), truncated)
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let room = inner.capacity.saturating_sub(inner.bytes.len());
        if buf.len() > room {
            inner.truncated = true;
        }
        let kept = buf.len().min(room);
        inner.bytes.extend_from_slice(&buf[..kept]);
        // Report everything as written so the guest never blocks or fails on a full buffer.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
