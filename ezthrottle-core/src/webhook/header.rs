//! Parsing of the `X-EZThrottle-Signature` header value.

use super::VerifyError;

/// A parsed `X-EZThrottle-Signature` header value: `t=<unix seconds>,v1=<hex>[,v1=<hex>...]`.
///
/// Parsing borrows from the header and does not allocate. Pairs are separated by `,`,
/// surrounding ASCII whitespace is trimmed, each pair is split on its first `=`, and pairs
/// with other keys (`v0`, `v2`, ...) are ignored. Empty `v1=` values are ignored.
///
/// Parsing checks, in this order: the header is not blank
/// ([`VerifyError::MissingHeader`]), it has at least one `v1` value
/// ([`VerifyError::MissingSignature`]), and it has exactly one `t` that parses as an
/// `i64` ([`VerifyError::InvalidTimestamp`]). The signatures themselves are only
/// checked by a [`Verifier`](super::Verifier).
///
/// ```
/// use ezthrottle_core::webhook::SignatureHeader;
///
/// let header = SignatureHeader::parse("t=1700000000, v1=abc, v0=old, v1=def")?;
/// assert_eq!(header.timestamp(), 1_700_000_000);
/// assert_eq!(header.v1_signatures().collect::<Vec<_>>(), ["abc", "def"]);
/// # Ok::<(), ezthrottle_core::webhook::VerifyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureHeader<'a> {
    timestamp: i64,
    timestamp_text: &'a str,
    /// The first non-empty `v1` value.
    first_v1: &'a str,
    /// The header after the pair holding `first_v1`, where further `v1` values may be.
    after_first_v1: &'a str,
}

impl<'a> SignatureHeader<'a> {
    /// Parses a header value. Never panics, whatever the input.
    ///
    /// # Errors
    ///
    /// [`VerifyError::MissingHeader`], [`VerifyError::MissingSignature`] or
    /// [`VerifyError::InvalidTimestamp`], checked in that order.
    pub fn parse(header: &'a str) -> Result<Self, VerifyError> {
        if header.trim().is_empty() {
            return Err(VerifyError::MissingHeader);
        }
        let mut v1 = None;
        let mut timestamp_text = None;
        let mut repeated_t = false;
        let mut rest = Some(header);
        while let Some((key, value, next)) = next_pair(&mut rest) {
            match key {
                "v1" if v1.is_none() && !value.is_empty() => v1 = Some((value, next)),
                "t" => {
                    repeated_t |= timestamp_text.is_some();
                    timestamp_text = Some(value);
                }
                _ => {}
            }
        }
        let Some((first_v1, after_first_v1)) = v1 else {
            return Err(VerifyError::MissingSignature);
        };
        // Two `t` values are ambiguous: refuse rather than pick one.
        let timestamp_text = match timestamp_text {
            Some(text) if !repeated_t => text,
            _ => return Err(VerifyError::InvalidTimestamp),
        };
        let timestamp = timestamp_text.parse::<i64>().map_err(|_| VerifyError::InvalidTimestamp)?;
        Ok(Self { timestamp, timestamp_text, first_v1, after_first_v1 })
    }

    /// The `t` value, in Unix seconds.
    #[must_use]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The `t` value exactly as it appears in the header. This text, not a
    /// re-formatting of [`timestamp`](Self::timestamp), is what the HMAC covers.
    #[must_use]
    pub fn timestamp_text(&self) -> &'a str {
        self.timestamp_text
    }

    /// Every non-empty `v1` value, in header order, as written (not validated as hex).
    /// There is always at least one.
    pub fn v1_signatures(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut rest = Some(self.after_first_v1);
        let more = std::iter::from_fn(move || {
            while let Some((key, value, _)) = next_pair(&mut rest) {
                if key == "v1" && !value.is_empty() {
                    return Some(value);
                }
            }
            None
        });
        std::iter::once(self.first_v1).chain(more)
    }
}

/// Takes the next `key=value` pair off `rest` (trimmed, split on the first `=`),
/// skipping pieces without `=`. Returns the key, the value and what is left after
/// the pair; `rest` becomes `None` at the end.
fn next_pair<'a>(rest: &mut Option<&'a str>) -> Option<(&'a str, &'a str, &'a str)> {
    loop {
        let text = rest.take()?;
        let pair = match text.split_once(',') {
            Some((pair, tail)) => {
                *rest = Some(tail);
                pair
            }
            None => text,
        };
        if let Some((key, value)) = pair.trim_ascii().split_once('=') {
            return Some((key, value, rest.unwrap_or_default()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trimmed_pairs_and_collects_every_v1() {
        let h = SignatureHeader::parse("  t=42 ,\tv1=aa, v0=zz,v2=yy , v1=bb=cc,").unwrap();
        assert_eq!(h.timestamp(), 42);
        assert_eq!(h.timestamp_text(), "42");
        assert_eq!(h.v1_signatures().collect::<Vec<_>>(), ["aa", "bb=cc"]);
    }

    #[test]
    fn v1_values_anywhere_and_empty_ones_skipped() {
        let h = SignatureHeader::parse("v1=,x,t=1,v0=x,v1=aa,=,v1=,v1=bb,v1").unwrap();
        assert_eq!(h.v1_signatures().collect::<Vec<_>>(), ["aa", "bb"]);
        let h = SignatureHeader::parse("v1=only,t=1").unwrap();
        assert_eq!(h.v1_signatures().collect::<Vec<_>>(), ["only"]);
    }

    #[test]
    fn check_order() {
        assert_eq!(SignatureHeader::parse(""), Err(VerifyError::MissingHeader));
        assert_eq!(SignatureHeader::parse(" \t "), Err(VerifyError::MissingHeader));
        // No v1 is reported before a bad t.
        assert_eq!(SignatureHeader::parse("t=x"), Err(VerifyError::MissingSignature));
        assert_eq!(SignatureHeader::parse("t=1,v0=ab"), Err(VerifyError::MissingSignature));
        assert_eq!(SignatureHeader::parse("t=1,v1="), Err(VerifyError::MissingSignature));
        assert_eq!(SignatureHeader::parse("garbage"), Err(VerifyError::MissingSignature));
        for bad in [
            "v1=ab",
            "t=,v1=ab",
            "t=abc,v1=ab",
            "t=12ab,v1=ab",
            "t=1.5,v1=ab",
            "t= 1,v1=ab",
            "t=9223372036854775808,v1=ab",
            "t=-9223372036854775809,v1=ab",
            "t=1,t=1,v1=ab",
        ] {
            assert_eq!(SignatureHeader::parse(bad), Err(VerifyError::InvalidTimestamp), "{bad}");
        }
        assert_eq!(SignatureHeader::parse("t=-9223372036854775808,v1=ab").unwrap().timestamp(), i64::MIN);
    }
}
