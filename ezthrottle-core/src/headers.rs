//! Which request headers may be forwarded to EZThrottle.

use http::HeaderName;

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

/// The end-to-end headers of `headers` as a job's string map: hop-by-hop headers are
/// dropped (including any named by `Connection`), repeated headers are joined with `, `
/// (`; ` for `cookie`).
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
        if is_hop_by_hop(name) || named_by_connection.iter().any(|token| token == name.as_str()) {
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
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, x-hop".parse().unwrap());
        headers.insert("x-hop", "1".parse().unwrap());
        headers.insert("authorization", "Bearer t".parse().unwrap());
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        headers.append("accept", "a".parse().unwrap());
        headers.append("accept", "b".parse().unwrap());
        let out = forwardable_headers(&headers).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out["authorization"], "Bearer t");
        assert_eq!(out["accept"], "a, b");
    }
}
