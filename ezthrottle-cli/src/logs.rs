//! `-v` / `-vv`: the tracing subscriber of every command, writing to stderr.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The filter: `RUST_LOG` when it is set (and not empty), else what `-v` asks for.
///
/// Without `-v`, `local` logs at info (its access log) and the other commands log nothing
/// (their stderr is for errors, which `--json` prints as one JSON document). `-v` is info
/// for the `ezthrottle*` targets, `-vv` debug.
pub(crate) fn filter(verbose: u8, local: bool) -> EnvFilter {
    let from_env = std::env::var_os(EnvFilter::DEFAULT_ENV).is_some_and(|value| !value.is_empty());
    if from_env && let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    EnvFilter::new(directives(verbose, local))
}

/// The directives of `-v` (directive targets are prefixes: `ezthrottle` covers
/// `ezthrottle_core`, `ezthrottle_local`, `ezthrottle::client`, this binary's own, ...).
fn directives(verbose: u8, local: bool) -> &'static str {
    match (verbose, local) {
        (0, false) => "off",
        (0 | 1, true) => "info",
        (1, false) => "ezthrottle=info",
        (_, false) => "ezthrottle=debug",
        (_, true) => "info,ezthrottle=debug",
    }
}

/// Installs the subscriber: events to stderr (clearing a progress line first), coloured
/// only on a terminal.
pub(crate) fn init(verbose: u8, local: bool) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(verbose, local))
        .with_writer(|| crate::progress::Stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
