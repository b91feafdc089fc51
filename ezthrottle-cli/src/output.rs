//! Exit codes, errors in plain words (or JSON), and printing results.

use std::fmt;
use std::io::Write as _;

/// The signature did not verify (`verify` only).
pub(crate) const EXIT_NOT_VERIFIED: u8 = 1;
/// A usage error or invalid input: nothing was sent (clap uses 2 as well).
pub(crate) const EXIT_USAGE: u8 = 2;
/// The request or the service failed (any failure without a code of its own).
pub(crate) const EXIT_FAILED: u8 = 3;
/// Timed out: a wait (`submit --wait`, `job --wait`, `job --follow`) or a call to
/// EZThrottle that got no answer within `--request-timeout`.
pub(crate) const EXIT_TIMED_OUT: u8 = 4;
/// Not found: the job, or the webhook secrets.
pub(crate) const EXIT_NOT_FOUND: u8 = 5;
/// EZThrottle unreachable: nothing was sent (connection refused, DNS, TLS, or the
/// client's circuit breaker is open).
pub(crate) const EXIT_UNREACHABLE: u8 = 6;
/// Unauthorised: the API key was refused (401) or may not do this (403).
pub(crate) const EXIT_UNAUTHORIZED: u8 = 7;

/// How a command ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Exit 0.
    Ok,
    /// `verify`: the signature did not verify (exit 1).
    NotVerified,
}

/// A failure, with its exit code and its message (the whole source chain).
#[derive(Debug)]
pub(crate) struct CliError {
    code: u8,
    message: String,
}

impl CliError {
    /// Exit 2: the input is wrong, nothing was sent.
    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        Self { code: EXIT_USAGE, message: message.to_string() }
    }

    /// Exit 3: the request or the service failed.
    pub(crate) fn failed(message: impl fmt::Display) -> Self {
        Self { code: EXIT_FAILED, message: message.to_string() }
    }

    /// Exit 4: a wait (for a webhook, for a job to finish) timed out.
    pub(crate) fn timed_out(message: impl fmt::Display) -> Self {
        Self { code: EXIT_TIMED_OUT, message: message.to_string() }
    }

    /// `context: <error and its sources>`, exit 3.
    pub(crate) fn failed_with(context: impl fmt::Display, error: &(dyn std::error::Error + 'static)) -> Self {
        Self::failed(format!("{context}: {}", describe(error)))
    }

    /// The exit code.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }
}

impl From<ezthrottle_core::Error> for CliError {
    fn from(error: ezthrottle_core::Error) -> Self {
        use ezthrottle_core::Error;
        let message = match &error {
            Error::NoWebhookSecrets => {
                "no webhook secrets configured (set them with `ezthrottle secrets create`)".to_owned()
            }
            other => describe(other),
        };
        Self { code: exit_code(&error), message }
    }
}

/// The exit code of a client error: the distinct cases a script tells apart, 3 for the rest.
fn exit_code(error: &ezthrottle_core::Error) -> u8 {
    use ezthrottle_core::Error;
    match error {
        Error::Config(_) | Error::InvalidInput { .. } => EXIT_USAGE,
        Error::WaitTimedOut { .. } => EXIT_TIMED_OUT,
        // Sent, and no answer within --request-timeout.
        Error::Transport { source, .. } if source.is_timeout() => EXIT_TIMED_OUT,
        Error::JobNotFound { .. } | Error::NoWebhookSecrets => EXIT_NOT_FOUND,
        Error::Unreachable { .. } | Error::EZThrottleUnavailable { .. } => EXIT_UNREACHABLE,
        Error::Unauthorized { .. } | Error::Forbidden { .. } => EXIT_UNAUTHORIZED,
        Error::Forward { source, .. } => exit_code(source),
        _ => EXIT_FAILED,
    }
}

/// The error's message followed by each source whose text it does not already contain.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    ezthrottle_core::ErrorChain(error).to_string()
}

/// Prints results as text or JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// `--json`.
    pub(crate) json: bool,
}

impl Output {
    /// Prints `value` as one line of JSON when `--json`, else `text` (if not empty).
    pub(crate) fn print(&self, text: &str, value: &serde_json::Value) {
        if self.json {
            line(&value.to_string());
        } else if !text.is_empty() {
            line(text.strip_suffix('\n').unwrap_or(text));
        }
    }

    /// Prints an error on stderr: `ezthrottle: <message>`, or `{"error": ..., "exit_code": N}`.
    pub(crate) fn error(&self, error: &CliError) {
        let text = if self.json {
            serde_json::json!({ "error": error.message, "exit_code": error.code }).to_string()
        } else {
            format!("ezthrottle: {}", error.message)
        };
        crate::progress::interrupt(|| {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{text}");
        });
    }
}

/// Writes one line on stdout and flushes; a closed stdout (`| head`) is not an error.
/// A progress line on the terminal is cleared first.
pub(crate) fn line(text: &str) {
    crate::progress::interrupt(|| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer failed")
        }
    }
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection refused")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    impl std::error::Error for Inner {}

    #[test]
    fn describes_the_source_chain_once() {
        assert_eq!(describe(&Outer(Inner)), "outer failed: connection refused");
        assert_eq!(describe(&Inner), "connection refused");
    }

    #[test]
    fn core_errors_map_to_exit_codes() {
        let invalid = ezthrottle_core::Error::InvalidInput { field: "url".into(), reason: "is required".into() };
        let invalid = CliError::from(invalid);
        assert_eq!((invalid.code(), invalid.message.as_str()), (EXIT_USAGE, "invalid url: is required"));
        assert_eq!(CliError::from(ezthrottle_core::Error::NoWebhookSecrets).code(), EXIT_NOT_FOUND);
    }
}
