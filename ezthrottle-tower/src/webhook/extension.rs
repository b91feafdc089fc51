//! [`VerifiedRequest`]: the request extension a verifying middleware leaves for the
//! extractors, bound to the bytes it verified.

use bytes::Bytes;
use ezthrottle_core::webhook::{SecretSlot, Verified};

/// Put in the request extensions by [`VerifyWebhook`](super::VerifyWebhook) (and
/// `ezthrottle-actix`'s middleware) for each verified delivery.
///
/// It holds the verified bytes themselves (the same buffer the request goes on with, so
/// no copy), and an extractor trusts it only for a body equal to them
/// ([`verified_for`](Self::verified_for)): a body swapped after verification, or the
/// extension copied onto another request, is verified again from the signature header
/// and refused if it does not match. It cannot be built outside this crate except by
/// verifying a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    verified: Verified,
    body: Bytes,
}

impl VerifiedRequest {
    /// Only [`verify_body`](super::request::verify_body) makes one, after a successful
    /// verification of `body`.
    pub(crate) fn new(verified: Verified, body: Bytes) -> Self {
        Self { verified, body }
    }

    /// The verification result (timestamp, protocol reason).
    #[must_use]
    pub fn verified(&self) -> Verified {
        self.verified
    }

    /// Which secret matched: during a rotation, `Secondary` means the sender still signs
    /// with the old secret.
    #[must_use]
    pub fn secret(&self) -> SecretSlot {
        self.verified.secret()
    }

    /// The body that verified, exactly as signed.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The verification result if `body` is the body that verified, `None` otherwise.
    #[must_use]
    pub fn verified_for(&self, body: &[u8]) -> Option<Verified> {
        (self.body.as_ref() == body).then_some(self.verified)
    }
}
