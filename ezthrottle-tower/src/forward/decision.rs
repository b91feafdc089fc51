//! The framework-neutral half of forwarding, shared by the tower layer and the reqwest
//! middleware: what the request looked like, whether it goes to the target or straight
//! to EZThrottle, the job built from it, and the `202 Accepted` answered for it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use ezthrottle_core::protocol::headers::{FORWARDED_HEADER, IDEMPOTENCY_KEY_HEADER, JOB_ID_HEADER};
use ezthrottle_core::protocol::{retry_after_delay, retry_at_within};
use ezthrottle_core::{Job, SubmitReceipt};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use super::breaker::{Admission, ProbeGuard};
use super::extension::{ForwardFailed, ForwardReason, ForwardedJob};
use super::head::Head;
use super::settings::Settings;

/// A job submission in flight. Boxed: only forwarded calls pay for it.
pub(crate) type Submission = Pin<Box<dyn Future<Output = Result<SubmitReceipt, ezthrottle_core::Error>> + Send>>;

/// Why a request body was not captured for forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotCaptured {
    /// No upper bound on its size: a stream.
    UnknownSize,
    /// Possibly larger than `max_replay_bytes`: its size may reach `upper`.
    TooLarge { upper: u64, cap: usize },
    /// A reqwest body that cannot be cloned (a stream).
    #[cfg(feature = "reqwest-middleware")]
    NotCloneable,
}

impl fmt::Display for NotCaptured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownSize => f.write_str("the request body has no known size (a stream), so it was not captured"),
            Self::TooLarge { upper, cap } => {
                write!(f, "the request body (up to {upper} bytes) may be larger than max_replay_bytes ({cap})")
            }
            #[cfg(feature = "reqwest-middleware")]
            Self::NotCloneable => {
                f.write_str("the request body is a stream that cannot be cloned, so it was not captured")
            }
        }
    }
}

/// Whether a body of this size is captured: `Ok(())` or why not.
pub(crate) fn capturable(upper: Option<u64>, cap: usize) -> Result<(), NotCaptured> {
    match upper {
        None => Err(NotCaptured::UnknownSize),
        Some(upper) if upper > cap as u64 => Err(NotCaptured::TooLarge { upper, cap }),
        Some(_) => Ok(()),
    }
}

/// Forward without calling the target (the circuit is open, or PERFORMANCE): why, and the
/// `retry_at` of the job.
pub(crate) type First = Option<(ForwardReason, Option<SystemTime>)>;

/// A call's part in its target's circuit: only with a circuit breaker and a target host.
/// Boxed where a call keeps it, so that calls without a breaker do not carry it.
#[derive(Debug)]
pub(crate) struct BreakerCall {
    /// The circuit-breaker key of the target.
    host: String,
    /// Set while this call is the half-open probe.
    probe: Option<ProbeGuard>,
}

impl BreakerCall {
    /// Drops the half-open probe's guard, if this call is the probe: the circuit reopens.
    pub(crate) fn release_probe(&mut self) {
        self.probe = None;
    }
}

impl Settings {
    /// Decides how a request goes, before anything is sent: its circuit (`host` gives the
    /// target's breaker key; it runs only with a breaker), and whether it is forwarded
    /// first.
    #[inline]
    pub(crate) fn route(&self, host: impl FnOnce() -> Option<String>) -> (Option<Box<BreakerCall>>, First) {
        let performance = (!self.template.is_frugal()).then_some((ForwardReason::Performance, None));
        let Some((breaker, host)) = self.breaker.as_ref().and_then(|breaker| Some((breaker, host()?))) else {
            return (None, performance);
        };
        if performance.is_some() {
            return (Some(Box::new(BreakerCall { host, probe: None })), performance);
        }
        let (probe, first) = match breaker.admit(&host) {
            Admission::Call => (None, None),
            Admission::Probe(guard) => (Some(guard), None),
            Admission::Forward { retry_at } => (None, Some((ForwardReason::CircuitOpen, retry_at))),
        };
        (Some(Box::new(BreakerCall { host, probe })), first)
    }

    /// Records, for the circuit breaker, the outcome of a call that reached the target;
    /// a probe's guard is settled and dropped.
    pub(crate) fn record(&self, circuit: Option<&mut BreakerCall>, forwardable: bool, retry_at: Option<SystemTime>) {
        if let (Some(breaker), Some(circuit)) = (&self.breaker, circuit) {
            let mut probe = circuit.probe.take();
            breaker.record(&circuit.host, forwardable, retry_at, probe.as_mut());
        }
    }

    /// The job for `head` + `body`: the template's options, the call's request;
    /// `retry_at` from the target's `Retry-After`.
    ///
    /// Hop-by-hop headers and the deny-list are dropped; every other header (including
    /// `Authorization` and `Idempotency-Key`) is kept. The key: the `Idempotency-Key`
    /// header, else the key function's, else the template's strategy.
    pub(crate) fn job(&self, head: &Head, body: &Bytes, retry_at: Option<SystemTime>) -> Result<Job, ForwardFailed> {
        let mut parts = head.parts()?;
        let has_key = parts.headers.contains_key(IDEMPOTENCY_KEY_HEADER);
        for denied in &self.deny_headers {
            parts.headers.remove(denied);
        }
        let request = Request::from_parts(parts, body.clone());
        let mut step =
            self.template.clone().for_http_request(&request).map_err(|err| not_forwarded(err.to_string()))?;
        let (parts, _) = request.into_parts();
        if let Some(at) = retry_at {
            step = step.retry_at(at);
        }
        if let Some(metadata_fn) = &self.metadata_fn {
            step = metadata_fn(&parts).into_iter().fold(step, |step, (key, value)| step.metadata_entry(key, value));
        }
        if !has_key && let Some(key) = self.key_fn.as_ref().and_then(|key_fn| key_fn(&parts, body)) {
            step = step.idempotent_key(key);
        }
        Ok(step.to_job())
    }

    /// The instant of a response's `Retry-After` (the protocol's one parser), no further
    /// ahead than the layer's `retry_at_horizon`, the sum checked.
    pub(crate) fn retry_at_of(&self, headers: &HeaderMap) -> Option<SystemTime> {
        let now = SystemTime::now();
        Some(retry_at_within(now, retry_after_delay(headers, now)?, self.retry_at_horizon))
    }

    /// Submits `job` in a boxed future (the only allocation of the forwarding path that
    /// the pass-through path never makes). Polled inside the call's [`call_span`], so the
    /// client's `submit` span nests in it.
    pub(crate) fn submit(&self, job: Job) -> Submission {
        let client = self.client.clone();
        Box::pin(async move { client.submit_job(&job).await })
    }
}

/// Runs `f` in `span`, if there is one (a [`call_span`]).
pub(crate) fn in_span<T>(span: Option<&tracing::Span>, f: impl FnOnce() -> T) -> T {
    match span {
        Some(span) => span.in_scope(f),
        None => f(),
    }
}

/// The span of one call through the layer or the middleware (`forward`, target
/// `ezthrottle::forward`, at debug): the call to the target and the submission, if any,
/// happen inside it. Its `outcome` is recorded at the end by [`record_outcome`]. Fields
/// hold the method and the host, never the path or query (they may carry credentials).
/// `host` runs only when the field is written (empty for a URI without a host): finding
/// the host in a `Uri` costs a few hundred instructions, and with `tracing`'s `log`
/// feature (on with axum's defaults) and no subscriber set, the fields of every span are
/// built even when nothing listens.
///
/// `None` when nothing listens to it, and then a call pays nothing for a span: when
/// nothing listens at debug (neither a subscriber nor the `log` logger) none is made (the
/// span macro alone would build its fields and check the `log` level at creation and at
/// drop), and a disabled one is not kept (entering it checks that level again each time).
// Inline, the span made apart: every call asks, and nearly always for nothing.
#[inline]
pub(crate) fn call_span<'a>(method: &Method, host: impl Fn() -> Option<&'a str>) -> Option<tracing::Span> {
    if !tracing::level_enabled!(tracing::Level::DEBUG) && log::max_level() < log::LevelFilter::Debug {
        return None;
    }
    listened_span(method, host)
}

/// [`call_span`] when something may listen.
fn listened_span<'a>(method: &Method, host: impl Fn() -> Option<&'a str>) -> Option<tracing::Span> {
    let span = tracing::debug_span!(
        target: ezthrottle_core::telemetry::TARGET_FORWARD,
        "forward",
        method = %method,
        host = %Lazy(host),
        outcome = tracing::field::Empty,
        reason = tracing::field::Empty,
    );
    (!span.is_disabled()).then_some(span)
}

/// A field value found only when it is written.
struct Lazy<F>(F);

impl<'a, F: Fn() -> Option<&'a str>> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str((self.0)().unwrap_or_default())
    }
}

/// Records on `span` how the call ended, read off its answer: `forwarded` (with its
/// reason) when it carries a [`ForwardedJob`], `not_forwarded` (a forward was due and
/// failed or was refused) when it carries a [`ForwardFailed`], `passed` otherwise, and
/// `error` for the wrapped service's error (`None`).
pub(crate) fn record_outcome(span: Option<&tracing::Span>, answer: Option<&http::Extensions>) {
    let Some(span) = span else {
        return;
    };
    let (outcome, reason) = match answer {
        None => ("error", None),
        Some(extensions) => match (extensions.get::<ForwardedJob>(), extensions.get::<ForwardFailed>()) {
            (Some(job), _) => ("forwarded", Some(job.reason.as_str())),
            (None, Some(_)) => ("not_forwarded", None),
            (None, None) => ("passed", None),
        },
    };
    span.record("outcome", outcome);
    if let Some(reason) = reason {
        span.record("reason", reason);
    }
}

pub(crate) fn not_forwarded(reason: impl Into<String>) -> ForwardFailed {
    ForwardFailed { reason: reason.into(), status: None }
}

/// Why a submission failed, as the extension carries it.
pub(crate) fn submission_failed(error: &ezthrottle_core::Error) -> ForwardFailed {
    ForwardFailed { reason: format!("submitting the job failed: {error}"), status: error.status() }
}

/// The `202 Accepted` answered for a forwarded call: JSON receipt, headers and the
/// [`ForwardedJob`] extension.
pub(crate) fn accepted<T>(receipt: SubmitReceipt, reason: ForwardReason, wrap: impl FnOnce(Bytes) -> T) -> Response<T> {
    let original_status = reason.original_status();
    let body = serde_json::json!({
        "job_id": receipt.job_id,
        "status": receipt.status.as_str(),
        "idempotent_key": receipt.idempotent_key,
        "duplicate": receipt.duplicate,
        "forwarded": true,
        "original_status": original_status.map(|status| status.as_u16()),
        "reason": reason.as_str(),
    });
    let mut response = Response::new(wrap(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::ACCEPTED;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let job = mark_forwarded(response.headers_mut(), receipt, reason);
    response.extensions_mut().insert(job);
    response
}

/// Marks an answer as forwarded: adds the headers `x-ezthrottle-job-id` and
/// `x-ezthrottle-forwarded: true`, and gives the [`ForwardedJob`] extension to insert.
pub(crate) fn mark_forwarded(headers: &mut HeaderMap, receipt: SubmitReceipt, reason: ForwardReason) -> ForwardedJob {
    // The one place every forwarded call passes: counted and logged here.
    let status = reason.original_status().map(|status| status.as_u16());
    tracing::info!(
        target: ezthrottle_core::telemetry::TARGET_FORWARD,
        job_id = %receipt.job_id,
        reason = reason.as_str(),
        status,
        duplicate = receipt.duplicate,
        "call forwarded to EZThrottle"
    );
    metrics::counter!(ezthrottle_core::telemetry::FORWARDS_TOTAL, "reason" => reason.as_str()).increment(1);
    if let Ok(id) = HeaderValue::from_str(&receipt.job_id) {
        headers.insert(JOB_ID_HEADER, id);
    }
    headers.insert(FORWARDED_HEADER, HeaderValue::from_static("true"));
    ForwardedJob { receipt, original_status: reason.original_status(), reason }
}

/// The synthesized `502 Bad Gateway` for a request not sent to the target because
/// EZThrottle may hold its job (`x-ezthrottle-forwarded: unknown`).
pub(crate) fn maybe_forwarded<T>(failed: ForwardFailed, wrap: impl FnOnce(Bytes) -> T) -> Response<T> {
    let mut response = Response::new(wrap(Bytes::from(format!("{}\n", failed.reason))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(FORWARDED_HEADER, HeaderValue::from_static("unknown"));
    response.extensions_mut().insert(failed);
    response
}

/// The synthesized answer when the request body failed while being captured: the request
/// could not be sent at all.
pub(crate) fn body_failed<T>(reason: String, wrap: impl FnOnce(Bytes) -> T) -> Response<T> {
    let mut response = Response::new(wrap(Bytes::from(format!("{reason}\n"))));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(FORWARDED_HEADER, HeaderValue::from_static("false"));
    response.extensions_mut().insert(not_forwarded(reason));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use ezthrottle_core::protocol::time::{from_unix_ms, to_unix_ms};
    use ezthrottle_core::{EZThrottle, IdempotentStrategy, SubmissionStatus, Webhook};

    fn settings() -> Settings {
        Settings::new(EZThrottle::builder().direct("http://127.0.0.1:9").build().unwrap())
    }

    fn head(uri: &str, headers: &[(&str, &str)]) -> Head {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        let mut request = Request::post(uri).version(http::Version::HTTP_11).body(()).unwrap();
        *request.headers_mut() = map;
        Head::of(&request)
    }

    #[test]
    fn the_job_keeps_the_request_and_the_settings() {
        let mut settings = settings();
        settings.template = settings.template.webhook(Webhook::new("http://127.0.0.1:1/hook"));
        settings.deny_headers = vec![http::HeaderName::from_static("x-secret")];
        settings.metadata_fn = Some(std::sync::Arc::new(|parts: &http::request::Parts| {
            let mut metadata = ezthrottle_core::protocol::Metadata::new();
            metadata.insert("path".into(), parts.uri.path().into());
            metadata
        }));
        let head = head(
            "http://api.test:8080/orders?x=1",
            &[
                ("authorization", "Bearer t"),
                ("idempotency-key", "order-7"),
                ("connection", "close"),
                ("x-secret", "s"),
                ("content-type", "application/json"),
            ],
        );
        let job = settings.job(&head, &Bytes::from_static(b"{\"a\":1}"), from_unix_ms(42)).unwrap();
        assert_eq!(job.url, "http://api.test:8080/orders?x=1");
        assert_eq!(job.method, Method::POST);
        assert_eq!(job.body.as_deref(), Some("{\"a\":1}"));
        assert_eq!(job.idempotent_key.as_deref(), Some("order-7"));
        assert_eq!(job.retry_at.map(to_unix_ms), Some(42));
        assert_eq!(job.headers.get("authorization").map(String::as_str), Some("Bearer t"));
        assert_eq!(job.headers.get("idempotency-key").map(String::as_str), Some("order-7"));
        assert!(!job.headers.contains_key("connection") && !job.headers.contains_key("x-secret"), "{:?}", job.headers);
        assert_eq!(job.metadata["path"], "/orders");
        assert_eq!(job.webhooks.len(), 1);
    }

    #[test]
    fn idempotency_keys_header_then_key_fn_then_the_template() {
        let body = Bytes::new();
        let keyed = head("http://api.test/x", &[("idempotency-key", "k")]);
        let plain = head("http://api.test/x", &[("authorization", "Bearer a")]);
        let mut settings = settings();
        let computed = settings.job(&plain, &body, None).unwrap().idempotent_key.unwrap();
        assert_eq!(computed.len(), 64, "the credential hash by default");
        let other = head("http://api.test/x", &[("authorization", "Bearer b")]);
        assert_ne!(settings.job(&other, &body, None).unwrap().idempotent_key.unwrap(), computed);
        settings.template = settings.template.idempotent_strategy(IdempotentStrategy::Hash);
        assert_eq!(settings.job(&plain, &body, None).unwrap().idempotent_key, None);
        settings.template = settings.template.idempotent_strategy(IdempotentStrategy::Unique);
        let unique = settings.job(&plain, &body, None).unwrap().idempotent_key.unwrap();
        assert_ne!(unique, settings.job(&plain, &body, None).unwrap().idempotent_key.unwrap());
        assert_eq!(settings.job(&keyed, &body, None).unwrap().idempotent_key.as_deref(), Some("k"), "the header wins");
        settings.key_fn = Some(std::sync::Arc::new(|parts: &http::request::Parts, _: &[u8]| {
            Some(format!("fn-{}", parts.uri.path()))
        }));
        assert_eq!(settings.job(&plain, &body, None).unwrap().idempotent_key.as_deref(), Some("fn-/x"));
        assert_eq!(settings.job(&keyed, &body, None).unwrap().idempotent_key.as_deref(), Some("k"), "the header wins");
    }

    #[test]
    fn relative_uris_and_binary_bodies_are_not_forwarded() {
        let settings = settings();
        let relative = settings.job(&head("/x", &[]), &Bytes::new(), None).unwrap_err();
        assert!(relative.reason.contains("URL"), "{relative}");
        let binary = settings.job(&head("http://a.test/x", &[]), &Bytes::from_static(&[0xff, 0xfe]), None).unwrap_err();
        assert!(binary.reason.contains("UTF-8"), "{binary}");
    }

    #[test]
    fn accepted_answers_202_with_the_receipt() {
        let receipt = SubmitReceipt::new("job_1", SubmissionStatus::Queued).with_idempotent_key("k");
        let response = accepted(receipt, ForwardReason::Status(StatusCode::TOO_MANY_REQUESTS), |b| b);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()[JOB_ID_HEADER], "job_1");
        assert_eq!(response.headers()[FORWARDED_HEADER], "true");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"job_id":"job_1","status":"queued","idempotent_key":"k","duplicate":false,
                "forwarded":true,"original_status":429,"reason":"status"})
        );
        let job = response.extensions().get::<ForwardedJob>().unwrap();
        assert_eq!(job.original_status, Some(StatusCode::TOO_MANY_REQUESTS));
    }

    #[test]
    fn the_call_span_is_none_unless_something_listens_at_debug() {
        // No test of this binary sets a subscriber for its thread or a `log` logger.
        let found = std::cell::Cell::new(0);
        let host = || {
            found.set(found.get() + 1);
            Some("api.test")
        };
        assert!(call_span(&Method::GET, host).is_none());
        let subscriber =
            tracing_subscriber::fmt().with_max_level(tracing::Level::DEBUG).with_writer(std::io::sink).finish();
        tracing::subscriber::with_default(subscriber, || {
            assert!(!call_span(&Method::GET, host).expect("a span").is_disabled());
        });
        assert_eq!(found.get(), 1, "the host is found once, for the span that was written");
    }

    #[test]
    fn bodies_are_captured_up_to_the_cap() {
        assert_eq!(capturable(None, 10), Err(NotCaptured::UnknownSize));
        assert_eq!(capturable(Some(11), 10), Err(NotCaptured::TooLarge { upper: 11, cap: 10 }));
        assert_eq!(capturable(Some(10), 10), Ok(()));
    }
}
