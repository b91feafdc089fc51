//! The pace of a target host (protocol.md §4): how fast EZThrottle may send to it.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::headers::{AQUEDUCT_MAX_CONCURRENT_HEADER, AQUEDUCT_RPS_HEADER, MAX_CONCURRENT_HEADER, RPS_HEADER};

/// Requests per second and requests in flight at most, for one target host.
///
/// Valid by construction: the rate is finite and above zero, at least one request may be
/// in flight. The engine paces its lanes with it; a server announces it with
/// [`Pace::headers`] (`X-EZTHROTTLE-RPS`, `X-EZTHROTTLE-MAX-CONCURRENT`).
///
/// ```
/// use ezthrottle_core::protocol::{InvalidPace, Pace};
///
/// let pace = Pace::new(2.5, 4)?;
/// let [(rps_name, rps), (max_name, max)] = pace.headers();
/// assert_eq!((rps_name.as_str(), rps.to_str().unwrap()), ("x-ezthrottle-rps", "2.5"));
/// assert_eq!((max_name.as_str(), max.to_str().unwrap()), ("x-ezthrottle-max-concurrent", "4"));
/// assert!(matches!(Pace::new(f64::NAN, 1), Err(InvalidPace::Rps(_))));
/// assert_eq!(Pace::new(1.0, 0), Err(InvalidPace::MaxConcurrent));
/// # Ok::<(), InvalidPace>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    rps: f64,
    max_concurrent: u32,
}

/// Why a [`Pace`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPace {
    /// The rate is not a finite number above zero.
    #[error("a pace needs a finite rate above 0 requests per second, not {0}")]
    Rps(f64),
    /// Zero requests in flight would never send anything.
    #[error("a pace needs at least 1 request in flight")]
    MaxConcurrent,
}

impl Pace {
    /// EZThrottle's default pace: 2 requests per second, 2 in flight, per host.
    pub const DEFAULT: Self = Self { rps: 2.0, max_concurrent: 2 };

    /// A pace that never waits (for benchmarks and tests that do not measure pacing).
    pub const UNLIMITED: Self = Self { rps: f64::MAX, max_concurrent: u32::MAX };

    /// `rps` requests per second, at most `max_concurrent` in flight.
    ///
    /// # Errors
    ///
    /// [`InvalidPace`]: a rate that is not finite and above zero, or zero in flight.
    pub fn new(rps: f64, max_concurrent: u32) -> Result<Self, InvalidPace> {
        if !(rps.is_finite() && rps > 0.0) {
            return Err(InvalidPace::Rps(rps));
        }
        if max_concurrent == 0 {
            return Err(InvalidPace::MaxConcurrent);
        }
        Ok(Self { rps, max_concurrent })
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.rps
    }

    /// Requests in flight at most.
    pub fn max_concurrent(&self) -> u32 {
        self.max_concurrent
    }

    /// The two response headers announcing this pace. The rate is written with at most
    /// three decimals (`2`, `2.5`, `0.333`); a rate below 0.0005 is written `0`.
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 2] {
        let rps = (self.rps * 1000.0).round() / 1000.0;
        let rps = if rps.is_finite() { rps } else { f64::MAX };
        let rps = HeaderValue::try_from(format!("{rps}")).unwrap_or(HeaderValue::from_static("0"));
        [
            (HeaderName::from_static(RPS_HEADER), rps),
            (HeaderName::from_static(MAX_CONCURRENT_HEADER), HeaderValue::from(self.max_concurrent)),
        ]
    }
}

impl Default for Pace {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a target's response announces about its pace: each half only when present and
/// valid (the Aqueduct names win over the EZThrottle ones).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct AnnouncedPace {
    /// `X-Aqueduct-Rps` / `X-EZTHROTTLE-RPS`: a finite rate above zero.
    pub rps: Option<f64>,
    /// `X-Aqueduct-Max-Concurrent` / `X-EZTHROTTLE-MAX-CONCURRENT`: at least 1.
    pub max_concurrent: Option<u32>,
}

impl AnnouncedPace {
    /// Reads the pacing headers of a target's response.
    ///
    /// ```
    /// use ezthrottle_core::protocol::AnnouncedPace;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-ezthrottle-rps", "5".parse().unwrap());
    /// headers.insert("x-aqueduct-rps", "1.5".parse().unwrap());
    /// headers.insert("x-ezthrottle-max-concurrent", "0".parse().unwrap());
    /// let announced = AnnouncedPace::from_headers(&headers);
    /// assert_eq!((announced.rps, announced.max_concurrent), (Some(1.5), None));
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let first = |names: [&str; 2]| {
            names.iter().find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()).map(str::trim))
        };
        let rps = first([AQUEDUCT_RPS_HEADER, RPS_HEADER])
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|rps| rps.is_finite() && *rps > 0.0);
        let max_concurrent = first([AQUEDUCT_MAX_CONCURRENT_HEADER, MAX_CONCURRENT_HEADER])
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| *n > 0);
        Self { rps, max_concurrent }
    }

    /// Whether the response announced anything.
    pub fn is_empty(&self) -> bool {
        self.rps.is_none() && self.max_concurrent.is_none()
    }
}

/// The lane key of a target: `host:port`, the host lower-cased and the default port of
/// `http`/`https` filled in. The engine paces per lane key and the circuit breaker of the
/// tower layers counts per lane key. `None` without a port for an unknown scheme.
///
/// ```
/// use ezthrottle_core::protocol::lane_key;
/// assert_eq!(lane_key("https", "API.example.com", None).as_deref(), Some("api.example.com:443"));
/// assert_eq!(lane_key("http", "127.0.0.1", Some(8080)).as_deref(), Some("127.0.0.1:8080"));
/// assert_eq!(lane_key("HTTP", "a.test", None).as_deref(), Some("a.test:80"));
/// assert_eq!(lane_key("ftp", "a.test", None), None);
/// ```
pub fn lane_key(scheme: &str, host: &str, port: Option<u16>) -> Option<String> {
    use std::fmt::Write as _;
    let port = match port {
        Some(port) => port,
        None if scheme.eq_ignore_ascii_case("https") => 443,
        None if scheme.eq_ignore_ascii_case("http") => 80,
        None => return None,
    };
    // One allocation: the forwarding layer computes this key on every call.
    let mut key = String::with_capacity(host.len() + ":65535".len());
    key.push_str(host);
    key.make_ascii_lowercase();
    write!(key, ":{port}").ok()?;
    Some(key)
}

/// [`lane_key`] of a URL.
pub fn lane_key_of_url(url: &url::Url) -> Option<String> {
    lane_key(url.scheme(), url.host_str()?, url.port())
}

/// [`lane_key`] of an absolute URI (`None` for a relative one).
pub fn lane_key_of_uri(uri: &http::Uri) -> Option<String> {
    let authority = uri.authority()?;
    lane_key(uri.scheme_str()?, authority.host(), authority.port_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_paces_are_typed_errors() {
        for rps in [0.0, -1.0, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(Pace::new(rps, 1), Err(InvalidPace::Rps(rps)), "{rps}");
        }
        assert!(matches!(Pace::new(f64::NAN, 1), Err(InvalidPace::Rps(rps)) if rps.is_nan()));
        assert_eq!(Pace::new(1.0, 0), Err(InvalidPace::MaxConcurrent));
        assert_eq!(Pace::new(0.5, 1).map(|p| (p.rps(), p.max_concurrent())), Ok((0.5, 1)));
    }

    #[test]
    fn rates_are_written_compactly() {
        let rps = |value: f64| Pace::new(value, 1).unwrap().headers()[0].1.to_str().unwrap().to_owned();
        assert_eq!(rps(3.0), "3");
        assert_eq!(rps(1.0 / 3.0), "0.333");
        assert_eq!(rps(1e-9), "0");
        assert!(!Pace::UNLIMITED.headers()[0].1.is_empty());
    }

    #[test]
    fn lane_keys_of_urls_and_uris_agree() {
        for text in ["https://a.test/x", "http://A.test:81/", "http://[::1]/", "http://127.0.0.1:9/"] {
            let url = url::Url::parse(text).unwrap();
            let uri: http::Uri = text.parse().unwrap();
            assert_eq!(lane_key_of_url(&url), lane_key_of_uri(&uri), "{text}");
        }
        assert_eq!(lane_key_of_uri(&"/relative".parse().unwrap()), None);
        assert_eq!(lane_key_of_uri(&"http://a.test/".parse().unwrap()).as_deref(), Some("a.test:80"));
    }
}
