//! The response future of [`Forward`](super::Forward).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use ezthrottle_core::replay::CallFailure;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::ResponseBody;
use super::capture::{Capture, Chunks, Kept, read_body};
use super::decision::{
    BreakerCall, First, Submission, accepted, body_failed, call_span, capturable, mark_forwarded, maybe_forwarded,
    record_outcome, submission_failed,
};
use ezthrottle_core::protocol::redact::RedactedUrl;

use super::extension::{ForwardFailed, ForwardReason, ForwardResponse};
use super::head::Head;
use super::policy::ForwardPolicy;
use super::replay::{failure_of_error, maybe_accepted};
use super::settings::Config;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// Response future of [`Forward`](super::Forward).
    ///
    /// A state machine: call the wrapped service (with the request body captured, when
    /// its size is known and small enough), and, only if the outcome is forwarded, submit
    /// the job. The pass-through path allocates no box: a body already in memory (such as
    /// `Full<Bytes>`, `axum::body::Body::from(bytes)`, a buffered `reqwest::Body`) is read
    /// in `call` and the service is called there. Only the rarer states are boxed: the
    /// submission of a forwarded call, a request forwarded before calling the target,
    /// and a body whose bytes are still arriving when the call is made; so are a span
    /// something listens to and a circuit breaker's state.
    ///
    /// # `Send`
    ///
    /// The future is `Send` when the wrapped service `S`, its future, its response and
    /// error, the request body `B` and the policy `P` (`Send + Sync`) are; the boxed
    /// submission always is. With hyper-util's client and `Full<Bytes>` bodies it is.
    pub struct ResponseFuture<S, B, P>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, S::Future, S::Response, S::Error>,
        ctx: Ctx<P>,
        // Entered while the call is made and at each poll: the target's and the
        // submission's spans nest in it. `None` when nothing listens to it.
        span: Option<Box<tracing::Span>>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwned]
    enum State<S, B, F, T, E> {
        // The body is still arriving; the service is called once it is read.
        Collecting {
            pending: Box<Pending<S, B>>,
        },
        // The wrapped service is answering.
        Calling {
            #[pin]
            future: F,
            capture: Capture,
        },
        // The outcome is forwarded; the original is kept in case the submission fails.
        Submitting {
            work: Box<Submit<T, E>>,
        },
        // Forwarding without calling the target (circuit open, PERFORMANCE); if the
        // submission fails, the target is called after all.
        Ahead {
            work: Box<Ahead<S, B>>,
        },
        // The request body failed while it was read: the request cannot be sent.
        BodyFailed {
            error: String,
        },
        Done,
    }
}

/// A request whose body is still arriving, with the ready service that will send it.
struct Pending<S, B> {
    body: B,
    chunks: Chunks,
    trailers: bool,
    inner: S,
    parts: Parts,
    first: First,
}

struct Submit<T, E> {
    submission: Submission,
    original: Result<T, E>,
    reason: ForwardReason,
}

struct Ahead<S, B> {
    submission: Submission,
    inner: S,
    request: Request<B>,
    reason: ForwardReason,
}

/// What the future knows besides its state. Small: a future past 128 bytes is moved
/// with a `memcpy` call, and a call's future moves several times.
struct Ctx<P> {
    config: Arc<Config<P>>,
    /// Only with a circuit breaker and a target host.
    circuit: Option<Box<BreakerCall>>,
}

/// What [`capture`] made of the request.
enum Captured {
    /// The request can be sent now.
    Now(Capture),
    /// Its body is still arriving: what was read so far.
    Waiting { chunks: Chunks, trailers: bool },
    /// Its body failed while it was read.
    Failed(String),
}

/// Keeps what `request` can become as a job: reads a body already in memory (and gives the
/// request the same bytes back), when its size is known and at most `cap`.
fn capture<B>(request: &mut Request<B>, cap: usize) -> Captured
where
    B: Body + From<Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let hint = request.body().size_hint();
    if hint.exact() == Some(0) {
        return Captured::Now(Capture::Kept(Kept::new(Head::of(request), Bytes::new())));
    }
    if let Err(not_captured) = capturable(hint.upper(), cap) {
        return Captured::Now(Capture::Missing(not_captured));
    }
    let (mut chunks, mut trailers) = (Chunks::Empty, false);
    match read_body(request.body_mut(), &mut chunks, &mut trailers, &mut Context::from_waker(Waker::noop())) {
        Some(Ok(())) => {
            let bytes = chunks.into_bytes();
            let head = Head::of(request);
            if trailers {
                trailers_not_replayed(&head);
            }
            *request.body_mut() = B::from(bytes.clone());
            Captured::Now(Capture::Kept(Kept::new(head, bytes)))
        }
        Some(Err(error)) => Captured::Failed(error.into().to_string()),
        None => Captured::Waiting { chunks, trailers },
    }
}

/// The state of a call through `S`.
type StateOf<S, B> = State<
    S,
    B,
    <S as Service<Request<B>>>::Future,
    <S as Service<Request<B>>>::Response,
    <S as Service<Request<B>>>::Error,
>;

impl<S, B, P> ResponseFuture<S, B, P>
where
    S: Service<Request<B>> + Clone,
    B: Body + From<Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Starts a call with `service`, made ready by `poll_ready`. The service is called at
    /// once when possible; when the call must wait (the body is still arriving, or the
    /// request is forwarded first), the ready service moves into the future and a clone
    /// takes its place (clone-and-swap).
    ///
    /// The common path is written straight: the request is moved once, into the call,
    /// and the future is built where it is returned (each move of either is a copy).
    pub(crate) fn new(service: &mut S, mut request: Request<B>, config: Arc<Config<P>>) -> Self {
        let span = call_span(request.method(), || request.uri().host()).map(Box::new);
        // Entered while the call is made. A guard, not a closure (`in_span`), and one
        // function: each would hold the request in a place of its own, a copy.
        let entered = span.as_deref().map(tracing::Span::enter);
        let settings = &config.settings;
        let (circuit, first) = settings.route(|| ezthrottle_core::protocol::lane_key_of_uri(request.uri()));
        let captured = capture(&mut request, settings.max_replay_bytes);
        let ctx = Ctx { config, circuit };
        let state = match (captured, first) {
            (Captured::Now(capture), None) => State::Calling { future: service.call(request), capture },
            (captured, first) => ctx.otherwise(service, request, captured, first),
        };
        drop(entered);
        Self { state, ctx, span }
    }
}

impl<P> Ctx<P> {
    /// From `call`, off the common path: forward first, wait for the body, or answer its
    /// failure.
    fn otherwise<S, B>(&self, service: &mut S, request: Request<B>, captured: Captured, first: First) -> StateOf<S, B>
    where
        S: Service<Request<B>> + Clone,
    {
        match captured {
            Captured::Now(capture @ Capture::Kept(_)) => {
                let clone = service.clone();
                let inner = std::mem::replace(service, clone);
                self.start(inner, request, capture, first)
            }
            Captured::Now(capture) => {
                if let (Some((reason, _)), Capture::Missing(not_captured)) = (first, &capture) {
                    tracing::debug!(target: ezthrottle_core::telemetry::TARGET_FORWARD, uri = %RedactedUrl::new(&request.uri().to_string()), %reason, "{not_captured}: calling the target instead of forwarding");
                }
                State::Calling { future: service.call(request), capture }
            }
            Captured::Waiting { chunks, trailers } => {
                let clone = service.clone();
                let inner = std::mem::replace(service, clone);
                let (parts, body) = request.into_parts();
                State::Collecting { pending: Box::new(Pending { body, chunks, trailers, inner, parts, first }) }
            }
            Captured::Failed(error) => State::BodyFailed { error },
        }
    }

    /// With the ready service in hand: forward first, or call the target.
    fn start<S, B, T, E>(
        &self,
        mut inner: S,
        request: Request<B>,
        capture: Capture,
        first: First,
    ) -> State<S, B, S::Future, T, E>
    where
        S: Service<Request<B>>,
    {
        let (Some((reason, retry_at)), Capture::Kept(kept)) = (first, &capture) else {
            return State::Calling { future: inner.call(request), capture };
        };
        match self.config.settings.job(kept.head(), kept.body(), retry_at) {
            Ok(job) => {
                let submission = self.config.settings.submit(job);
                State::Ahead { work: Box::new(Ahead { submission, inner, request, reason }) }
            }
            Err(failed) => {
                tracing::warn!(target: ezthrottle_core::telemetry::TARGET_FORWARD, uri = %RedactedUrl::new(kept.head().uri()), %reason, "{failed}; calling the target instead");
                State::Calling { future: inner.call(request), capture: Capture::Tried(Box::new(failed)) }
            }
        }
    }

    /// See [`BreakerCall::release_probe`].
    fn release_probe(&mut self) {
        if let Some(circuit) = &mut self.circuit {
            circuit.release_probe();
        }
    }

    /// The outcome of the call that reached the target, when the policy forwards it or a
    /// circuit breaker records it: answer it, or forward it.
    fn after_call<R, E: 'static>(
        &mut self,
        outcome: Result<Response<R>, E>,
        forwardable: bool,
        capture: &Capture,
    ) -> AfterCall<R, E>
    where
        P: ForwardPolicy<R, E>,
    {
        let retry_at = match &outcome {
            Ok(response) if forwardable => self.config.settings.retry_at_of(response.headers()),
            _ => None,
        };
        self.config.settings.record(self.circuit.as_deref_mut(), forwardable, retry_at);
        if !forwardable {
            return AfterCall::Answer(outcome.map(|response| response.map(ResponseBody::inner)));
        }
        let reason = match &outcome {
            Ok(response) => ForwardReason::Status(response.status()),
            Err(_) => ForwardReason::TransportError,
        };
        let settings = &self.config.settings;
        let failure = match &outcome {
            Ok(response) => CallFailure::of_status(response.status()),
            Err(error) => failure_of_error(error, &settings.not_sent),
        };
        // The call's span is the current one here (entered at each poll).
        let kept = match settings.to_forward(capture, failure, reason, &tracing::Span::current()) {
            Ok(kept) => kept,
            Err(not_forwarded) => return AfterCall::Answer(not_forwarded_outcome(outcome, not_forwarded)),
        };
        let head = kept.head();
        match self.config.settings.job(head, kept.body(), retry_at) {
            Ok(job) => AfterCall::Submit(Box::new(Submit {
                submission: self.config.settings.submit(job),
                original: outcome,
                reason,
            })),
            Err(failed) => {
                tracing::warn!(target: ezthrottle_core::telemetry::TARGET_FORWARD, uri = %RedactedUrl::new(head.uri()), %reason, "{failed}");
                AfterCall::Answer(not_forwarded_outcome(outcome, failed))
            }
        }
    }
}

/// What follows the call that reached the target.
enum AfterCall<R, E> {
    /// The answer to return.
    Answer(Result<Response<ResponseBody<R>>, E>),
    /// Forward: submit, keeping the original in case the submission fails.
    Submit(Box<Submit<Response<R>, E>>),
}

/// The original outcome, with why it was not forwarded (an extension on a response; a
/// `tracing` event for an error).
fn not_forwarded_outcome<R, E>(
    outcome: Result<Response<R>, E>,
    failed: ForwardFailed,
) -> Result<Response<ResponseBody<R>>, E> {
    match outcome {
        Ok(mut response) => {
            response.extensions_mut().insert(failed);
            Ok(response.map(ResponseBody::inner))
        }
        Err(error) => {
            tracing::warn!(target: ezthrottle_core::telemetry::TARGET_FORWARD, "returning the original error: {failed}");
            Err(error)
        }
    }
}

/// Says that the trailers of the request body of `head` will not be part of its job.
fn trailers_not_replayed(head: &Head) {
    tracing::debug!(target: ezthrottle_core::telemetry::TARGET_FORWARD, uri = %RedactedUrl::new(head.uri()), "the request body's trailers are not replayed");
}

/// The synthesized answer when the request body failed while being read.
fn body_read_failed<R>(error: &str) -> Response<ResponseBody<R>> {
    let reason = format!("the request body failed while being read: {error}");
    tracing::warn!(target: ezthrottle_core::telemetry::TARGET_FORWARD, "{reason}; the request was not sent");
    body_failed(reason, ResponseBody::synthesized)
}

impl<S, B, P, R> Future for ResponseFuture<S, B, P>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: 'static,
    B: Body + From<Bytes> + Unpin,
    B::Error: Into<BoxError>,
    P: ForwardPolicy<R, S::Error>,
{
    type Output = Result<Response<ResponseBody<R>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(span) = this.span.as_deref() else {
            return Self::advance(this.state, this.ctx, cx);
        };
        let polled = span.in_scope(|| Self::advance(this.state, this.ctx, cx));
        if let Poll::Ready(answer) = &polled {
            record_outcome(Some(span), answer.as_ref().ok().map(Response::extensions));
        }
        polled
    }
}

impl<S, B, P, R> ResponseFuture<S, B, P>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: 'static,
    B: Body + From<Bytes> + Unpin,
    B::Error: Into<BoxError>,
    P: ForwardPolicy<R, S::Error>,
{
    /// Runs the state machine as far as it goes.
    fn advance(
        mut state: Pin<&mut StateOf<S, B>>,
        ctx: &mut Ctx<P>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResponseBody<R>>, S::Error>> {
        loop {
            match state.as_mut().project() {
                StateProj::Collecting { pending } => {
                    let Pending { body, chunks, trailers, .. } = &mut **pending;
                    let Some(read) = read_body(body, chunks, trailers, cx) else {
                        return Poll::Pending;
                    };
                    let StateOwned::Collecting { pending } = state.as_mut().project_replace(State::Done) else {
                        unreachable!("the state was Collecting")
                    };
                    let Pending { chunks, trailers, inner, parts, first, .. } = *pending;
                    if let Err(error) = read {
                        ctx.release_probe();
                        return Poll::Ready(Ok(body_read_failed(&error.into().to_string())));
                    }
                    let bytes = chunks.into_bytes();
                    let request = Request::from_parts(parts, B::from(bytes.clone()));
                    let head = Head::of(&request);
                    if trailers {
                        trailers_not_replayed(&head);
                    }
                    let capture = Capture::Kept(Kept::new(head, bytes));
                    let next = ctx.start(inner, request, capture, first);
                    state.set(next);
                }
                StateProj::Calling { future, capture } => {
                    let outcome = ready!(future.poll(cx));
                    let forwardable = ctx.config.policy.should_forward(&outcome);
                    if !forwardable && ctx.circuit.is_none() {
                        // The common path: the answer moves once, out. The request kept and
                        // the finished call are dropped in place.
                        state.set(State::Done);
                        return Poll::Ready(outcome.map(|response| response.map(ResponseBody::inner)));
                    }
                    match ctx.after_call(outcome, forwardable, capture) {
                        AfterCall::Answer(answer) => {
                            state.set(State::Done);
                            return Poll::Ready(answer);
                        }
                        AfterCall::Submit(work) => state.set(State::Submitting { work }),
                    }
                }
                StateProj::Submitting { work } => {
                    let submitted = ready!(work.submission.as_mut().poll(cx));
                    let StateOwned::Submitting { work } = state.as_mut().project_replace(State::Done) else {
                        unreachable!("the state was Submitting")
                    };
                    let Submit { original, reason, .. } = *work;
                    return Poll::Ready(match (submitted, original) {
                        (Ok(receipt), Ok(mut response))
                            if ctx.config.settings.respond_with == ForwardResponse::Original =>
                        {
                            let job = mark_forwarded(response.headers_mut(), receipt, reason);
                            response.extensions_mut().insert(job);
                            Ok(response.map(ResponseBody::inner))
                        }
                        (Ok(receipt), _) => Ok(accepted(receipt, reason, ResponseBody::synthesized)),
                        (Err(error), original) => {
                            tracing::warn!(target: ezthrottle_core::telemetry::TARGET_FORWARD, %reason, %error, "forwarding to EZThrottle failed; returning the original answer");
                            not_forwarded_outcome(original, submission_failed(&error))
                        }
                    });
                }
                StateProj::Ahead { work } => {
                    let submitted = ready!(work.submission.as_mut().poll(cx));
                    let StateOwned::Ahead { work } = state.as_mut().project_replace(State::Done) else {
                        unreachable!("the state was Ahead")
                    };
                    let Ahead { mut inner, request, reason, .. } = *work;
                    match submitted {
                        Ok(receipt) => return Poll::Ready(Ok(accepted(receipt, reason, ResponseBody::synthesized))),
                        Err(error) => {
                            let settings = &ctx.config.settings;
                            if !settings.may_call_after(&error, request.method(), request.headers()) {
                                // EZThrottle may run the job: calling the target could run the request twice.
                                tracing::warn!(target: ezthrottle_core::telemetry::TARGET_FORWARD, %reason, %error, "EZThrottle may have accepted the job; not calling the target");
                                return Poll::Ready(Ok(maybe_forwarded(
                                    maybe_accepted(&error),
                                    ResponseBody::synthesized,
                                )));
                            }
                            tracing::warn!(target: ezthrottle_core::telemetry::TARGET_FORWARD, %reason, %error, "forwarding to EZThrottle failed; calling the target instead");
                            let capture = Capture::Tried(Box::new(submission_failed(&error)));
                            state.set(State::Calling { future: inner.call(request), capture });
                        }
                    }
                }
                StateProj::BodyFailed { error } => {
                    let error = std::mem::take(error);
                    state.set(State::Done);
                    ctx.release_probe();
                    return Poll::Ready(Ok(body_read_failed(&error)));
                }
                StateProj::Done => unreachable!("ResponseFuture polled after completion"),
            }
        }
    }
}

impl<S, B, P> std::fmt::Debug for ResponseFuture<S, B, P>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Collecting { .. } => "Collecting",
            State::Calling { .. } => "Calling",
            State::Submitting { .. } => "Submitting",
            State::Ahead { .. } => "Ahead",
            State::BodyFailed { .. } => "BodyFailed",
            State::Done => "Done",
        };
        f.debug_struct("ResponseFuture").field("state", &state).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
