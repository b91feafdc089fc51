//! Server side: tell EZThrottle how fast to send.
//!
//! EZThrottle paces the jobs it runs against a host (2 requests per second by default).
//! A target that answers with `X-EZTHROTTLE-RPS: <float>` and
//! `X-EZTHROTTLE-MAX-CONCURRENT: <int>` sets that pace from the next dispatch on.
//! [`PaceLayer`] adds both headers to every response of a Rust service (axum, hyper,
//! any `tower::Service<http::Request<B>>`):
//!
//! - [`PaceLayer::fixed`]: constant values;
//! - [`PaceLayer::adaptive`]: computed from how many requests the service is handling;
//! - [`PaceLayer::from_fn`]: computed by your closure from that count.
//!
//! A header the service set itself is kept. [`pace_headers`] gives the header pair for
//! other middleware.
//!
//! ```
//! use bytes::Bytes;
//! use ezthrottle_tower::PaceLayer;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use std::convert::Infallible;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Infallible> {
//! let api = ServiceBuilder::new().layer(PaceLayer::fixed(5.0, 2)).service_fn(|_: Request<Full<Bytes>>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
//! });
//! let response = api.oneshot(Request::new(Full::default())).await?;
//! assert_eq!(response.headers()["x-ezthrottle-rps"], "5");
//! assert_eq!(response.headers()["x-ezthrottle-max-concurrent"], "2");
//! # Ok(()) }
//! ```
//!
//! The count of requests in flight runs from `call` until the service's response head is
//! ready (or its future is dropped); a streaming body still being sent is not counted.

mod layer;
mod service;

use http::{HeaderMap, HeaderName, HeaderValue};

pub use layer::PaceLayer;
pub use service::{Pace, ResponseFuture};

/// `X-EZTHROTTLE-RPS`: requests per second EZThrottle may send to this host.
pub const RPS_HEADER: HeaderName = HeaderName::from_static("x-ezthrottle-rps");
/// `X-EZTHROTTLE-MAX-CONCURRENT`: requests EZThrottle may have in flight to this host.
pub const MAX_CONCURRENT_HEADER: HeaderName = HeaderName::from_static("x-ezthrottle-max-concurrent");

/// A pace for EZThrottle: requests per second and requests in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// Requests per second (a float; negative or non-finite values are sent as `0`).
    pub rps: f64,
    /// Requests in flight at most.
    pub max_concurrent: u32,
}

impl Pacing {
    /// `rps` requests per second, at most `max_concurrent` at once.
    pub fn new(rps: f64, max_concurrent: u32) -> Self {
        Self { rps, max_concurrent }
    }

    /// The two headers, as [`pace_headers`].
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 2] {
        pace_headers(self.rps, self.max_concurrent)
    }

    /// Adds the two headers to `headers`, keeping any already set.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in self.headers() {
            headers.entry(name).or_insert(value);
        }
    }
}

/// The `X-EZTHROTTLE-RPS` and `X-EZTHROTTLE-MAX-CONCURRENT` headers for a pace.
///
/// The rate is written with at most three decimals (`2`, `2.5`, `0.333`); a negative or
/// non-finite rate is written `0`.
///
/// ```
/// let [(rps_name, rps), (max_name, max)] = ezthrottle_tower::pace_headers(2.5, 4);
/// assert_eq!((rps_name.as_str(), rps.to_str().unwrap()), ("x-ezthrottle-rps", "2.5"));
/// assert_eq!((max_name.as_str(), max.to_str().unwrap()), ("x-ezthrottle-max-concurrent", "4"));
/// ```
pub fn pace_headers(rps: f64, max_concurrent: u32) -> [(HeaderName, HeaderValue); 2] {
    let rps = if rps.is_finite() && rps > 0.0 { (rps * 1000.0).round() / 1000.0 } else { 0.0 };
    let rps = HeaderValue::try_from(format!("{rps}")).unwrap_or(HeaderValue::from_static("0"));
    [(RPS_HEADER, rps), (MAX_CONCURRENT_HEADER, HeaderValue::from(max_concurrent))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_written_compactly_and_safely() {
        let rps = |value: f64| pace_headers(value, 1)[0].1.to_str().unwrap().to_owned();
        assert_eq!(rps(3.0), "3");
        assert_eq!(rps(1.0 / 3.0), "0.333");
        assert_eq!(rps(-1.0), "0");
        assert_eq!(rps(f64::NAN), "0");
        assert_eq!(rps(f64::INFINITY), "0");
        assert_eq!(rps(1e-9), "0");
    }

    #[test]
    fn apply_keeps_headers_the_service_set() {
        let mut headers = HeaderMap::new();
        headers.insert(RPS_HEADER, HeaderValue::from_static("9"));
        Pacing::new(1.0, 2).apply(&mut headers);
        assert_eq!(headers[RPS_HEADER], "9");
        assert_eq!(headers[MAX_CONCURRENT_HEADER], "2");
    }
}
