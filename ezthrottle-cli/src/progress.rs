//! The progress line of the waiting commands: elapsed time and state, redrawn in place on
//! stderr when stderr is a terminal, nothing at all when it is not.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How often the elapsed time is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(200);
/// Carriage return, then erase the line (ANSI `EL2`).
const CLEAR_LINE: &str = "\r\x1b[2K";

/// Whether a progress line is on screen. Everything written to the terminal while one is
/// clears it first ([`interrupt`]); the next redraw puts it back.
static DRAWN: Mutex<bool> = Mutex::new(false);

/// Runs `write` (a line on stdout or stderr) with the progress line cleared first, so the
/// two never share a line of the terminal.
pub(crate) fn interrupt<R>(write: impl FnOnce() -> R) -> R {
    let mut drawn = DRAWN.lock().unwrap_or_else(PoisonError::into_inner);
    if *drawn {
        let _ = std::io::stderr().lock().write_all(CLEAR_LINE.as_bytes());
        *drawn = false;
    }
    write()
}

/// stderr for the log lines: each clears the progress line first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        interrupt(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A progress line: `<what>  3.2s  <state>`, until dropped.
#[derive(Debug)]
pub(crate) struct Progress {
    state: Option<watch::Sender<String>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Set when dropped: a redraw already under way on another thread draws nothing.
    stopped: Arc<AtomicBool>,
}

impl Progress {
    /// Starts drawing, if stderr is a terminal; otherwise does nothing (and [`set`](Self::set)
    /// neither).
    pub(crate) fn start(what: impl Into<String>, state: impl Into<String>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { state: None, task: None, stopped: Arc::default() };
        }
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopped);
        let (sender, mut receiver) = watch::channel(state.into());
        let what = what.into();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut every = tokio::time::interval(REDRAW_EVERY);
            loop {
                let line = render(&what, start.elapsed(), &receiver.borrow_and_update());
                draw(&line, &stop);
                tokio::select! {
                    _ = every.tick() => {}
                    changed = receiver.changed() => if changed.is_err() { break },
                }
            }
        });
        Self { state: Some(sender), task: Some(task), stopped }
    }

    /// The state shown from now on (redrawn at once).
    pub(crate) fn set(&self, state: impl Into<String>) {
        if let Some(sender) = &self.state {
            sender.send_replace(state.into());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.stopped.store(true, Ordering::SeqCst);
            task.abort();
            interrupt(|| ());
        }
    }
}

/// Draws `line` over the previous one, unless the progress line was dropped meanwhile.
fn draw(line: &str, stopped: &AtomicBool) {
    let mut drawn = DRAWN.lock().unwrap_or_else(PoisonError::into_inner);
    if stopped.load(Ordering::SeqCst) {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{CLEAR_LINE}{line}");
    let _ = stderr.flush();
    *drawn = true;
}

/// `job job_1  3.2s  queued`.
fn render(what: &str, elapsed: Duration, state: &str) -> String {
    let tenths = elapsed.as_millis() / 100;
    format!("{what}  {}.{}s  {state}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_how_long_and_the_state() {
        assert_eq!(render("job job_1", Duration::from_millis(3_250), "queued"), "job job_1  3.2s  queued");
        assert_eq!(render("job job_1", Duration::ZERO, "running"), "job job_1  0.0s  running");
        assert_eq!(render("w", Duration::from_secs(125), "s"), "w  125.0s  s");
    }
}
