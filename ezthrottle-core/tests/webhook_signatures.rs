//! Property tests for webhook signature verification: no panics on arbitrary input,
//! valid signatures always verify, and any single-byte tampering is rejected.

use ezthrottle_core::webhook::{SignatureHeader, Verifier, VerifyError, sign};
use proptest::prelude::*;

const TOLERANCE: i64 = 300;

/// Header-ish strings: mostly the alphabet the parser cares about, plus anything.
fn header_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[tv0-9a-f=, \t+-]{0,120}",
        any::<String>(),
        (any::<i64>(), "[0-9a-fA-F]{0,70}", "[ ,=v0-9]{0,8}")
            .prop_map(|(t, sig, junk)| format!("t={t},v1={sig}{junk}")),
    ]
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..512)
}

/// Secrets of the shortest accepted length and up, including non-ASCII ones.
fn secret_strategy() -> impl Strategy<Value = String> {
    prop_oneof![".{16,80}", "[a-zA-Z0-9_]{16,80}"]
}

proptest! {
    #[test]
    fn verify_at_never_panics(
        header in header_strategy(),
        body in body_strategy(),
        now in any::<i64>(),
        tolerance in any::<u64>(),
    ) {
        let verifier = Verifier::new("whsec_test_0123456789").unwrap()
            .with_secondary("whsec_old_0123456789").unwrap()
            .tolerance(std::time::Duration::from_secs(tolerance));
        let result = verifier.verify_at(&body, &header, now);
        // Random input essentially never carries a valid HMAC.
        prop_assert!(result.is_err());
        if let Ok(parsed) = SignatureHeader::parse(&header) {
            let _ = verifier.verify_at(&body, &header, parsed.timestamp());
            prop_assert!(parsed.v1_signatures().count() > 0);
        }
    }

    #[test]
    fn valid_signature_always_verifies(
        secret in secret_strategy(),
        timestamp in any::<i64>(),
        skew in -TOLERANCE..=TOLERANCE,
        body in body_strategy(),
    ) {
        let header = sign(&secret, timestamp, &body);
        let now = timestamp.saturating_add(skew);
        let verified = Verifier::new(&secret).unwrap().verify_at(&body, &header, now);
        prop_assert_eq!(verified.map(|v| v.timestamp()), Ok(timestamp));
        // Also as the secondary, behind a different primary.
        let rotating = Verifier::new(format!("{secret}-next")).unwrap().with_secondary(&secret).unwrap();
        prop_assert_eq!(
            rotating.verify_at(&body, &header, now).map(|v| v.reason()),
            Ok("valid_secondary")
        );
    }

    #[test]
    fn flipped_body_byte_never_verifies(
        secret in secret_strategy(),
        timestamp in any::<i64>(),
        body in proptest::collection::vec(any::<u8>(), 1..512),
        index in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let header = sign(&secret, timestamp, &body);
        let mut tampered = body.clone();
        let i = index.index(tampered.len());
        tampered[i] ^= flip;
        prop_assert_eq!(
            Verifier::new(&secret).unwrap().verify_at(&tampered, &header, timestamp),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn flipped_hex_char_never_verifies(
        secret in secret_strategy(),
        timestamp in any::<i64>(),
        body in body_strategy(),
        index in any::<prop::sample::Index>(),
        replacement in prop::sample::select(b"0123456789abcdef".to_vec()),
    ) {
        let header = sign(&secret, timestamp, &body);
        let (prefix, hex) = header.split_once(",v1=").unwrap();
        let mut hex = hex.as_bytes().to_vec();
        prop_assert_eq!(hex.len(), 64);
        let i = index.index(hex.len());
        prop_assume!(hex[i] != replacement);
        hex[i] = replacement;
        let tampered = format!("{prefix},v1={}", String::from_utf8(hex).unwrap());
        prop_assert_eq!(
            Verifier::new(&secret).unwrap().verify_at(&body, &tampered, timestamp),
            Err(VerifyError::SignatureMismatch)
        );
    }

    /// What a server checks before reading the body (`check_header_at`) refuses exactly
    /// what `verify_at` refuses before looking at the body: a refusal there is the same
    /// error with any body, and a header it accepts fails `verify_at` only on the HMAC.
    #[test]
    fn check_header_agrees_with_verify(
        header in header_strategy(),
        body in body_strategy(),
        now in any::<i64>(),
        tolerance in prop_oneof![Just(300u64), any::<u64>()],
    ) {
        let verifier = Verifier::new("whsec_test_secret_0123").unwrap()
            .tolerance(std::time::Duration::from_secs(tolerance));
        match verifier.check_header_at(&header, now) {
            Err(err) => prop_assert_eq!(verifier.verify_at(&body, &header, now), Err(err)),
            Ok(parsed) => {
                prop_assert_eq!(Ok(parsed), SignatureHeader::parse(&header));
                prop_assert_eq!(verifier.verify_at(&body, &header, now), Err(VerifyError::SignatureMismatch));
            }
        }
    }

    /// A signed header passes the pre-check within the tolerance and fails it just past.
    #[test]
    fn check_header_is_the_tolerance_window(
        timestamp in any::<i64>(),
        skew in -TOLERANCE..=TOLERANCE,
        body in body_strategy(),
    ) {
        let verifier = Verifier::new("whsec_test_secret_0123").unwrap();
        let header = sign("whsec_test_secret_0123", timestamp, &body);
        prop_assert!(verifier.check_header_at(&header, timestamp.saturating_add(skew)).is_ok());
        if let Some(late) = timestamp.checked_add(TOLERANCE + 1) {
            let expired = matches!(verifier.check_header_at(&header, late), Err(VerifyError::TimestampExpired { .. }));
            prop_assert!(expired);
        }
    }
}
