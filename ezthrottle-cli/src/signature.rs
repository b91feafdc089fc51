//! `ezthrottle sign` and `ezthrottle verify`.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use ezthrottle_core::protocol::SIGNATURE_HEADER;
use ezthrottle_core::webhook::{Verifier, sign};
use serde_json::json;

use crate::args::{SignArgs, VerifyArgs};
use crate::output::{CliError, Output, Status};

/// Largest body read from stdin (or a job file): 16 MiB.
pub(crate) const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// `ezthrottle sign`: prints the header value for the body on stdin.
pub(crate) fn run_sign(args: &SignArgs, out: Output) -> Result<Status, CliError> {
    let body = read_bounded(std::io::stdin().lock(), "the body on stdin")?;
    let timestamp = args.timestamp.unwrap_or_else(now_unix_secs);
    let signature = sign(&args.secret, timestamp, &body);
    out.print(&signature, &json!({ "signature": signature, "timestamp": timestamp }));
    Ok(Status::Ok)
}

/// `ezthrottle verify`: prints the reason; [`Status::NotVerified`] when it does not verify.
pub(crate) fn run_verify(args: &VerifyArgs, out: Output) -> Result<Status, CliError> {
    let body = read_bounded(std::io::stdin().lock(), "the body on stdin")?;
    let mut verifier = Verifier::new(&args.secret)
        .map_err(|err| CliError::usage(format!("--secret: {err}")))?
        .tolerance(std::time::Duration::from_secs(args.tolerance));
    if let Some(secondary) = &args.secondary {
        verifier = verifier.with_secondary(secondary).map_err(|err| CliError::usage(format!("--secondary: {err}")))?;
    }
    let header = strip_header_name(&args.header);
    match verifier.verify_at(&body, header, args.now.unwrap_or_else(now_unix_secs)) {
        Ok(verified) => {
            let value = json!({ "valid": true, "reason": verified.reason(), "timestamp": verified.timestamp() });
            out.print(verified.reason(), &value);
            Ok(Status::Ok)
        }
        Err(error) => {
            let reason = error.reason();
            out.print(&reason, &json!({ "valid": false, "reason": reason }));
            Ok(Status::NotVerified)
        }
    }
}

/// `X-EZThrottle-Signature: t=..` (pasted from a request dump) becomes `t=..`.
fn strip_header_name(header: &str) -> &str {
    let trimmed = header.trim_start();
    match trimmed.split_once(':') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case(SIGNATURE_HEADER) => value.trim_start(),
        _ => header,
    }
}

/// Reads all of `input`, refusing more than [`MAX_INPUT_BYTES`] (exit 2).
pub(crate) fn read_bounded(input: impl Read, what: &str) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| CliError::usage(format!("cannot read {what}: {err}")))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(CliError::usage(format!("{what} is larger than {} MiB", MAX_INPUT_BYTES / (1024 * 1024))));
    }
    Ok(bytes)
}

fn now_unix_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_header_name_is_ignored() {
        for (pasted, value) in [
            ("X-EZThrottle-Signature: t=1,v1=ab", "t=1,v1=ab"),
            ("x-ezthrottle-signature:t=1", "t=1"),
            ("t=1,v1=ab", "t=1,v1=ab"),
        ] {
            assert_eq!(strip_header_name(pasted), value, "{pasted}");
        }
    }

    #[test]
    fn input_is_bounded() {
        let limit = usize::try_from(MAX_INPUT_BYTES).unwrap_or(usize::MAX);
        assert_eq!(read_bounded(&vec![7_u8; limit][..], "x").map(|b| b.len()).ok(), Some(limit));
        let error = read_bounded(&vec![7_u8; limit + 1][..], "the body").err().map(|e| e.code());
        assert_eq!(error, Some(crate::output::EXIT_USAGE));
    }
}
