//! When may a refused call be repeated? (`docs/protocol.md` §1.2) The one `Retry-After` parser of
//! the workspace: the client, the tower layers and the engine all call it.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::ErrorBody;
use super::time::from_unix_ms;

/// The furthest ahead a `retry_at` taken from a refusal may be: 24 hours.
///
/// A `Retry-After: 99999999999` (or an HTTP date in the year 9999) would otherwise become
/// a job that never runs while its caller holds a `202`. Every path that turns a refusal
/// into an instant ([`retry_at_from`], the tower layers, the reqwest middleware) clamps
/// to it through [`retry_at_within`]; a layer may lower it, never raise it.
pub const MAX_RETRY_AT_HORIZON: Duration = Duration::from_secs(24 * 60 * 60);

/// `now + delay`, with `delay` clamped to `horizon` and `horizon` to
/// [`MAX_RETRY_AT_HORIZON`]; the sum is checked (`now` itself if the clock cannot say it).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ezthrottle_core::protocol::{MAX_RETRY_AT_HORIZON, retry_at_within};
///
/// let now = SystemTime::now();
/// let at = retry_at_within(now, Duration::MAX, Duration::MAX);
/// assert_eq!(at.duration_since(now).unwrap(), MAX_RETRY_AT_HORIZON);
/// assert_eq!(retry_at_within(now, Duration::from_secs(90), Duration::from_secs(60)), now + Duration::from_secs(60));
/// ```
pub fn retry_at_within(now: SystemTime, delay: Duration, horizon: Duration) -> SystemTime {
    let delay = delay.min(horizon).min(MAX_RETRY_AT_HORIZON);
    now.checked_add(delay).unwrap_or(now)
}

/// Parses a `Retry-After` value into the delay from `now`.
///
/// Accepts delay-seconds (RFC 9110 §10.2.3) and, leniently, a decimal fraction of them
/// (`"1.5"`: some rate limiters send one; digits only, at most nanosecond precision), or an
/// HTTP date (a date in the past is a zero delay). Anything else (negative, exponent,
/// `inf`, text) is `None`. A number of seconds too large to represent saturates.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ezthrottle_core::protocol::parse_retry_after;
///
/// let now = SystemTime::now();
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(parse_retry_after("1.5", now), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_retry_after("-1", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Some(delay) = parse_seconds(value) {
        return Some(delay);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Retry-After` of `headers` as a delay from `now` (see [`parse_retry_after`]).
pub fn retry_after_delay(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// `digits[.digits]` as a duration; `None` for anything else.
fn parse_seconds(value: &str) -> Option<Duration> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || (value.contains('.') && fraction.is_empty()) {
        return None;
    }
    let seconds = whole.parse::<u64>().unwrap_or(u64::MAX);
    let mut nanos: u32 = 0;
    let mut scale: u32 = 100_000_000;
    for digit in fraction.bytes().take(9) {
        nanos = nanos.saturating_add(u32::from(digit - b'0').saturating_mul(scale));
        scale /= 10;
    }
    Some(Duration::new(seconds, 0).saturating_add(Duration::from_nanos(u64::from(nanos))))
}

/// The instant a refused call may be repeated: from the `Retry-After` header, then
/// `retry_at` (Unix ms), `retry_after` (s) and `retry_after_seconds` (s) in the body;
/// never further than [`MAX_RETRY_AT_HORIZON`] from `now`.
pub fn retry_at_from(headers: &HeaderMap, body: Option<&ErrorBody>, now: SystemTime) -> Option<SystemTime> {
    let after = |delay: Duration| retry_at_within(now, delay, MAX_RETRY_AT_HORIZON);
    let from_header = retry_after_delay(headers, now).map(after);
    from_header.or_else(|| {
        let body = body?;
        let seconds = |s: u64| after(Duration::from_secs(s));
        let at = |at: SystemTime| after(at.duration_since(now).unwrap_or(Duration::ZERO)).min(at);
        let absolute = body.retry_at.and_then(from_unix_ms).map(at);
        absolute.or(body.retry_after.map(seconds)).or(body.retry_after_seconds.map(seconds))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::time::to_unix_ms;

    const NOW: u64 = 1_700_000_000_000;

    fn now() -> SystemTime {
        from_unix_ms(NOW).unwrap()
    }

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, retry_after.parse().unwrap());
        headers
    }

    fn at(headers: &HeaderMap, body: Option<&ErrorBody>) -> Option<u64> {
        retry_at_from(headers, body, now()).map(to_unix_ms)
    }

    #[test]
    fn header_seconds_win_over_the_body() {
        let body = ErrorBody { retry_at: Some(5), retry_after: Some(3600), ..ErrorBody::default() };
        assert_eq!(at(&headers("30"), Some(&body)), Some(NOW + 30_000));
    }

    #[test]
    fn header_http_date() {
        assert_eq!(at(&headers("Tue, 14 Nov 2023 22:13:20 GMT"), None), Some(1_700_000_000_000));
        assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now()), Some(Duration::ZERO), "a past date");
    }

    #[test]
    fn fractional_seconds_and_what_is_refused() {
        assert_eq!(parse_retry_after(" 1.5 ", now()), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("0.000000001999", now()), Some(Duration::from_nanos(1)));
        for refused in ["-1", "1e3", "inf", "NaN", "+5", "1.", ".5", "1.2.3", "soon", ""] {
            assert_eq!(parse_retry_after(refused, now()), None, "{refused:?}");
        }
    }

    #[test]
    fn huge_values_saturate_without_panicking() {
        assert_eq!(parse_retry_after("99999999999999999999999", now()), Some(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn retry_at_is_never_past_the_horizon() {
        let cap = NOW + 86_400_000;
        for value in ["99999999999", "99999999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"] {
            assert_eq!(at(&headers(value), None), Some(cap), "{value}");
        }
        assert_eq!(at(&headers("86399"), None), Some(NOW + 86_399_000), "within the horizon: as sent");
        let body = ErrorBody { retry_after: Some(u64::MAX), ..ErrorBody::default() };
        assert_eq!(at(&HeaderMap::new(), Some(&body)), Some(cap));
        let body = ErrorBody { retry_at: Some(u64::MAX), ..ErrorBody::default() };
        assert_eq!(at(&HeaderMap::new(), Some(&body)), Some(cap));
        let body = ErrorBody { retry_at: Some(NOW + 5), ..ErrorBody::default() };
        assert_eq!(at(&HeaderMap::new(), Some(&body)), Some(NOW + 5));
    }

    #[test]
    fn the_horizon_arithmetic_is_checked() {
        let secs = |at: SystemTime| at.duration_since(now()).unwrap();
        assert_eq!(secs(retry_at_within(now(), Duration::MAX, Duration::MAX)), MAX_RETRY_AT_HORIZON);
        assert_eq!(
            secs(retry_at_within(now(), Duration::from_secs(u64::MAX), Duration::from_millis(50))),
            Duration::from_millis(50)
        );
        assert_eq!(secs(retry_at_within(now(), Duration::from_secs(5), Duration::MAX)), Duration::from_secs(5));
        // The last instant the clock can say: the sum does not fit, the instant stays.
        let edge = SystemTime::UNIX_EPOCH.checked_add(Duration::new(i64::MAX as u64, 999_999_999)).unwrap();
        assert_eq!(retry_at_within(edge, Duration::from_secs(1), Duration::MAX), edge);
    }

    #[test]
    fn body_fields_in_order() {
        let none = HeaderMap::new();
        let mut body = ErrorBody { retry_after_seconds: Some(300), ..ErrorBody::default() };
        assert_eq!(at(&none, Some(&body)), Some(NOW + 300_000));
        body.retry_after = Some(3600);
        assert_eq!(at(&none, Some(&body)), Some(NOW + 3_600_000));
        body.retry_at = Some(42);
        assert_eq!(at(&none, Some(&body)), Some(42));
        assert_eq!(at(&none, None), None);
    }

    #[test]
    fn garbage_header_falls_back_to_the_body() {
        let body = ErrorBody { retry_after: Some(1), ..ErrorBody::default() };
        assert_eq!(at(&headers("soon"), Some(&body)), Some(NOW + 1000));
    }
}
