//! Webhook signatures: sign and verify the `X-EZThrottle-Signature` header.
//!
//! When an account has a webhook secret, EZThrottle signs each delivery:
//!
//! ```text
//! X-EZThrottle-Signature: t=<unix seconds>,v1=<lower-case hex HMAC-SHA256(secret, "<t>." + raw body)>
//! ```
//!
//! (the header name is [`crate::protocol::SIGNATURE_HEADER`]). The key is the secret
//! string's UTF-8 bytes and the body is hashed as raw bytes, so verify the body exactly
//! as received, before parsing it.
//!
//! - [`Verifier`] is the main entry point: build it once with your secret (and, while
//!   rotating, a secondary secret; each at least
//!   [`MIN_SECRET_LEN`](crate::protocol::MIN_SECRET_LEN) characters, else
//!   [`WeakSecret`](crate::protocol::WeakSecret)), then call [`Verifier::verify`] per request. It
//!   accepts the request if *any* `v1` value matches *any* configured secret, checks
//!   the timestamp is within a symmetric tolerance (300 s by default), compares in
//!   constant time and never panics on malformed input.
//! - [`sign`] builds a header value, for tests.
//! - [`verify_webhook_signature`], [`verify_webhook_signature_strict`] and
//!   [`try_verify_with_secrets`] mirror the helpers of the Python, Node and Go SDKs.
//! - [`SignatureHeader`] is the header parser on its own.
//!
//! Failures carry a [`VerifyError`] whose [`reason`](VerifyError::reason) is one of the
//! protocol strings `no_signature_header`, `missing_v1_signature`, `invalid_timestamp`,
//! `timestamp_expired (diff=<d>s, tolerance=<t>s)`, `signature_mismatch` or (the free
//! functions only) `weak_secret`.
//!
//! ```
//! use ezthrottle_core::webhook::{sign, SecretSlot, Verifier, VerifyError};
//!
//! let body = br#"{"job_id":"job_1","status":"success"}"#;
//! let now = 1_700_000_000;
//! let header = sign("whsec_current_0123456", now, body);
//!
//! let verifier = Verifier::new("whsec_current_0123456")?;
//! let verified = verifier.verify_at(body, &header, now + 2)?;
//! assert_eq!(verified.timestamp(), now);
//!
//! // A tampered body fails.
//! let err = verifier.verify_at(b"{}", &header, now + 2).unwrap_err();
//! assert_eq!(err, VerifyError::SignatureMismatch);
//!
//! // Rotation: the new secret is primary, the old one still verifies as secondary.
//! let rotating = Verifier::new("whsec_next_0123456789")?.with_secondary("whsec_current_0123456")?;
//! let verified = rotating.verify_at(body, &header, now + 2)?;
//! assert_eq!(verified.secret(), SecretSlot::Secondary);
//! assert_eq!(verified.reason(), "valid_secondary");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod compat;
mod error;
mod header;
mod sign;
mod verifier;

pub use compat::{try_verify_with_secrets, verify_webhook_signature, verify_webhook_signature_strict};
pub use error::VerifyError;
pub use header::SignatureHeader;
pub use sign::sign;
pub use verifier::{SecretSlot, Verified, Verifier};
