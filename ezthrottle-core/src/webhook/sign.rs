//! HMAC-SHA256 keying, tag computation and header signing.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub(super) type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag in bytes.
pub(super) const TAG_LEN: usize = 32;

/// Builds the keyed HMAC state for `secret` (the secret's bytes are the key).
///
/// HMAC accepts keys of any length; this does the RFC 2104 key preparation
/// (hash keys longer than a block, zero-pad the rest) so the block-sized,
/// infallible constructor can be used and nothing needs unwrapping.
pub(super) fn keyed(secret: &[u8]) -> HmacSha256 {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    if secret.len() > block.len() {
        let hashed = Sha256::digest(secret);
        for (dst, src) in block.iter_mut().zip(hashed.iter()) {
            *dst = *src;
        }
    } else {
        for (dst, src) in block.iter_mut().zip(secret) {
            *dst = *src;
        }
    }
    <HmacSha256 as KeyInit>::new(&block)
}

/// `HMAC(key, "<t>." + body)`, from an already keyed state.
pub(super) fn tag(keyed: &HmacSha256, timestamp_text: &str, body: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = keyed.clone();
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Signs `body` as EZThrottle does and returns the full header value,
/// `t=<timestamp>,v1=<lower-case hex HMAC-SHA256(secret, "<timestamp>." + body)>`.
///
/// The key is the UTF-8 bytes of `secret`, used as is (a `whsec_` prefix, if any,
/// is part of the key). The body is any bytes; it need not be UTF-8. Use this in
/// tests to build requests your webhook handler must accept.
///
/// ```
/// use ezthrottle_core::webhook::sign;
///
/// assert_eq!(
///     sign("secret_key_at_least_16", 1_700_000_000, br#"{"a":1}"#),
///     "t=1700000000,v1=8e9ec2c2f7da47514ac06bcf36a5855009f0a9ee7eb7e30524026df00cd52474",
/// );
/// ```
#[must_use]
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let tag = tag(&keyed(secret.as_bytes()), &t, body);
    format!("t={t},v1={}", hex::encode(tag))
}

/// Decodes a 64-character lower-case hex string into a tag. Anything else
/// (wrong length, upper case, non-hex) is `None`.
pub(super) fn decode_tag(hex: &str) -> Option<[u8; TAG_LEN]> {
    let digits: &[u8; 2 * TAG_LEN] = hex.as_bytes().try_into().ok()?;
    let (pairs, _) = digits.as_chunks::<2>();
    let mut out = [0_u8; TAG_LEN];
    let mut valid = true;
    for (dst, [hi, lo]) in out.iter_mut().zip(pairs) {
        let (hi, hi_ok) = nibble(*hi);
        let (lo, lo_ok) = nibble(*lo);
        *dst = (hi << 4) | lo;
        valid &= hi_ok & lo_ok;
    }
    valid.then_some(out)
}

/// The value of a lower-case hex digit and whether `c` is one (no early exit, so
/// the decoding loop stays branch-free).
#[inline(always)]
fn nibble(c: u8) -> (u8, bool) {
    let digit = c.wrapping_sub(b'0');
    let letter = c.wrapping_sub(b'a');
    if digit < 10 { (digit, true) } else { (letter.wrapping_add(10) & 0x0f, letter < 6) }
}

/// Constant-time equality of two tags, compared as four 64-bit words.
pub(super) fn tags_equal(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    words(a).ct_eq(&words(b))
}

fn words(tag: &[u8; TAG_LEN]) -> [u64; TAG_LEN / 8] {
    let (chunks, _) = tag.as_chunks::<8>();
    let mut words = [0_u64; TAG_LEN / 8];
    for (word, chunk) in words.iter_mut().zip(chunks) {
        *word = u64::from_ne_bytes(*chunk);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from Python: hmac.new(key, msg, hashlib.sha256).hexdigest()
    #[test]
    fn known_vectors() {
        assert_eq!(
            sign("secret_key_at_least_16", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=8e9ec2c2f7da47514ac06bcf36a5855009f0a9ee7eb7e30524026df00cd52474"
        );
        // Key longer than a block (hashed first) and exactly one block.
        assert_eq!(
            sign(&"k".repeat(100), 1_700_000_000, b"hello"),
            "t=1700000000,v1=0e8d224aefc4953ac5f6c791d5ebec57dfbc0cde3ffbdbab5ee3cad02a696eba"
        );
        assert_eq!(
            sign(&"x".repeat(64), 1_700_000_000, b"hello"),
            "t=1700000000,v1=d208d1aeae25f06d216f7c1b11288a026a3f8ec074a9e8210ed60064cf740e52"
        );
        assert_eq!(sign("", 0, b""), "t=0,v1=b849d5a581847b281957065739df36df2463d1977ea8d6e1e4e6cf33fadc68c3");
        // Non-ASCII key, negative timestamp, non-UTF-8 body.
        assert_eq!(
            sign("sécrét", -5, b"\xff\xfe\x00"),
            "t=-5,v1=07044472474b0e27e5c5c269b67d16705715a6f10610a2c3226d1c9a03c6253e"
        );
    }

    #[test]
    fn keyed_matches_new_from_slice() {
        for len in [0, 1, 63, 64, 65, 200] {
            let key = vec![0xA5_u8; len];
            let ours = tag(&keyed(&key), "1", b"x");
            let theirs: [u8; TAG_LEN] =
                HmacSha256::new_from_slice(&key).unwrap().chain_update(b"1.x").finalize().into_bytes().into();
            assert_eq!(ours, theirs, "key length {len}");
        }
    }

    #[test]
    fn decode_tag_is_strict() {
        let good = "00ff".repeat(16);
        assert_eq!(decode_tag(&good).unwrap()[1], 0xff);
        assert!(decode_tag(&good.to_uppercase()).is_none());
        assert!(decode_tag(&good[..62]).is_none());
        assert!(decode_tag(&format!("{good}00")).is_none());
        assert!(decode_tag(&format!("{}zz", &good[..62])).is_none());
        assert!(decode_tag(&format!("{}é", &good[..62])).is_none());
        assert!(decode_tag("").is_none());
        let all: String = (0..32).map(|i| format!("{:02x}", i * 8)).collect();
        let decoded = decode_tag(&all).unwrap();
        assert_eq!(hex::encode(decoded), all);
        for bad in [b'g', b'G', b'A', b'F', b'/', b':', b'`', b' ', 0x80] {
            let mut text = all.clone().into_bytes();
            text[17] = bad;
            if let Ok(text) = String::from_utf8(text) {
                assert!(decode_tag(&text).is_none(), "{text}");
            }
        }
    }

    #[test]
    fn tags_equal_compares_every_byte() {
        let a = [7_u8; TAG_LEN];
        assert!(bool::from(tags_equal(&a, &a)));
        for i in 0..TAG_LEN {
            let mut b = a;
            b[i] ^= 1;
            assert!(!bool::from(tags_equal(&a, &b)), "byte {i}");
        }
    }
}
