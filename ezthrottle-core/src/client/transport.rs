//! One call to EZThrottle, in either mode, answered the same way.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

use super::{EZThrottle, Endpoint};
use crate::error::{Error, Origin};
use crate::protocol::retry_at_from;
use crate::protocol::{ErrorBody, ProxyAllowed, ProxyEnvelope, paths};

/// The `User-Agent` of every call to EZThrottle, set per request so that it is sent with a
/// user's own `reqwest::Client` too.
pub const USER_AGENT: &str = concat!("ezthrottle-rs/", env!("CARGO_PKG_VERSION"));

/// The most of an answer body this client buffers.
pub(crate) const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// EZThrottle's answer to one call, unwrapped from the proxy envelope in cloud mode.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) origin: Origin,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// Parses a 2xx answer as `T`; any other answer becomes the matching [`Error`].
    pub(crate) fn success_json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        if !self.status.is_success() {
            return Err(self.into_error());
        }
        serde_json::from_slice(&self.body).map_err(|err| Error::InvalidResponse {
            origin: self.origin,
            status: self.status,
            message: format!("{err} in {}", snippet(&self.body)),
        })
    }

    /// The error an unsuccessful answer stands for.
    pub(crate) fn into_error(self) -> Error {
        let body: Option<ErrorBody> = serde_json::from_slice(&self.body).ok();
        let message = body
            .as_ref()
            .and_then(ErrorBody::text)
            .map(str::to_owned)
            .unwrap_or_else(|| fallback_message(self.status, &self.body));
        let origin = self.origin;
        match self.status {
            StatusCode::UNAUTHORIZED => Error::Unauthorized { origin, message },
            StatusCode::FORBIDDEN => Error::Forbidden { origin, message },
            StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge { origin, message },
            StatusCode::TOO_MANY_REQUESTS => Error::RateLimited {
                origin,
                message,
                retry_at: retry_at_from(&self.headers, body.as_ref(), std::time::SystemTime::now()),
            },
            status => Error::Api { origin, status, message },
        }
    }
}

impl EZThrottle {
    /// Sends `body` with `method` to the EZThrottle `path`, through the proxy in cloud
    /// mode, within the client's timeout.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<String>) -> Result<Answer, Error> {
        self.call_within(method, path, body, self.inner.timeout).await
    }

    /// [`call`](Self::call) within `timeout`.
    pub(crate) async fn call_within(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        timeout: Duration,
    ) -> Result<Answer, Error> {
        match &self.inner.endpoint {
            Endpoint::Direct { base } => {
                let url = format!("{base}{path}");
                let mut request = self.request(method, &url, timeout);
                if let Some(body) = body {
                    request = request.header(header::CONTENT_TYPE, "application/json").body(body);
                }
                self.send(request, &url, Origin::EZThrottle).await
            }
            Endpoint::Cloud { tracktags, ezthrottle } => {
                let envelope =
                    ProxyEnvelope::new(format!("{ezthrottle}{path}"), method.as_str(), body.unwrap_or_default());
                let url = format!("{tracktags}{}", paths::PROXY);
                let request = self
                    .request(Method::POST, &url, timeout)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(envelope_json(&envelope));
                let answer = self.send(request, &url, Origin::Proxy).await?;
                unwrap_proxy_answer(answer)
            }
        }
    }

    /// The base URL in direct mode; an error naming the reason in cloud mode.
    pub(crate) fn direct_base(&self) -> Result<&str, Error> {
        match &self.inner.endpoint {
            Endpoint::Direct { base } => Ok(base),
            Endpoint::Cloud { .. } => Err(Error::Config(
                "event streams need direct mode (an engine URL): the cloud's proxy does not stream".into(),
            )),
        }
    }

    /// A GET of `url` with the credentials and no overall timeout (a stream stays open;
    /// its reader bounds the silence instead).
    pub(crate) fn streaming_request(&self, url: &str) -> reqwest::RequestBuilder {
        let mut request =
            self.inner.http.get(url).header(header::ACCEPT, "text/event-stream").header(header::USER_AGENT, USER_AGENT);
        if let Some(authorization) = &self.inner.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        request
    }

    fn request(&self, method: Method, url: &str, timeout: Duration) -> reqwest::RequestBuilder {
        let mut request = self.inner.http.request(method, url).timeout(timeout).header(header::USER_AGENT, USER_AGENT);
        if let Some(authorization) = &self.inner.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str, origin: Origin) -> Result<Answer, Error> {
        let response = request.send().await.map_err(|err| Error::transport(url, err))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_capped(response, MAX_ANSWER_BYTES).await.map_err(|err| Error::transport(url, err))?;
        Ok(Answer { origin, status, headers, body })
    }
}

fn envelope_json(envelope: &ProxyEnvelope) -> String {
    serde_json::to_string(envelope).unwrap_or_else(|_| unreachable!("the envelope holds only strings"))
}

/// Unwraps the proxy's `forwarded_response`, or turns the proxy's own refusal into an error.
fn unwrap_proxy_answer(answer: Answer) -> Result<Answer, Error> {
    if answer.status != StatusCode::OK {
        return Err(answer.into_error());
    }
    let allowed: ProxyAllowed = match serde_json::from_slice(&answer.body) {
        Ok(allowed) => allowed,
        Err(err) => {
            // A 200 that is not an `allowed` answer: say what the proxy said, if anything.
            let denial: Option<ErrorBody> = serde_json::from_slice(&answer.body).ok();
            return Err(match denial.filter(|body| body.status.as_deref() == Some("denied")) {
                Some(body) => Error::Forbidden {
                    origin: Origin::Proxy,
                    message: format!("request denied: {}", body.text().unwrap_or("no reason given")),
                },
                None => Error::InvalidResponse {
                    origin: Origin::Proxy,
                    status: answer.status,
                    message: format!("{err} in {}", snippet(&answer.body)),
                },
            });
        }
    };
    if allowed.status != "allowed" {
        return Err(Error::Forbidden {
            origin: Origin::Proxy,
            message: format!("request denied ({})", allowed.status),
        });
    }
    let forwarded = allowed.forwarded_response;
    let status = StatusCode::from_u16(forwarded.status_code).map_err(|_| Error::InvalidResponse {
        origin: Origin::Proxy,
        status: answer.status,
        message: format!("forwarded_response.status_code {} is not an HTTP status", forwarded.status_code),
    })?;
    let mut headers = HeaderMap::new();
    for (name, value) in &forwarded.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            headers.append(name, value);
        }
    }
    Ok(Answer { origin: Origin::EZThrottle, status, headers, body: Bytes::from(forwarded.body) })
}

/// Reads at most `cap` bytes of a response body; a longer body is cut at `cap`.
pub(crate) async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Bytes, reqwest::Error> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap.saturating_sub(buffer.len());
        buffer.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if buffer.len() >= cap {
            break;
        }
    }
    Ok(buffer.freeze())
}

fn fallback_message(status: StatusCode, body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        snippet(body)
    }
}

/// The start of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body.get(..MAX).unwrap_or(body));
    if body.len() > MAX { format!("{text}…") } else { text.into_owned() }
}
