//! The reusable, pre-keyed [`Verifier`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use subtle::Choice;

use super::sign::{HmacSha256, decode_tag, keyed, tag, tags_equal};
use super::{SignatureHeader, VerifyError};
use crate::protocol::{WeakSecret, check_secret};

/// Default timestamp tolerance: five minutes either way.
const DEFAULT_TOLERANCE_SECS: u64 = 300;

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Which configured secret a signature matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretSlot {
    /// The secret given to [`Verifier::new`].
    Primary,
    /// The secret given to [`Verifier::with_secondary`].
    Secondary,
}

/// A successful verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    secret: SecretSlot,
    timestamp: i64,
}

impl Verified {
    /// The secret whose signature matched.
    #[must_use]
    pub fn secret(&self) -> SecretSlot {
        self.secret
    }

    /// The signed `t` value, in Unix seconds.
    #[must_use]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The protocol reason string: `valid_primary` or `valid_secondary`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self.secret {
            SecretSlot::Primary => "valid_primary",
            SecretSlot::Secondary => "valid_secondary",
        }
    }
}

/// Verifies `X-EZThrottle-Signature` headers against one or two secrets.
///
/// Build it once (it keys HMAC-SHA256 for each secret up front) and share it: a clone is
/// one reference count, and it is `Send` and `Sync`. Each verification clones the keyed
/// state and hashes `"<t>."` and the body, without allocating.
///
/// This is the one verifier of the SDK: the framework integrations of `ezthrottle-tower`
/// (the axum `VerifiedWebhook` extractor with this type in the router state, the
/// `VerifyWebhookLayer`) and `ezthrottle-actix` (registered with `App::app_data`) take it
/// as it is and only turn a [`VerifyError`] into their HTTP answer.
///
/// During a secret rotation, configure the new secret as primary and the old one as
/// secondary (or the other way round): a request verifies if any of its `v1` values
/// matches either secret, and [`Verified::secret`] says which one matched.
///
/// `Debug` prints the secrets as `[redacted]`.
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_core::webhook::{sign, SecretSlot, Verifier, VerifyError};
///
/// let verifier = Verifier::new("whsec_new_0123456789")?
///     .with_secondary("whsec_old_0123456789")?
///     .tolerance(Duration::from_secs(60));
/// let body = br#"{"job_id":"job_1","status":"success"}"#;
///
/// let header = sign("whsec_old_0123456789", 1_700_000_000, body);
/// let ok = verifier.verify_at(body, &header, 1_700_000_030)?;
/// assert_eq!(ok.secret(), SecretSlot::Secondary);
///
/// // A minute and a half later the same request is refused as a replay.
/// let err = verifier.verify_at(body, &header, 1_700_000_090).unwrap_err();
/// assert_eq!(err.reason(), "timestamp_expired (diff=90s, tolerance=60s)");
///
/// // A secret anyone could guess is refused when the verifier is built.
/// assert!(Verifier::new("").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    // Shared: the extractors clone the verifier out of the server state per request.
    keys: Arc<Keys>,
}

#[derive(Clone)]
struct Keys {
    primary: HmacSha256,
    secondary: Option<HmacSha256>,
    tolerance_secs: u64,
    clock: Option<Clock>,
}

impl Verifier {
    /// A verifier for one secret, with a 300 s tolerance and the system clock.
    ///
    /// The HMAC key is the UTF-8 bytes of the secret, as given.
    ///
    /// # Errors
    ///
    /// [`WeakSecret`] when the secret has fewer than
    /// [`MIN_SECRET_LEN`](crate::protocol::MIN_SECRET_LEN) characters: an empty or short
    /// secret (say from `env::var(..).unwrap_or_default()`) would accept signatures anyone
    /// can make, so it is refused here rather than failing open at run time.
    pub fn new(primary: impl AsRef<str>) -> Result<Self, WeakSecret> {
        let primary = primary.as_ref();
        check_secret(primary)?;
        Ok(Self {
            keys: Arc::new(Keys {
                primary: keyed(primary.as_bytes()),
                secondary: None,
                tolerance_secs: DEFAULT_TOLERANCE_SECS,
                clock: None,
            }),
        })
    }

    fn with(mut self, change: impl FnOnce(&mut Keys)) -> Self {
        change(Arc::make_mut(&mut self.keys));
        self
    }

    /// Also accepts signatures made with `secret` (for rotation). Replaces any previous
    /// secondary; an empty string removes it.
    ///
    /// # Errors
    ///
    /// [`WeakSecret`] when `secret` is neither empty nor at least
    /// [`MIN_SECRET_LEN`](crate::protocol::MIN_SECRET_LEN) characters long.
    pub fn with_secondary(self, secret: impl AsRef<str>) -> Result<Self, WeakSecret> {
        let secret = secret.as_ref();
        if secret.is_empty() {
            return Ok(self.with(|keys| keys.secondary = None));
        }
        check_secret(secret)?;
        let secondary = keyed(secret.as_bytes());
        Ok(self.with(|keys| keys.secondary = Some(secondary)))
    }

    /// How far `t` may be from now, in either direction (default 300 s). Truncated to
    /// whole seconds.
    #[must_use]
    pub fn tolerance(self, tolerance: Duration) -> Self {
        self.with(|keys| keys.tolerance_secs = tolerance.as_secs())
    }

    /// Uses `clock` (returning Unix seconds) instead of the system clock in
    /// [`verify`](Self::verify).
    #[must_use]
    pub fn with_clock(self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        let clock: Clock = Arc::new(clock);
        self.with(|keys| keys.clock = Some(clock))
    }

    /// The configured tolerance, in whole seconds.
    #[must_use]
    pub fn tolerance_secs(&self) -> u64 {
        self.keys.tolerance_secs
    }

    /// Whether a secondary secret is configured.
    #[must_use]
    pub fn has_secondary(&self) -> bool {
        self.keys.secondary.is_some()
    }

    /// Verifies `header` (the `X-EZThrottle-Signature` value) for the raw request
    /// `body`, at the current time of the configured clock.
    ///
    /// Pass the body bytes exactly as received: a body that was parsed and
    /// re-serialized will not verify.
    ///
    /// # Errors
    ///
    /// See [`verify_at`](Self::verify_at).
    pub fn verify(&self, body: &[u8], header: &str) -> Result<Verified, VerifyError> {
        self.verify_at(body, header, self.now())
    }

    /// Checks what can be checked before the body is read: `header` parses and its
    /// timestamp is within the tolerance of the configured clock's now.
    ///
    /// A server calls it before buffering the body, so a request without a usable
    /// signature costs no body read; it still calls [`verify`](Self::verify) once the body
    /// is in. Whatever this refuses, `verify` refuses with the same error.
    ///
    /// # Errors
    ///
    /// See [`check_header_at`](Self::check_header_at).
    pub fn check_header<'h>(&self, header: &'h str) -> Result<SignatureHeader<'h>, VerifyError> {
        self.check_header_at(header, self.now())
    }

    /// [`check_header`](Self::check_header) as if the time were `now_unix_secs`.
    ///
    /// Never panics, whatever the header.
    ///
    /// # Errors
    ///
    /// [`VerifyError::MissingHeader`], [`VerifyError::MissingSignature`],
    /// [`VerifyError::InvalidTimestamp`] or [`VerifyError::TimestampExpired`], checked in
    /// that order.
    pub fn check_header_at<'h>(&self, header: &'h str, now_unix_secs: i64) -> Result<SignatureHeader<'h>, VerifyError> {
        let parsed = SignatureHeader::parse(header)?;
        let diff = (i128::from(now_unix_secs) - i128::from(parsed.timestamp())).unsigned_abs();
        let diff_secs = u64::try_from(diff).unwrap_or(u64::MAX);
        let tolerance_secs = self.keys.tolerance_secs;
        if diff_secs > tolerance_secs {
            return Err(VerifyError::TimestampExpired { diff_secs, tolerance_secs });
        }
        Ok(parsed)
    }

    /// Now, in Unix seconds, by the configured clock.
    fn now(&self) -> i64 {
        match &self.keys.clock {
            Some(clock) => clock(),
            None => system_now(),
        }
    }

    /// Verifies `header` for `body` as if the time were `now_unix_secs`.
    ///
    /// Never panics, whatever the header and body.
    ///
    /// # Errors
    ///
    /// Checked in this order: [`VerifyError::MissingHeader`],
    /// [`VerifyError::MissingSignature`], [`VerifyError::InvalidTimestamp`],
    /// [`VerifyError::TimestampExpired`], then [`VerifyError::SignatureMismatch`] when
    /// no `v1` value matches any configured secret.
    pub fn verify_at(&self, body: &[u8], header: &str, now_unix_secs: i64) -> Result<Verified, VerifyError> {
        let parsed = self.check_header_at(header, now_unix_secs)?;
        let timestamp = parsed.timestamp();
        let keys = &*self.keys;
        if matches(&keys.primary, &parsed, body) {
            return Ok(Verified { secret: SecretSlot::Primary, timestamp });
        }
        if let Some(secondary) = &keys.secondary
            && matches(secondary, &parsed, body)
        {
            return Ok(Verified { secret: SecretSlot::Secondary, timestamp });
        }
        Err(VerifyError::SignatureMismatch)
    }
}

/// Whether any `v1` value of `header` is the tag of `key`. The tag is computed once,
/// and only if some `v1` value is well-formed hex; every well-formed value is compared
/// in constant time.
fn matches(key: &HmacSha256, header: &SignatureHeader<'_>, body: &[u8]) -> bool {
    let mut expected = None;
    let mut matched = Choice::from(0);
    for given in header.v1_signatures().filter_map(decode_tag) {
        let expected = expected.get_or_insert_with(|| tag(key, header.timestamp_text(), body));
        matched |= tags_equal(&given, expected);
    }
    bool::from(matched)
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("primary", &format_args!("[redacted]"))
            .field("secondary", &format_args!("{}", if self.has_secondary() { "[redacted]" } else { "None" }))
            .field("tolerance_secs", &self.keys.tolerance_secs)
            .field("clock", &format_args!("{}", if self.keys.clock.is_some() { "custom" } else { "system" }))
            .finish()
    }
}

/// Unix seconds from the system clock (negative before 1970), saturating.
fn system_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
mod tests {
    use super::super::sign;
    use super::*;

    const SECRET: &str = "secret_key_at_least_16";
    const OLD: &str = "old_secret_key_value";
    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"a":1}"#;
    const V1: &str = "8e9ec2c2f7da47514ac06bcf36a5855009f0a9ee7eb7e30524026df00cd52474";

    fn verifier() -> Verifier {
        Verifier::new(SECRET).unwrap()
    }

    fn reason(r: Result<Verified, VerifyError>) -> String {
        match r {
            Ok(v) => v.reason().to_owned(),
            Err(e) => e.reason().into_owned(),
        }
    }

    #[test]
    fn every_reason() {
        let v = verifier();
        let ok = format!("t={T},v1={V1}");
        assert_eq!(reason(v.verify_at(BODY, &ok, T)), "valid_primary");
        assert_eq!(reason(v.verify_at(BODY, "", T)), "no_signature_header");
        assert_eq!(reason(v.verify_at(BODY, "   ", T)), "no_signature_header");
        assert_eq!(reason(v.verify_at(BODY, "t=1", T)), "missing_v1_signature");
        assert_eq!(reason(v.verify_at(BODY, &format!("v1={V1}"), T)), "invalid_timestamp");
        assert_eq!(reason(v.verify_at(BODY, &format!("t=soon,v1={V1}"), T)), "invalid_timestamp");
        assert_eq!(reason(v.verify_at(BODY, &ok, T + 301)), "timestamp_expired (diff=301s, tolerance=300s)");
        assert_eq!(reason(v.verify_at(b"{\"a\":2}", &ok, T)), "signature_mismatch");
    }

    #[test]
    fn tolerance_is_symmetric_and_inclusive() {
        let v = verifier();
        let ok = format!("t={T},v1={V1}");
        assert!(v.verify_at(BODY, &ok, T + 300).is_ok());
        assert!(v.verify_at(BODY, &ok, T - 300).is_ok());
        // Stale.
        assert_eq!(
            v.verify_at(BODY, &ok, T + 1000),
            Err(VerifyError::TimestampExpired { diff_secs: 1000, tolerance_secs: 300 })
        );
        // In the future.
        assert_eq!(reason(v.verify_at(BODY, &ok, T - 301)), "timestamp_expired (diff=301s, tolerance=300s)");
        let short = verifier().tolerance(Duration::from_millis(10_999));
        assert_eq!(short.tolerance_secs(), 10);
        assert_eq!(reason(short.verify_at(BODY, &ok, T - 11)), "timestamp_expired (diff=11s, tolerance=10s)");
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let v = verifier();
        let header = sign(SECRET, i64::MIN, BODY);
        assert_eq!(
            v.verify_at(BODY, &header, i64::MAX),
            Err(VerifyError::TimestampExpired { diff_secs: u64::MAX, tolerance_secs: 300 })
        );
        let header = sign(SECRET, i64::MAX, BODY);
        assert!(v.verify_at(BODY, &header, i64::MAX).is_ok());
        assert_eq!(reason(v.verify_at(BODY, &format!("t=99999999999999999999,v1={V1}"), T)), "invalid_timestamp");
        let huge = verifier().tolerance(Duration::MAX);
        assert!(huge.verify_at(BODY, &sign(SECRET, i64::MIN, BODY), i64::MAX).is_ok());
    }

    #[test]
    fn trims_spaces_around_pairs() {
        let v = verifier();
        for header in [format!("t={T}, v1={V1}"), format!(" t={T} ,  v1={V1} "), format!("\tt={T},\tv1={V1},")] {
            assert!(v.verify_at(BODY, &header, T).is_ok(), "{header:?}");
        }
    }

    #[test]
    fn any_v1_may_match_and_unknown_schemes_are_ignored() {
        let v = verifier();
        let wrong = "0".repeat(64);
        let header = format!("t={T},v1={wrong},v0=zzz,v2={V1},v1={V1}");
        assert_eq!(v.verify_at(BODY, &header, T).map(|ok| ok.secret()), Ok(SecretSlot::Primary));
        // Malformed v1 values are mismatches, not errors.
        let header = format!("t={T},v1=short,v1={},v1={V1}", V1.to_uppercase());
        assert!(v.verify_at(BODY, &header, T).is_ok());
        let header = format!("t={T},v1=short,v1={}", V1.to_uppercase());
        assert_eq!(v.verify_at(BODY, &header, T), Err(VerifyError::SignatureMismatch));
        // The right HMAC under another scheme name never counts.
        let header = format!("t={T},v0={V1},v2={V1}");
        assert_eq!(v.verify_at(BODY, &header, T), Err(VerifyError::MissingSignature));
        let header = format!("t={T},v0={V1},v1={wrong}");
        assert_eq!(v.verify_at(BODY, &header, T), Err(VerifyError::SignatureMismatch));
    }

    #[test]
    fn non_utf8_body() {
        let body = b"\xff\xfe\x00 binary \x80";
        let v = verifier();
        let header = sign(SECRET, T, body);
        assert!(v.verify_at(body, &header, T).is_ok());
        assert_eq!(v.verify_at(b"\xff\xfe\x00", &header, T), Err(VerifyError::SignatureMismatch));
    }

    #[test]
    fn secondary_is_reported() {
        let v = verifier().with_secondary(OLD).unwrap();
        assert!(v.has_secondary());
        let by_old = v.verify_at(BODY, &sign(OLD, T, BODY), T).unwrap();
        assert_eq!(by_old.secret(), SecretSlot::Secondary);
        assert_eq!(by_old.reason(), "valid_secondary");
        assert_eq!(by_old.timestamp(), T);
        let by_new = v.verify_at(BODY, &sign(SECRET, T, BODY), T).unwrap();
        assert_eq!(by_new.secret(), SecretSlot::Primary);
        // The sender signs with both during rotation: either order works.
        let old_sig = sign(OLD, T, BODY);
        let both = format!("{old_sig},v1={V1}");
        assert_eq!(v.verify_at(BODY, &both, T).unwrap().secret(), SecretSlot::Primary);
        assert!(verifier().verify_at(BODY, &old_sig, T).is_err());
        assert!(!verifier().with_secondary(OLD).unwrap().with_secondary("").unwrap().has_secondary());
    }

    #[test]
    fn clock_is_injectable() {
        let header = format!("t={T},v1={V1}");
        let v = verifier().with_clock(|| T + 5);
        assert!(v.verify(BODY, &header).is_ok());
        let late = v.clone().with_clock(|| T + 500);
        assert_eq!(reason(late.verify(BODY, &header)), "timestamp_expired (diff=500s, tolerance=300s)");
        // The system clock is far past 2023.
        assert!(verifier().verify(BODY, &header).is_err());
        assert!(system_now() > T);
    }

    #[test]
    fn debug_redacts_secrets() {
        let v = Verifier::new("super-secret-primary").unwrap().with_secondary("super-secret-secondary").unwrap();
        let text = format!("{v:?} {v:#?}");
        assert!(!text.contains("super-secret"), "{text}");
        assert!(text.contains("[redacted]"));
        assert!(format!("{:?}", verifier()).contains("secondary: None"));
    }

    #[test]
    fn short_secrets_are_refused() {
        for weak in ["", "x", "0123456789abcde", "ééééééééééééééé"] {
            let err = Verifier::new(weak).unwrap_err();
            assert_eq!(err.chars(), weak.chars().count(), "{weak:?}");
            assert!(verifier().with_secondary(weak).is_err() || weak.is_empty(), "{weak:?}");
        }
        // Sixteen characters is the minimum, counted in characters, not bytes.
        assert!(Verifier::new("0123456789abcdef").is_ok());
        assert!(Verifier::new("éééééééééééééééé").is_ok());
        // The error names the rule, never the secret.
        let message = Verifier::new("hunter2").unwrap_err().to_string();
        assert!(message.contains("16") && !message.contains("hunter2"), "{message}");
    }

    #[test]
    fn is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Verifier>();
        check::<VerifyError>();
    }
}
