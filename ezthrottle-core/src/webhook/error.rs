//! The error type of webhook signature verification.

use std::borrow::Cow;

/// Why a webhook signature did not verify.
///
/// [`VerifyError::reason`] gives the protocol reason string shared with the other
/// EZThrottle SDKs (`no_signature_header`, `signature_mismatch`, ...). `Display` wraps
/// it in a readable sentence.
///
/// Reply to the sender with a generic message (for example `401 Invalid webhook`) and
/// log the detail: telling an attacker which check failed helps them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature header is missing, empty or only whitespace.
    #[error("webhook signature verification failed: no_signature_header")]
    MissingHeader,
    /// The header has no non-empty `v1=` value (a `v0`-only header lands here too).
    #[error("webhook signature verification failed: missing_v1_signature")]
    MissingSignature,
    /// The `t=` value is missing, repeated, not an integer or does not fit in an `i64`.
    #[error("webhook signature verification failed: invalid_timestamp")]
    InvalidTimestamp,
    /// The timestamp is further than the tolerance from now, in either direction
    /// (a stale replay or a timestamp in the future).
    #[error(
        "webhook signature verification failed: timestamp_expired (diff={diff_secs}s, tolerance={tolerance_secs}s)"
    )]
    TimestampExpired {
        /// Absolute difference between the header's `t` and now, in seconds.
        diff_secs: u64,
        /// The configured tolerance, in whole seconds.
        tolerance_secs: u64,
    },
    /// No `v1` value matches the HMAC of any configured secret.
    #[error("webhook signature verification failed: signature_mismatch")]
    SignatureMismatch,
    /// (The free functions only, which take the secret per call.) The secret is shorter
    /// than [`MIN_SECRET_LEN`](crate::protocol::MIN_SECRET_LEN): nothing is verified with
    /// a secret anyone could guess. A [`Verifier`](super::Verifier) refuses such a secret
    /// when it is built, so it never answers this.
    #[error("webhook signature verification failed: weak_secret ({0})")]
    WeakSecret(#[from] crate::protocol::WeakSecret),
}

impl VerifyError {
    /// The protocol reason string, e.g. `signature_mismatch` or
    /// `timestamp_expired (diff=301s, tolerance=300s)`.
    ///
    /// ```
    /// use ezthrottle_core::webhook::VerifyError;
    ///
    /// assert_eq!(VerifyError::SignatureMismatch.reason(), "signature_mismatch");
    /// let expired = VerifyError::TimestampExpired { diff_secs: 301, tolerance_secs: 300 };
    /// assert_eq!(expired.reason(), "timestamp_expired (diff=301s, tolerance=300s)");
    /// ```
    #[must_use]
    pub fn reason(&self) -> Cow<'static, str> {
        match self {
            Self::MissingHeader => Cow::Borrowed("no_signature_header"),
            Self::MissingSignature => Cow::Borrowed("missing_v1_signature"),
            Self::InvalidTimestamp => Cow::Borrowed("invalid_timestamp"),
            Self::TimestampExpired { diff_secs, tolerance_secs } => {
                Cow::Owned(format!("timestamp_expired (diff={diff_secs}s, tolerance={tolerance_secs}s)"))
            }
            Self::SignatureMismatch => Cow::Borrowed("signature_mismatch"),
            Self::WeakSecret(_) => Cow::Borrowed("weak_secret"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_display() {
        let cases = [
            (VerifyError::MissingHeader, "no_signature_header"),
            (VerifyError::MissingSignature, "missing_v1_signature"),
            (VerifyError::InvalidTimestamp, "invalid_timestamp"),
            (
                VerifyError::TimestampExpired { diff_secs: 7, tolerance_secs: 5 },
                "timestamp_expired (diff=7s, tolerance=5s)",
            ),
            (VerifyError::SignatureMismatch, "signature_mismatch"),
        ];
        for (err, reason) in cases {
            assert_eq!(err.reason(), reason);
            assert_eq!(err.to_string(), format!("webhook signature verification failed: {reason}"));
        }
    }
}
