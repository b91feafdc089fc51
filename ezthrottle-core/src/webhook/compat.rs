//! Free functions with the same shape as the Python, Node and Go SDK helpers.

use std::time::Duration;

use super::{Verifier, VerifyError};

/// Verifies `header` for `body` with one secret, as the other EZThrottle SDKs do:
/// `(true, "valid")` or `(false, reason)` with a protocol reason string such as
/// `signature_mismatch`.
///
/// Uses the system clock. Prefer a [`Verifier`] built once when verifying many requests.
///
/// ```
/// use ezthrottle_core::webhook::{sign, verify_webhook_signature};
///
/// use std::time::{SystemTime, UNIX_EPOCH};
///
/// let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
/// let now = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
/// let header = sign("my_secret", now, b"{}");
/// assert_eq!(verify_webhook_signature(b"{}", &header, "my_secret", 300), (true, "valid".to_owned()));
/// assert_eq!(
///     verify_webhook_signature(b"{}", &header, "other_secret", 300),
///     (false, "signature_mismatch".to_owned()),
/// );
/// ```
#[must_use]
pub fn verify_webhook_signature(body: &[u8], header: &str, secret: &str, tolerance_secs: u64) -> (bool, String) {
    match verify_webhook_signature_strict(body, header, secret, tolerance_secs) {
        Ok(()) => (true, "valid".to_owned()),
        Err(err) => (false, err.reason().into_owned()),
    }
}

/// Like [`verify_webhook_signature`], but returns an error instead of a reason string.
///
/// # Errors
///
/// The [`VerifyError`] describing the first failed check.
pub fn verify_webhook_signature_strict(
    body: &[u8],
    header: &str,
    secret: &str,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    Verifier::new(secret).tolerance(Duration::from_secs(tolerance_secs)).verify(body, header).map(|_| ())
}

/// Verifies with a primary and an optional secondary secret (for rotation):
/// `(true, "valid_primary")`, `(true, "valid_secondary")` or `(false, reason)`.
///
/// An empty secondary counts as none. On failure the reason is the plain protocol
/// reason (the checks before the HMAC do not depend on the secret).
#[must_use]
pub fn try_verify_with_secrets(
    body: &[u8],
    header: &str,
    primary: &str,
    secondary: Option<&str>,
    tolerance_secs: u64,
) -> (bool, String) {
    let verifier = Verifier::new(primary)
        .with_secondary(secondary.unwrap_or_default())
        .tolerance(Duration::from_secs(tolerance_secs));
    match verifier.verify(body, header) {
        Ok(ok) => (true, ok.reason().to_owned()),
        Err(err) => (false, err.reason().into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::sign;
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn single_secret() {
        let header = sign("s1", now(), b"body");
        assert_eq!(verify_webhook_signature(b"body", &header, "s1", 300), (true, "valid".into()));
        assert_eq!(verify_webhook_signature(b"body", "", "s1", 300), (false, "no_signature_header".into()));
        assert_eq!(verify_webhook_signature_strict(b"body", &header, "s2", 300), Err(VerifyError::SignatureMismatch));
        let old = sign("s1", now() - 1000, b"body");
        let (ok, reason) = verify_webhook_signature(b"body", &old, "s1", 300);
        assert!(!ok);
        assert!(reason.starts_with("timestamp_expired (diff=10"), "{reason}");
        assert!(reason.ends_with("s, tolerance=300s)"), "{reason}");
    }

    #[test]
    fn two_secrets() {
        let by_old = sign("old", now(), b"b");
        let by_new = sign("new", now(), b"b");
        assert_eq!(try_verify_with_secrets(b"b", &by_new, "new", Some("old"), 300), (true, "valid_primary".into()));
        assert_eq!(try_verify_with_secrets(b"b", &by_old, "new", Some("old"), 300), (true, "valid_secondary".into()));
        assert_eq!(try_verify_with_secrets(b"b", &by_old, "new", Some(""), 300), (false, "signature_mismatch".into()));
        assert_eq!(try_verify_with_secrets(b"b", &by_old, "new", None, 300), (false, "signature_mismatch".into()));
        assert_eq!(
            try_verify_with_secrets(b"b", "t=1", "new", Some("old"), 300),
            (false, "missing_v1_signature".into())
        );
    }
}
