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
use super::breaker::ProbeGuard;
use super::capture::{Capture, Chunks, read_body};
use super::decision::{
    Plan, Submission, accepted, body_failed, call_span, capturable, in_span, mark_forwarded, maybe_forwarded,
    not_forwarded, record_outcome, submission_failed,
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
    /// and a body whose bytes are still arriving when the call is made.
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
        // Entered (when enabled) while the call is made and at each poll: the target's and the
        // submission's spans nest in it.
        span: tracing::Span,
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

/// What the future knows besides its state.
struct Ctx<P> {
    config: Arc<Config<P>>,
    /// The circuit-breaker key of the target (only with a breaker).
    host: Option<String>,
    probe: Option<ProbeGuard>,
    /// Forward without calling the target, once the body is captured.
    ahead: Option<(ForwardReason, Option<std::time::SystemTime>)>,
    /// A forward was already tried and failed: do not try again after the call.
    failed: Option<Box<ForwardFailed>>,
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
    pub(crate) fn new(service: &mut S, request: Request<B>, config: Arc<Config<P>>) -> Self {
        let span = call_span(request.method(), || request.uri().host());
        // Entered only if anything listens (see `in_span`); the span itself moves into the future.
        let _entered = (!span.is_disabled()).then(|| span.clone().entered());
        Self::start(service, request, config, span)
    }

    /// [`Self::new`] in the call's span: the state the call starts in. The request is
    /// not taken apart on the common path: each move of its parts is a copy.
    fn start(service: &mut S, mut request: Request<B>, config: Arc<Config<P>>, span: tracing::Span) -> Self {
        let settings = &config.settings;
        let hint = request.body().size_hint();
        let captured = if hint.exact() == Some(0) {
            Ok(false)
        } else {
            capturable(hint.upper(), settings.max_replay_bytes).map(|()| true)
        };
        let host = settings.breaker.as_ref().and_then(|_| ezthrottle_core::protocol::lane_key_of_uri(request.uri()));
        let (probe, ahead) = match settings.plan(host.as_deref()) {
            Plan::Call { probe } => (probe, None),
            Plan::ForwardFirst { reason, retry_at } => (None, Some((reason, retry_at))),
        };
        let mut ctx = Ctx { config, host, probe, ahead, failed: None };
        let state = match captured {
            Ok(false) => {
                let capture = Capture::Kept { head: Head::of(&request), body: Bytes::new() };
                ctx.begin(service, request, capture)
            }
            Ok(true) => {
                // Most bodies with a known size are already in memory: read them now.
                let (mut chunks, mut trailers) = (Chunks::Empty, false);
                let mut cx = Context::from_waker(Waker::noop());
                match read_body(request.body_mut(), &mut chunks, &mut trailers, &mut cx) {
                    Some(Ok(())) => {
                        let bytes = chunks.into_bytes();
                        let head = Head::of(&request);
                        if trailers {
                            trailers_not_replayed(&head);
                        }
                        let capture = Capture::Kept { head, body: bytes.clone() };
                        *request.body_mut() = B::from(bytes);
                        ctx.begin(service, request, capture)
                    }
                    Some(Err(error)) => State::BodyFailed { error: error.into().to_string() },
                    None => {
                        let clone = service.clone();
                        let inner = std::mem::replace(service, clone);
                        let (parts, body) = request.into_parts();
                        State::Collecting { pending: Box::new(Pending { body, chunks, trailers, inner, parts }) }
                    }
                }
            }
            Err(not_captured) => {
                if let Some((reason, _)) = ctx.ahead.take() {
                    tracing::debug!(target: ezthrottle_core::telemetry::TARGET_FORWARD, uri = %RedactedUrl::new(&request.uri().to_string()), %reason, "{not_captured}: calling the target instead of forwarding");
                }
                let future = service.call(request);
                State::Calling { future, capture: Capture::Missing(not_captured) }
            }
        };
        Self { state, ctx, span }
    }
}

impl<P> Ctx<P> {
    /// From `call`: call the ready service now, or, to forward first, move it into the
    /// future and leave a clone in its place.
    fn begin<S, B, T, E>(
        &mut self,
        service: &mut S,
        request: Request<B>,
        capture: Capture,
    ) -> State<S, B, S::Future, T, E>
    where
        S: Service<Request<B>> + Clone,
    {
        if self.ahead.is_none() {
            return State::Calling { future: service.call(request), capture };
        }
        let clone = service.clone();
        let inner = std::mem::replace(service, clone);
        self.start(inner, request, capture)
    }

    /// With the ready service in hand: forward first, or call the target.
    fn start<S, B, T, E>(&mut self, mut inner: S, request: Request<B>, capture: Capture) -> State<S, B, S::Future, T, E>
    where
        S: Service<Request<B>>,
    {
        if let (Some((reason, retry_at)), Capture::Kept { head, body }) = (self.ahead.take(), &capture) {
            match self.config.settings.job(head, body, retry_at) {
                Ok(job) => {
                    let submission = self.config.settings.submit(job);
                    return State::Ahead { work: Box::new(Ahead { submission, inner, request, reason }) };
                }
                Err(failed) => {
                    tracing::warn!(target: ezthrottle_core::telemetry::TARGET_FORWARD, uri = %RedactedUrl::new(head.uri()), %reason, "{failed}; calling the target instead");
                    self.failed = Some(Box::new(failed));
                }
            }
        }
        State::Calling { future: inner.call(request), capture }
    }

    /// The outcome of the call that reached the target: answer it, or forward it.
    fn after_call<R, E: 'static>(&mut self, outcome: Result<Response<R>, E>, capture: &Capture) -> AfterCall<R, E>
    where
        P: ForwardPolicy<R, E>,
    {
        let forwardable = self.config.policy.should_forward(&outcome);
        let retry_at = match &outcome {
            Ok(response) if forwardable => self.config.settings.retry_at_of(response.headers()),
            _ => None,
        };
        if self.host.is_some() {
            let mut probe = self.probe.take();
            self.config.settings.record(self.host.as_deref(), forwardable, retry_at, probe.as_mut());
        }
        if !forwardable {
            return AfterCall::Answer(outcome.map(|response| response.map(ResponseBody::inner)));
        }
        if let Some(failed) = self.failed.take() {
            return AfterCall::Answer(not_forwarded_outcome(outcome, *failed));
        }
        let reason = match &outcome {
            Ok(response) => ForwardReason::Status(response.status()),
            Err(_) => ForwardReason::TransportError,
        };
        let (head, body) = match capture {
            Capture::Kept { head, body } => (head, body),
            Capture::Missing(not_captured) => {
                tracing::debug!(target: ezthrottle_core::telemetry::TARGET_FORWARD, %reason, "not forwarded: {not_captured}");
                return AfterCall::Answer(not_forwarded_outcome(outcome, not_forwarded(not_captured.to_string())));
            }
            Capture::Spent => {
                return AfterCall::Answer(not_forwarded_outcome(outcome, not_forwarded("the request was not kept")));
            }
        };
        let settings = &self.config.settings;
        let failure = match &outcome {
            Ok(response) => CallFailure::of_status(response.status()),
            Err(error) => failure_of_error(error, &settings.not_sent),
        };
        if let Some(refused) = settings.replay_refused_for(head.method(), || head.headers(), failure, reason) {
            return AfterCall::Answer(not_forwarded_outcome(outcome, refused));
        }
        match self.config.settings.job(head, body, retry_at) {
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
        let polled = in_span(this.span, || Self::advance(this.state, this.ctx, cx));
        if let Poll::Ready(answer) = &polled {
            record_outcome(this.span, answer.as_ref().ok().map(Response::extensions));
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
                    let Pending { chunks, trailers, inner, parts, .. } = *pending;
                    if let Err(error) = read {
                        ctx.probe = None;
                        return Poll::Ready(Ok(body_read_failed(&error.into().to_string())));
                    }
                    let bytes = chunks.into_bytes();
                    let request = Request::from_parts(parts, B::from(bytes.clone()));
                    let head = Head::of(&request);
                    if trailers {
                        trailers_not_replayed(&head);
                    }
                    let capture = Capture::Kept { head, body: bytes };
                    let next = ctx.start(inner, request, capture);
                    state.set(next);
                }
                StateProj::Calling { future, capture } => {
                    let outcome = ready!(future.poll(cx));
                    let next = ctx.after_call(outcome, capture);
                    // The request kept and the finished call are dropped here, in place.
                    match next {
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
                            ctx.failed = Some(Box::new(submission_failed(&error)));
                            let future = inner.call(request);
                            state.set(State::Calling { future, capture: Capture::Spent });
                        }
                    }
                }
                StateProj::BodyFailed { error } => {
                    let error = std::mem::take(error);
                    state.set(State::Done);
                    ctx.probe = None;
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
