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
//! A header the service set itself is kept. The pace is the protocol's value type,
//! [`ezthrottle_core::Pace`] (valid by construction); [`Pace`] here is the service.
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
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let api = ServiceBuilder::new().layer(PaceLayer::fixed(ezthrottle_core::Pace::new(5.0, 2)?)).service_fn(|_: Request<Full<Bytes>>| async {
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

use ezthrottle_core::protocol::Pace as PaceValue;
use http::HeaderMap;
#[cfg(feature = "rate-limit")]
use http::{HeaderName, HeaderValue};

pub use layer::PaceLayer;
pub use service::{Pace, ResponseFuture};

/// The pace headers of `rps` / `max_concurrent` for the rate limiter, which announces
/// its own rate: written by [`Pace::headers`](ezthrottle_core::protocol::Pace::headers); a
/// rate that is not a pace (not finite and above zero) is announced as `0`.
#[cfg(feature = "rate-limit")]
pub(crate) fn pace_headers(rps: f64, max_concurrent: u32) -> [(HeaderName, HeaderValue); 2] {
    let max_concurrent = max_concurrent.max(1);
    match PaceValue::new(rps, max_concurrent) {
        Ok(pace) => pace.headers(),
        Err(_) => {
            let [(rps_name, _), max] = PaceValue::new(1.0, max_concurrent).unwrap_or_default().headers();
            [(rps_name, HeaderValue::from_static("0")), max]
        }
    }
}

/// Adds the pace headers of `pace` to `headers`, keeping any the service set itself.
pub(crate) fn apply(pace: &PaceValue, headers: &mut HeaderMap) {
    for (name, value) in pace.headers() {
        headers.entry(name).or_insert(value);
    }
}

#[cfg(test)]
mod tests {
    use ezthrottle_core::protocol::headers::{MAX_CONCURRENT_HEADER, RPS_HEADER};
    use http::HeaderValue;

    use super::*;

    #[test]
    #[cfg(feature = "rate-limit")]
    fn rates_that_are_not_paces_are_written_as_zero() {
        let rps = |value: f64| pace_headers(value, 1)[0].1.to_str().unwrap().to_owned();
        assert_eq!(rps(3.0), "3");
        assert_eq!(rps(1.0 / 3.0), "0.333");
        assert_eq!(rps(-1.0), "0");
        assert_eq!(rps(f64::NAN), "0");
        assert_eq!(rps(f64::INFINITY), "0");
        assert_eq!(rps(1e-9), "0");
        assert_eq!(pace_headers(1.0, 0)[1].1, "1");
    }

    #[test]
    fn apply_keeps_headers_the_service_set() {
        let mut headers = HeaderMap::new();
        headers.insert(RPS_HEADER, HeaderValue::from_static("9"));
        apply(&PaceValue::new(1.0, 2).unwrap(), &mut headers);
        assert_eq!(headers[RPS_HEADER], "9");
        assert_eq!(headers[MAX_CONCURRENT_HEADER], "2");
    }
}
