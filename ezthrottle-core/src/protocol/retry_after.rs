//! When may a refused call be repeated? (`docs/protocol.md` §1.2) The one `Retry-After` parser of
//! the workspace: the client, the tower layers and the engine all call it.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::ErrorBody;
use super::time::{from_unix_ms, saturating_add};

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
/// `retry_at` (Unix ms), `retry_after` (s) and `retry_after_seconds` (s) in the body.
pub fn retry_at_from(headers: &HeaderMap, body: Option<&ErrorBody>, now: SystemTime) -> Option<SystemTime> {
    let after = |delay: Duration| saturating_add(now, delay);
    let from_header = retry_after_delay(headers, now).map(after);
    from_header.or_else(|| {
        let body = body?;
        let seconds = |s: u64| after(Duration::from_secs(s));
        body.retry_at.and_then(from_unix_ms).or(body.retry_after.map(seconds)).or(body.retry_after_seconds.map(seconds))
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
        assert_eq!(at(&headers("99999999999999999999999"), None), Some(u64::MAX));
        let body = ErrorBody { retry_after: Some(u64::MAX), ..ErrorBody::default() };
        assert_eq!(at(&HeaderMap::new(), Some(&body)), Some(u64::MAX));
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
