//! The header names of the protocol, and which request headers a job may carry.
//!
//! Every crate of the workspace (client, tower layers, engine) takes its header names from
//! here, so a name is written once.

use http::HeaderName;

/// Header carrying a webhook delivery's signature (`t=<unix seconds>,v1=<hex>`).
pub const SIGNATURE_HEADER: &str = "X-EZThrottle-Signature";
/// Header naming the job: on a forwarded call's `202 Accepted`, on every request the engine
/// makes to the target, and on every webhook delivery.
pub const JOB_ID_HEADER: &str = "x-ezthrottle-job-id";
/// Header naming the region an attempt runs in, on every request the engine makes.
pub const REGION_HEADER: &str = "x-ezthrottle-region";
/// Header set to `true` on a forwarded call's `202 Accepted` (`false` when a call could not
/// be sent or forwarded).
pub const FORWARDED_HEADER: &str = "x-ezthrottle-forwarded";
/// Request header whose value is the caller's idempotency key: it wins over any key the SDK
/// would compute.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The older spelling of [`IDEMPOTENCY_KEY_HEADER`] that receivers still accept (the
/// idempotent webhook handler design reads it when `Idempotency-Key` is absent).
pub const X_IDEMPOTENCY_KEY_HEADER: &str = "x-idempotency-key";
/// Both spellings of the idempotency key header, in the order they are read.
pub const IDEMPOTENCY_KEY_HEADERS: [&str; 2] = [IDEMPOTENCY_KEY_HEADER, X_IDEMPOTENCY_KEY_HEADER];
/// Response header of a target: requests per second EZThrottle may send to its host.
pub const RPS_HEADER: &str = "x-ezthrottle-rps";
/// Response header of a target: requests EZThrottle may have in flight to its host.
pub const MAX_CONCURRENT_HEADER: &str = "x-ezthrottle-max-concurrent";
/// The Aqueduct name of [`RPS_HEADER`]; it wins when both are present.
pub const AQUEDUCT_RPS_HEADER: &str = "x-aqueduct-rps";
/// The Aqueduct name of [`MAX_CONCURRENT_HEADER`]; it wins when both are present.
pub const AQUEDUCT_MAX_CONCURRENT_HEADER: &str = "x-aqueduct-max-concurrent";

/// Request headers that identify the caller. Part of the idempotency key the SDK computes
/// ([`IdempotentStrategy::CredentialHash`](crate::IdempotentStrategy::CredentialHash)), so
/// two callers never share a job.
pub const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "x-api-key"];

/// Connection-level headers that describe one hop, never the request (RFC 9110 §7.6.1),
/// plus those the engine recomputes (`host`, `content-length`).
pub const NOT_FORWARDED: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Whether `name` belongs to one hop only (or is recomputed by the engine).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    NOT_FORWARDED.contains(&name.as_str())
}

/// Prefix of the headers EZThrottle puts on the calls it makes ([`JOB_ID_HEADER`],
/// [`REGION_HEADER`]): they are the engine's, so a job may not set them.
pub const ENGINE_HEADER_PREFIX: &str = "x-ezthrottle-";

/// Headers the engine computes for every call it makes; a job may not set them.
pub const ENGINE_COMPUTED: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// Whether a job may not set the header `name` (any case): one the engine computes
/// ([`ENGINE_COMPUTED`]) or one of its own (`x-ezthrottle-*`). Letting a tenant set `Host`
/// or `Content-Length` would let it smuggle requests or reach other virtual hosts, and
/// `X-EZThrottle-Job-Id` would let it impersonate another job.
///
/// ```
/// use ezthrottle_core::protocol::headers::is_reserved_for_engine;
///
/// assert!(is_reserved_for_engine("Host"));
/// assert!(is_reserved_for_engine("X-EZThrottle-Job-Id"));
/// assert!(!is_reserved_for_engine("authorization"));
/// ```
pub fn is_reserved_for_engine(name: &str) -> bool {
    ENGINE_COMPUTED.iter().any(|reserved| reserved.eq_ignore_ascii_case(name))
        || name
            .get(..ENGINE_HEADER_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(ENGINE_HEADER_PREFIX))
}

/// The end-to-end headers of `headers` as a job's string map: hop-by-hop headers are
/// dropped (including any named by `Connection`), and so are `x-ezthrottle-*` headers (an
/// earlier EZThrottle hop's, which a job may not set); repeated headers are joined with
/// `, ` (`; ` for `cookie`).
///
/// # Errors
///
/// The name of the first header whose value is not visible ASCII/UTF-8.
pub fn forwardable_headers(headers: &http::HeaderMap) -> Result<crate::protocol::Headers, HeaderName> {
    let named_by_connection: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .collect();
    let mut out = crate::protocol::Headers::new();
    for name in headers.keys() {
        if is_hop_by_hop(name)
            || is_reserved_for_engine(name.as_str())
            || named_by_connection.iter().any(|token| token == name.as_str())
        {
            continue;
        }
        let separator = if name == http::header::COOKIE { "; " } else { ", " };
        let mut joined = String::new();
        for value in headers.get_all(name) {
            let text = value.to_str().map_err(|_| name.clone())?;
            if !joined.is_empty() {
                joined.push_str(separator);
            }
            joined.push_str(text);
        }
        out.insert(name.as_str().to_owned(), joined);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn drops_hop_by_hop_and_connection_named_headers() {
        let headers: HeaderMap = [
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("authorization", "Bearer t"),
            ("transfer-encoding", "chunked"),
            ("accept", "a"),
            ("accept", "b"),
            ("x-ezthrottle-job-id", "job_1"),
        ]
        .into_iter()
        .map(|(name, value)| (HeaderName::from_static(name), http::HeaderValue::from_static(value)))
        .collect();
        let out = forwardable_headers(&headers).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out["authorization"], "Bearer t");
        assert_eq!(out["accept"], "a, b");
    }
}
