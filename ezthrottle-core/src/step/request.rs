//! A step's request taken from a request that was about to be made (or failed): what the
//! tower layers and [`ForwardToEZThrottle`](crate::ForwardToEZThrottle) build jobs from.

use bytes::Bytes;
use http::Method;

use super::Step;
use crate::forward::ForwardBuildError;
use crate::protocol::headers::{IDEMPOTENCY_KEY_HEADER, forwardable_headers};

impl Step {
    /// This step's options (a template, e.g. [`Step::default`]) with the request of
    /// `request`: its method, full URL, end-to-end headers and body.
    ///
    /// Hop-by-hop headers are dropped; `Authorization` and every other end-to-end header is
    /// kept (the target needs them), added to the template's headers. The request's
    /// `Idempotency-Key` header, when it has one, is the job's key: the caller's key wins.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use ezthrottle_core::{Step, Webhook};
    ///
    /// let template = Step::default().webhook(Webhook::new("https://app.example.com/hook"));
    /// let request = http::Request::post("https://api.example.com/orders?page=2")
    ///     .header("idempotency-key", "order-7")
    ///     .body(Bytes::from_static(b"{}"))?;
    /// let job = template.for_http_request(&request)?.to_job();
    /// assert_eq!(job.url, "https://api.example.com/orders?page=2");
    /// assert_eq!(job.idempotent_key.as_deref(), Some("order-7"));
    /// assert_eq!(job.webhooks.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A relative URI, a body or header value that is not UTF-8 (a job carries text).
    pub fn for_http_request(self, request: &http::Request<Bytes>) -> Result<Self, ForwardBuildError> {
        self.for_parts(request.method(), &request.uri().to_string(), request.headers(), Some(request.body()))
    }

    /// As [`for_http_request`](Self::for_http_request), for a `reqwest::Request`. Its body
    /// must be buffered (not a stream).
    ///
    /// # Errors
    ///
    /// A streaming body, or a body or header value that is not UTF-8.
    pub fn for_reqwest(self, request: &reqwest::Request) -> Result<Self, ForwardBuildError> {
        let body = match request.body() {
            None => None,
            Some(body) => Some(body.as_bytes().ok_or(ForwardBuildError::StreamingBody)?),
        };
        self.for_parts(request.method(), request.url().as_str(), request.headers(), body)
    }

    fn for_parts(
        mut self,
        method: &Method,
        url: &str,
        headers: &http::HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Self, ForwardBuildError> {
        crate::protocol::check_absolute_url(url)
            .map_err(|reason| ForwardBuildError::Url { url: url.to_owned(), reason })?;
        let forwarded =
            forwardable_headers(headers).map_err(|name| ForwardBuildError::NonUtf8Header(name.as_str().to_owned()))?;
        let body = match body.filter(|bytes| !bytes.is_empty()) {
            None => None,
            Some(bytes) => Some(String::from_utf8(bytes.to_vec()).map_err(|_| ForwardBuildError::NonUtf8Body)?),
        };
        let key = headers
            .get(IDEMPOTENCY_KEY_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty());
        if let Some(key) = key {
            self.request.idempotent_key = Some(key.to_owned());
        }
        self.request.url = url.to_owned();
        self.request.method = method.clone();
        self.request.headers.extend(forwarded);
        self.request.body = body;
        Ok(self)
    }
}
