//! An answer body that never ends, for proving a middleware streams instead of buffering.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Opened once the test got the answer's head; an [`EndlessChunks`] past its first
/// chunks waits for it.
#[derive(Debug, Default)]
pub struct Gate {
    open: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    /// Opens it, waking the body waiting on it.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            waker.wake();
        }
    }

    fn poll_open(&self, cx: &Context<'_>) -> Poll<()> {
        if self.open.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *self.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cx.waker().clone());
        // Opened between the first look and the waker's registration: go on.
        if self.open.load(Ordering::SeqCst) { Poll::Ready(()) } else { Poll::Pending }
    }
}

/// 1 KiB chunks of `x`, forever. After `before_gate` of them it waits for its [`Gate`]:
/// a middleware that buffered the whole answer would never answer, and holds only
/// `before_gate` KiB meanwhile. Each crate's tests wrap it in their body trait.
#[derive(Debug)]
pub struct EndlessChunks {
    produced: usize,
    before_gate: usize,
    gate: Arc<Gate>,
}

impl EndlessChunks {
    /// Chunks, waiting for `gate` after `before_gate` of them.
    #[must_use]
    pub fn new(before_gate: usize, gate: Arc<Gate>) -> Self {
        Self { produced: 0, before_gate, gate }
    }

    /// The next chunk.
    pub fn poll_chunk(&mut self, cx: &Context<'_>) -> Poll<Bytes> {
        if self.produced >= self.before_gate && self.gate.poll_open(cx).is_pending() {
            return Poll::Pending;
        }
        self.produced += 1;
        Poll::Ready(Bytes::from_static(&[b'x'; 1024]))
    }
}
