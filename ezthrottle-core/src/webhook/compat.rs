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
/// let header = sign("my_secret_0123456789", now, b"{}");
/// assert_eq!(verify_webhook_signature(b"{}", &header, "my_secret_0123456789", 300), (true, "valid".to_owned()));
/// assert_eq!(
///     verify_webhook_signature(b"{}", &header, "other_secret_0123456789", 300),
///     (false, "signature_mismatch".to_owned()),
/// );
/// // A secret under 16 characters verifies nothing.
/// assert_eq!(verify_webhook_signature(b"{}", &sign("", now, b"{}"), "", 300), (false, "weak_secret".to_owned()));
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
/// The [`VerifyError`] describing the first failed check ([`VerifyError::WeakSecret`] for
/// a secret under [`MIN_SECRET_LEN`](crate::protocol::MIN_SECRET_LEN) characters).
pub fn verify_webhook_signature_strict(
    body: &[u8],
    header: &str,
    secret: &str,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    Verifier::new(secret)?.tolerance(Duration::from_secs(tolerance_secs)).verify(body, header).map(|_| ())
}

/// Verifies with a primary and an optional secondary secret (for rotation):
/// `(true, "valid_primary")`, `(true, "valid_secondary")` or `(false, reason)`.
///
/// An empty secondary counts as none; a primary or secondary under
/// [`MIN_SECRET_LEN`](crate::protocol::MIN_SECRET_LEN) characters gives
/// `(false, "weak_secret")`. On failure the reason is the plain protocol reason (the
/// checks before the HMAC do not depend on the secret).
#[must_use]
pub fn try_verify_with_secrets(
    body: &[u8],
    header: &str,
    primary: &str,
    secondary: Option<&str>,
    tolerance_secs: u64,
) -> (bool, String) {
    let verifier = Verifier::new(primary)
        .and_then(|verifier| verifier.with_secondary(secondary.unwrap_or_default()))
        .map_err(VerifyError::from)
        .map(|verifier| verifier.tolerance(Duration::from_secs(tolerance_secs)));
    match verifier.and_then(|verifier| verifier.verify(body, header)) {
        Ok(ok) => (true, ok.reason().to_owned()),
        Err(err) => (false, err.reason().into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::sign;
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    const S1: &str = "first_secret_0123456";
    const S2: &str = "second_secret_012345";
    const OLD: &str = "old_secret_0123456789";
    const NEW: &str = "new_secret_0123456789";

    fn now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn single_secret() {
        let header = sign(S1, now(), b"body");
        assert_eq!(verify_webhook_signature(b"body", &header, S1, 300), (true, "valid".into()));
        assert_eq!(verify_webhook_signature(b"body", "", S1, 300), (false, "no_signature_header".into()));
        assert_eq!(verify_webhook_signature_strict(b"body", &header, S2, 300), Err(VerifyError::SignatureMismatch));
        let old = sign(S1, now() - 1000, b"body");
        let (ok, reason) = verify_webhook_signature(b"body", &old, S1, 300);
        assert!(!ok);
        assert!(reason.starts_with("timestamp_expired (diff=10"), "{reason}");
        assert!(reason.ends_with("s, tolerance=300s)"), "{reason}");
    }

    #[test]
    fn two_secrets() {
        let by_old = sign(OLD, now(), b"b");
        let by_new = sign(NEW, now(), b"b");
        assert_eq!(try_verify_with_secrets(b"b", &by_new, NEW, Some(OLD), 300), (true, "valid_primary".into()));
        assert_eq!(try_verify_with_secrets(b"b", &by_old, NEW, Some(OLD), 300), (true, "valid_secondary".into()));
        assert_eq!(try_verify_with_secrets(b"b", &by_old, NEW, Some(""), 300), (false, "signature_mismatch".into()));
        assert_eq!(try_verify_with_secrets(b"b", &by_old, NEW, None, 300), (false, "signature_mismatch".into()));
        assert_eq!(try_verify_with_secrets(b"b", "t=1", NEW, Some(OLD), 300), (false, "missing_v1_signature".into()));
        assert_eq!(try_verify_with_secrets(b"b", &by_new, NEW, Some("short"), 300), (false, "weak_secret".into()));
        assert_eq!(try_verify_with_secrets(b"b", &sign("", now(), b"b"), "", None, 300), (false, "weak_secret".into()));
    }
}
