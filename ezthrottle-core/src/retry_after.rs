//! When may a refused call be repeated? (`docs/protocol.md` §1.2)

use std::time::{Duration, UNIX_EPOCH};

use http::HeaderMap;

use crate::protocol::ErrorBody;

/// Parses a `Retry-After` value: delay-seconds or an HTTP date. Returns Unix milliseconds.
pub fn parse_retry_after(value: &str, now_unix_ms: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(now_unix_ms.saturating_add(seconds.saturating_mul(1000)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Some(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

/// The retry instant of a refused call, in Unix milliseconds: from the `Retry-After`
/// header, then `retry_at` (ms), `retry_after` (s) and `retry_after_seconds` (s) in the body.
pub fn retry_at_from(headers: &HeaderMap, body: Option<&ErrorBody>, now_unix_ms: u64) -> Option<u64> {
    let from_header = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, now_unix_ms));
    let after = |seconds: u64| now_unix_ms.saturating_add(seconds.saturating_mul(1000));
    from_header.or_else(|| {
        let body = body?;
        body.retry_at.or(body.retry_after.map(after)).or(body.retry_after_seconds.map(after))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, retry_after.parse().unwrap());
        headers
    }

    #[test]
    fn header_seconds_win_over_the_body() {
        let body = ErrorBody { retry_at: Some(5), retry_after: Some(3600), ..ErrorBody::default() };
        assert_eq!(retry_at_from(&headers("30"), Some(&body), NOW), Some(NOW + 30_000));
    }

    #[test]
    fn header_http_date() {
        assert_eq!(retry_at_from(&headers("Tue, 14 Nov 2023 22:13:20 GMT"), None, NOW), Some(1_700_000_000_000));
    }

    #[test]
    fn body_fields_in_order() {
        let none = HeaderMap::new();
        let mut body = ErrorBody { retry_after_seconds: Some(300), ..ErrorBody::default() };
        assert_eq!(retry_at_from(&none, Some(&body), NOW), Some(NOW + 300_000));
        body.retry_after = Some(3600);
        assert_eq!(retry_at_from(&none, Some(&body), NOW), Some(NOW + 3_600_000));
        body.retry_at = Some(42);
        assert_eq!(retry_at_from(&none, Some(&body), NOW), Some(42));
        assert_eq!(retry_at_from(&none, None, NOW), None);
    }

    #[test]
    fn garbage_header_falls_back_to_the_body() {
        let body = ErrorBody { retry_after: Some(1), ..ErrorBody::default() };
        assert_eq!(retry_at_from(&headers("soon"), Some(&body), NOW), Some(NOW + 1000));
    }
}
