//! Fuzzes the `X-EZThrottle-Signature` parser and verifier.
//!
//! Input layout: `<header bytes> 0xFF <body bytes>` (no 0xFF: the whole input is the
//! header and the body is empty). Run with `cargo +nightly fuzz run signature_header`.
#![no_main]

use ezthrottle_core::webhook::{SignatureHeader, Verifier, VerifyError, sign};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_fuzz_primary_01";
const OTHER: &str = "whsec_fuzz_previous_01";

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == 0xFF) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let verifier = Verifier::new(SECRET).unwrap().with_secondary(OTHER).unwrap();

    // Parsing and verification never panic, at any time.
    let parsed = SignatureHeader::parse(header);
    let at_zero = verifier.verify_at(body, header, 0);
    let late = parsed.as_ref().map_or(0, |p| p.timestamp().saturating_add(301));
    match parsed {
        Ok(parsed) => {
            assert!(parsed.v1_signatures().next().is_some());
            let _ = parsed.v1_signatures().count();
            // At the header's own time only the HMAC can fail (forging one is not
            // something a fuzzer does).
            assert_eq!(verifier.verify_at(body, header, parsed.timestamp()), Err(VerifyError::SignatureMismatch));
        }
        Err(err) => assert_eq!(at_zero, Err(err)),
    }
    // What a server refuses before reading the body is what the full verification
    // refuses, at any time.
    for now in [0, i64::MIN, i64::MAX, late] {
        match verifier.check_header_at(header, now) {
            Err(err) => assert_eq!(verifier.verify_at(body, header, now), Err(err)),
            Ok(_) => assert_eq!(verifier.verify_at(body, header, now), Err(VerifyError::SignatureMismatch)),
        }
    }

    // Round trip: a header produced by `sign` always verifies, with either secret,
    // even with the fuzzed header appended as extra pairs.
    let t = i64::from_le_bytes(body.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_default());
    let signed = sign(OTHER, t, body);
    assert_eq!(verifier.verify_at(body, &signed, t).map(|v| v.reason()), Ok("valid_secondary"));
    if !header.contains("t=") {
        let extended = format!("{signed},{header}");
        assert!(verifier.verify_at(body, &extended, t).is_ok());
    }
});
