//! Forward failing calls to EZThrottle instead of retrying them in a storm.
//!
//! [`ForwardLayer`] wraps any `tower::Service<http::Request<B>>` that returns
//! `http::Response<R>`: hyper-util's legacy client, a `tower::ServiceBuilder` stack, or
//! your own service. Your code keeps calling the API directly. When the API answers a
//! status the policy selects (by default 429, 500, 502, 503, 504) or the call fails in
//! transport, the request is submitted to EZThrottle as a job, and the caller gets:
//!
//! - `202 Accepted`, `content-type: application/json`, with the body
//!   `{"job_id":"job_…","status":"queued","idempotent_key":"…","duplicate":false,"forwarded":true,"original_status":429,"reason":"status"}`
//!   (`original_status` is `null` for a transport error; `reason` is one of
//!   `status`, `transport_error`, `circuit_open`, `performance`);
//! - the headers `x-ezthrottle-job-id` and `x-ezthrottle-forwarded: true`;
//! - a typed [`ForwardedJob`] response extension with the receipt and the original status.
//!
//! The job is the original request: same method, URL, end-to-end headers (including
//! `Authorization` and `Idempotency-Key`) and body. Hop-by-hop headers are dropped, and
//! so is every header named with [`deny_header`](ForwardLayer::deny_header). The target's
//! `Retry-After` (seconds or HTTP date) becomes the job's `retry_at`: EZThrottle will not
//! run it earlier. It is never more than 24 h ahead
//! ([`MAX_RETRY_AT_HORIZON`](ezthrottle_core::protocol::MAX_RETRY_AT_HORIZON); lower it
//! with [`retry_at_horizon`](ForwardLayer::retry_at_horizon)), so a `Retry-After` of
//! centuries still gives a job that runs. The result reaches the webhooks of the layer's job template
//! ([`with_template`](ForwardLayer::with_template)).
//!
//! # Example
//!
//! A fake API (a `tower::service_fn`) that is always rate limited, and the local engine
//! from `ezthrottle-local` as EZThrottle:
//!
//! ```
//! use bytes::Bytes;
//! use ezthrottle_core::EZThrottle;
//! use ezthrottle_tower::{ForwardLayer, ForwardedJob};
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let engine = ezthrottle_local::Engine::builder().open().start().await?;
//! let client = EZThrottle::builder().direct(engine.base_url()).build()?;
//!
//! let api = ServiceBuilder::new().layer(ForwardLayer::new(client)).service_fn(|_: Request<Full<Bytes>>| async {
//!     let limited = Response::builder().status(429).header("retry-after", "120").body(Full::new(Bytes::new()))?;
//!     Ok::<_, http::Error>(limited)
//! });
//!
//! let request = Request::post("http://127.0.0.1:9/orders")
//!     .header("authorization", "Bearer secret")
//!     .header("idempotency-key", "order-42")
//!     .body(Full::new(Bytes::from(r#"{"sku":"tea"}"#)))?;
//! let response = api.oneshot(request).await?;
//!
//! assert_eq!(response.status(), StatusCode::ACCEPTED);
//! let job = response.extensions().get::<ForwardedJob>().cloned().ok_or("not forwarded")?;
//! assert_eq!(job.original_status, Some(StatusCode::TOO_MANY_REQUESTS));
//! assert_eq!(job.receipt.idempotent_key.as_deref(), Some("order-42"));
//! let body: serde_json::Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
//! assert_eq!(body["forwarded"], true);
//! assert_eq!(body["original_status"], 429);
//! engine.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! With hyper-util's client, a refused connection is a transport error, forwarded too:
//!
//! ```
//! use bytes::Bytes;
//! use ezthrottle_core::EZThrottle;
//! use ezthrottle_tower::{ForwardLayer, ForwardReason, ForwardedJob};
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let engine = ezthrottle_local::Engine::builder().open().start().await?;
//! let ezthrottle = EZThrottle::builder().direct(engine.base_url()).build()?;
//! let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let client = ForwardLayer::new(ezthrottle).layer(http);
//!
//! // Nothing listens on port 9 of the loopback: the connection is refused.
//! let response = client.oneshot(Request::get("http://127.0.0.1:9/health").body(Full::default())?).await?;
//! assert_eq!(response.status(), StatusCode::ACCEPTED);
//! let job = response.extensions().get::<ForwardedJob>().ok_or("not forwarded")?;
//! assert_eq!(job.reason, ForwardReason::TransportError);
//! assert_eq!(job.original_status, None);
//! # engine.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Which calls forward
//!
//! A [`ForwardPolicy`] decides from the outcome, `&Result<http::Response<R>, E>`, so it
//! can read the status and the headers. The default, [`DefaultForwardPolicy`], forwards
//! 429, 500, 502, 503, 504 and every error of the wrapped service; change it with
//! [`forward_on`](ForwardLayer::forward_on), [`forward_on_status`](ForwardLayer::forward_on_status)
//! and [`forward_on_transport_error`](ForwardLayer::forward_on_transport_error), or
//! replace it with [`policy`](ForwardLayer::policy) (a closure works).
//!
//! Then the one replay rule of the SDK, [`ezthrottle_core::replay`] (its table is there),
//! decides whether EZThrottle may run the request again, from the request's method, its
//! `Idempotency-Key` header and how far the call got
//! ([`CallFailure`](ezthrottle_core::CallFailure)): a response is
//! [`CallFailure::of_status`](ezthrottle_core::CallFailure::of_status) (429 proves the call
//! did not run); an error of the wrapped service is *not sent* only when provable
//! (hyper-util's client error says `is_connect()`, the chain of a boxed error, an
//! `io::Error`, a `reqwest::Error` or a `reqwest_middleware::Error` tells of a failed
//! connection, or a test given to [`not_sent_when`](ForwardLayer::not_sent_when) says so
//! for a client of your own); any other error counts as *sent, no answer*. So by default
//! `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE` and any request with an
//! `Idempotency-Key` are forwarded on every failure the policy selects, and `POST`,
//! `PATCH` and other methods only on a 429 or when not sent. A request the rule keeps
//! gets its original answer with a [`ForwardFailed`] extension whose reason names the
//! fix (an `Idempotency-Key` header, or
//! `with_template(|job| job.replay(ReplayPolicy::Always))`), or its original error, with
//! a `tracing` event. The circuit breaker records the outcome either way.
//!
//! With `with_template(|job| job.step_type(StepType::Performance))`
//! ([`with_template`](ForwardLayer::with_template)) every request is
//! submitted without calling the target.
//!
//! # Request bodies
//!
//! The body must be known before the call for the request to be forwarded after it. The
//! layer captures a body whose `size_hint` has an upper bound of at most
//! [`max_replay_bytes`](ForwardLayer::max_replay_bytes) (default 1 MiB), then passes the
//! same bytes on (`B::from(bytes)`); an empty body is passed as it is. A body of unknown
//! size (a stream) or larger is passed through untouched: if its call then fails, the
//! original answer is returned with a [`ForwardFailed`] extension and a `tracing` event,
//! never an upfront error. A job carries its body as text: a body that is not UTF-8
//! is not forwarded either. Trailers of a captured body are not replayed.
//!
//! `B` must implement `http_body::Body + From<Bytes> + Unpin`: `Full<Bytes>`,
//! `axum::body::Body` and `reqwest::Body` do. A body whose bytes are already in memory is
//! read while the call is made; one still arriving (with a known size) is read first,
//! then sent.
//!
//! # When forwarding fails
//!
//! If EZThrottle refuses the job or cannot be reached, the caller gets the original
//! response unchanged plus a [`ForwardFailed`] extension (or the original error, with a
//! `warn` event): every call gets exactly one answer.
//!
//! When the target was not called yet (circuit open, PERFORMANCE) and the submission
//! fails, the target is called after all only if EZThrottle certainly did not take the
//! job ([`Error::is_not_sent`](ezthrottle_core::Error::is_not_sent), a 4xx refusal) or
//! the request may run twice (an idempotent method, an `Idempotency-Key`,
//! `ReplayPolicy::Always`). Otherwise EZThrottle may hold the job, and the caller gets a
//! synthesized `502 Bad Gateway` (text body, `x-ezthrottle-forwarded: unknown`, a
//! [`ForwardFailed`] extension: "EZThrottle may have accepted the job; not calling the API
//! to avoid running it twice") instead of a second run.
//!
//! # The answer of a forwarded call
//!
//! [`respond_with`](ForwardLayer::respond_with) chooses it: [`ForwardResponse::Receipt`]
//! (the default) is the `202 Accepted` above; [`ForwardResponse::Original`] is the target's
//! own answer (e.g. the 429, body untouched) with the [`ForwardedJob`] extension and the
//! `x-ezthrottle-job-id` / `x-ezthrottle-forwarded: true` headers. A call with no answer
//! of the target (a transport error, a circuit open, PERFORMANCE) gets the `202` either way.
//!
//! # Idempotency
//!
//! The request's `Idempotency-Key` header, when it has one, is the job's key: two
//! forwarded calls with the same key are one job (the second receipt says
//! `duplicate: true`). Without the header, the template's
//! [`IdempotentStrategy`](ezthrottle_core::IdempotentStrategy) decides; the default,
//! `CredentialHash`, computes the key from the method, full URL, body and credential
//! headers (`Authorization`, `Cookie`, ...), so two callers with different tokens never
//! share a job while the same caller repeating a call within EZThrottle's idempotency
//! window is one job. `Unique` makes every call its own job (set it with
//! [`with_template`](ForwardLayer::with_template));
//! [`idempotency_key_fn`](ForwardLayer::idempotency_key_fn) computes the key.
//!
//! # Circuit breaker
//!
//! With [`circuit_breaker`](ForwardLayer::circuit_breaker), after K consecutive forwarded
//! outcomes from one host, requests to it go straight to EZThrottle without touching it,
//! for a cool-down or until its `Retry-After` (at most
//! [`max_open`](CircuitBreaker::max_open)); then one probe is let through. See
//! [`CircuitBreaker`].
//!
//! # Response body and errors
//!
//! The response body is [`ResponseBody<R>`]: the target's body untouched, or the receipt.
//! The error type is the wrapped service's: the layer never adds errors.
//!
//! # Telemetry
//!
//! Each call is a `forward` span (target `ezthrottle::forward`, at `debug`) with fields
//! `method`, `host` and, once it ends, `outcome` (`passed`, `forwarded`, `not_forwarded`,
//! `error`) and, when forwarded, `reason`. The call to the target and the submission run
//! inside it, so the HTTP client's spans and the client's `submit` span nest in it; the
//! path and the query are never fields (`host` is empty for a URI without one). Every
//! forwarded call is also an `info` event and counts in `ezthrottle_forwards_total{reason}`
//! ([`ezthrottle_core::telemetry`]). When nothing listens at `debug` (no subscriber that
//! wants it, and no `log` logger at debug for `tracing`'s `log` feature), the call makes
//! no span at all: the pass-through pays nothing for it.
//!
//! # reqwest
//!
//! With the feature `reqwest-middleware`, `ForwardMiddleware` does the same for
//! `reqwest_middleware` clients, with the same settings (convert a layer with
//! `ForwardMiddleware::from(layer)` to share them).

mod body;
mod breaker;
mod capture;
mod decision;
mod extension;
mod future;
mod head;
#[cfg(feature = "reqwest-middleware")]
mod kept;
mod layer;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod policy;
mod replay;
mod service;
mod settings;

pub use body::ResponseBody;
pub use breaker::{CircuitBreaker, CircuitState, DEFAULT_MAX_OPEN};
pub use extension::{ForwardFailed, ForwardReason, ForwardResponse, ForwardedJob};
pub use future::ResponseFuture;
pub use layer::ForwardLayer;
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use middleware::ForwardMiddleware;
pub use policy::{DefaultForwardPolicy, ForwardPolicy, StatusCodes};
pub use service::Forward;
pub use settings::DEFAULT_MAX_REPLAY_BYTES;
