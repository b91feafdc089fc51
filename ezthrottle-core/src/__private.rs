//! The runtime of `#[auto_forward]`: what the generated code calls. Not a public API: it
//! changes with the macro, which only ever calls it as `<crate>::__private::...`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::task::{Context, Poll};

pub use crate::auto_forward::{AutoForwardError, HttpFailure, Outcome, Unforwardable};
use crate::call::{FailedCall, Kept};
pub use crate::client::EZThrottle;
pub use crate::error::Error;
pub use crate::forward::ForwardToEZThrottle;
use crate::forward::Forwardable;
use crate::protocol::Webhook;
pub use crate::step::StepType;
use crate::step::{StepOutcome, StepResult};

/// The parts of a function's `Result` return type, so `-> io::Result<T>`-like aliases work.
#[diagnostic::on_unimplemented(
    message = "`#[auto_forward]` requires a function returning `Result<T, E>`, found `{Self}`",
    label = "not a `Result`"
)]
pub trait FnResult {
    /// `T`.
    type Ok;
    /// `E`.
    type Err;
}

impl<T, E> FnResult for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// What to do with a failure: forward this request, return the error as it was, or return
/// it with the reason it cannot be forwarded.
#[derive(Debug)]
pub enum Verdict {
    /// Forward this request.
    Forward(ForwardToEZThrottle),
    /// Not selected (no request, or a status not listed): `AutoForwardError::Failed`.
    Keep,
    /// Selected, but not forwardable: `AutoForwardError::NotForwardable`.
    Refuse(Unforwardable),
}

impl From<Option<ForwardToEZThrottle>> for Verdict {
    fn from(request: Option<ForwardToEZThrottle>) -> Self {
        request.map_or(Self::Keep, Self::Forward)
    }
}

/// The request a failure carries, if any (the default, without `on_status`).
#[inline]
pub fn forward_request<E: ForwardableError + ?Sized>(error: &E) -> Verdict {
    error.forward_request_of().into()
}

/// [`Forwardable`], with a message naming the attribute when it is missing.
#[diagnostic::on_unimplemented(
    message = "`#[auto_forward]` cannot forward `{Self}`: it does not implement `Forwardable`",
    label = "the error type of this function",
    note = "return `ForwardToEZThrottle`, implement `ezthrottle::Forwardable` for the error, \
            or use `on_status = [..]` with `ezthrottle::FailedCall` (from `.send_keeping_request()`)"
)]
pub trait ForwardableError {
    /// [`Forwardable::forward_request`].
    fn forward_request_of(&self) -> Option<ForwardToEZThrottle>;
}

impl<E: Forwardable + ?Sized> ForwardableError for E {
    #[inline]
    fn forward_request_of(&self) -> Option<ForwardToEZThrottle> {
        self.forward_request()
    }
}

/// What `on_status = [..]` does with `error`.
#[inline]
pub fn http_forward_request<E: HttpFailure + ?Sized>(error: &E, statuses: &[u16]) -> Verdict {
    error.forward_on_status(statuses)
}

/// A `Forwardable` error decides for itself; `on_status` does not filter it. A request the
/// user built is the user's explicit request: forwarded as it is.
impl<E: Forwardable + ?Sized> HttpFailure for E {
    fn forward_on_status(&self, _statuses: &[u16]) -> Verdict {
        self.forward_request().into()
    }
}

/// The request that failed, when its status is listed and the replay rule allows it.
impl HttpFailure for FailedCall {
    fn forward_on_status(&self, statuses: &[u16]) -> Verdict {
        if !self.status().is_some_and(|status| statuses.contains(&status.as_u16())) {
            return Verdict::Keep;
        }
        match self.kept() {
            Kept::Request(request) if request.step().may_replay(self.failure()) => Verdict::Forward(request.clone()),
            Kept::Request(_) => Verdict::Refuse(Unforwardable::MayHaveRun(self.failure())),
            Kept::Unbuildable(error) => Verdict::Refuse(Unforwardable::Unbuildable(error.clone())),
            Kept::Unknown => Verdict::Refuse(Unforwardable::RequestUnknown),
        }
    }
}

/// The first failure in the chain of sources that decides.
impl HttpFailure for Box<dyn std::error::Error + Send + Sync> {
    fn forward_on_status(&self, statuses: &[u16]) -> Verdict {
        chain_forward_on_status(&**self, statuses)
    }
}

/// The first failure in the chain of sources that decides.
impl HttpFailure for Box<dyn std::error::Error> {
    fn forward_on_status(&self, statuses: &[u16]) -> Verdict {
        chain_forward_on_status(&**self, statuses)
    }
}

/// A `FailedCall` or a `ForwardToEZThrottle` decides; a bare `reqwest::Error` with a listed
/// status is refused (its request is not known), found only at run time.
fn chain_forward_on_status(error: &(dyn std::error::Error + 'static), statuses: &[u16]) -> Verdict {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(call) = error.downcast_ref::<FailedCall>() {
            return call.forward_on_status(statuses);
        }
        if let Some(forward) = error.downcast_ref::<ForwardToEZThrottle>() {
            return Verdict::Forward(forward.clone());
        }
        if let Some(http) = error.downcast_ref::<reqwest::Error>() {
            return match http.status() {
                Some(status) if statuses.contains(&status.as_u16()) => Verdict::Refuse(Unforwardable::RequestUnknown),
                _ => Verdict::Keep,
            };
        }
        current = error.source();
    }
    Verdict::Keep
}

/// `step = ..`: overrides the request's step type (on its [`Step`](crate::Step), the one
/// place job options are set).
#[inline]
pub fn set_step(request: ForwardToEZThrottle, step_type: StepType) -> ForwardToEZThrottle {
    request.map_step(|step| step.step_type(step_type))
}

/// `idempotent_key = ..`: overrides the request's key.
#[inline]
pub fn set_idempotent_key(request: ForwardToEZThrottle, key: impl Into<String>) -> ForwardToEZThrottle {
    request.map_step(|step| step.idempotent_key(key))
}

/// `webhooks = ..`: added to the request's webhooks.
pub fn add_webhooks(request: ForwardToEZThrottle, webhooks: impl IntoIterator<Item = Webhook>) -> ForwardToEZThrottle {
    request.map_step(|step| webhooks.into_iter().fold(step, crate::Step::webhook))
}

/// `client = ..`: a reference to the client (deref coercion does the rest).
#[inline]
pub fn client(client: &EZThrottle) -> Result<&EZThrottle, Error> {
    Ok(client)
}

/// No `client`: the process-wide client built from the environment
/// ([`EZThrottle::from_env`]) on the first forward. A failure is not cached: it is
/// returned (with the function's error) and the next forward tries again.
pub fn env_client() -> Result<&'static EZThrottle, Error> {
    static CLIENT: OnceLock<EZThrottle> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let built = EZThrottle::from_env()?;
    Ok(CLIENT.get_or_init(|| built))
}

/// The submission of an `async fn`'s failure, answering with the function's error.
///
/// One allocation holds the error and the (boxed) submission, made only on failure: the
/// annotated function's future keeps a single pointer for it, so its size, its code and its
/// drop stay those of the body on the `Ok` path. `Send` when `E` is.
pub fn forward_async<T, E>(
    original: E,
    client: Result<&EZThrottle, Error>,
    request: ForwardToEZThrottle,
) -> Box<Forwarding<'_, T, E>> {
    let submission = Box::pin(async move { client?.forward(&request).await });
    Box::new(Forwarding { original: Some(original), submission, output: PhantomData })
}

/// The future of [`forward_async`].
pub struct Forwarding<'a, T, E> {
    original: Option<E>,
    submission: Pin<Box<dyn Future<Output = StepResult> + Send + 'a>>,
    output: PhantomData<fn() -> T>,
}

// The error is never pinned: it is only moved out once the submission is done.
impl<T, E> Unpin for Forwarding<'_, T, E> {}

impl<T, E> Future for Forwarding<'_, T, E> {
    type Output = Result<Outcome<T>, AutoForwardError<E>>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let forwarded = std::task::ready!(this.submission.as_mut().poll(context));
        match this.original.take() {
            Some(original) => Poll::Ready(complete(original, forwarded)),
            // Polled again after it completed: it never completes again.
            None => Poll::Pending,
        }
    }
}

impl<T, E> std::fmt::Debug for Forwarding<'_, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarding").field("done", &self.original.is_none()).finish_non_exhaustive()
    }
}

/// The forward of a sync `fn`, answering with the function's error: the submission runs on
/// the dedicated forwarding thread while the calling thread waits.
pub fn forward_sync<T, E>(
    original: E,
    client: Result<&EZThrottle, Error>,
    request: ForwardToEZThrottle,
) -> Result<Outcome<T>, AutoForwardError<E>> {
    complete(original, forward_blocking(client, request))
}

/// The forward of a sync `fn`: runs on a dedicated thread that owns a current-thread
/// runtime (started on the first sync forward, never stopped), and blocks the calling
/// thread until it is done.
///
/// The calling thread enters no runtime, so this cannot panic or deadlock inside a tokio
/// runtime; it blocks that thread like any blocking I/O would.
fn forward_blocking(client: Result<&EZThrottle, Error>, request: ForwardToEZThrottle) -> StepResult {
    let client = client?.clone();
    let runtime = forwarding_runtime()?;
    let (sender, receiver) = mpsc::sync_channel(1);
    runtime.spawn(async move {
        // The caller is waiting on the receiver; it cannot have gone away.
        let _ = sender.send(client.forward(&request).await);
    });
    receiver.recv().unwrap_or_else(|_| Err(Error::Config("the EZThrottle forwarding task panicked".into())))
}

fn forwarding_runtime() -> Result<&'static tokio::runtime::Handle, Error> {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    static START: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if let Some(handle) = RUNTIME.get() {
        return Ok(handle);
    }
    // One thread only, even when several callers race for the first forward.
    let _started = START.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(handle) = RUNTIME.get() {
        return Ok(handle);
    }
    let unavailable =
        |error: std::io::Error| Error::Config(format!("cannot start the EZThrottle forwarding thread: {error}"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(unavailable)?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("ezthrottle-forward".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(unavailable)?;
    Ok(RUNTIME.get_or_init(|| handle))
}

/// What the forward produced, as the function's result.
fn complete<T, E>(original: E, forwarded: StepResult) -> Result<Outcome<T>, AutoForwardError<E>> {
    match forwarded {
        Ok(StepOutcome::Forwarded(receipt)) => Ok(Outcome::Forwarded(receipt)),
        Ok(StepOutcome::ExecutedLocally { response, .. }) => Ok(Outcome::ExecutedLocally(Box::new(response))),
        Ok(StepOutcome::FailedLocally { response, .. }) => {
            Err(AutoForwardError::FailedLocally { original, response: Box::new(response) })
        }
        Ok(StepOutcome::ReplayRefused { call_failure, .. }) => {
            Err(AutoForwardError::NotForwardable { original, reason: Unforwardable::MayHaveRun(call_failure) })
        }
        Err(error) => Err(AutoForwardError::ForwardFailed { original, error: Box::new(error) }),
    }
}

/// A failure that is not forwarded, as its verdict says (a `Forward` verdict never gets
/// here: it is forwarded).
#[inline]
pub fn not_forwarded<T, E>(original: E, verdict: Verdict) -> Result<Outcome<T>, AutoForwardError<E>> {
    match verdict {
        Verdict::Refuse(reason) => Err(AutoForwardError::NotForwardable { original, reason }),
        Verdict::Keep | Verdict::Forward(_) => Err(AutoForwardError::Failed(original)),
    }
}

/// The end of `run_or_forward`: forwards what the verdict says, or returns the error.
pub async fn settle<T, E>(
    original: E,
    client: &EZThrottle,
    verdict: Verdict,
) -> Result<Outcome<T>, AutoForwardError<E>> {
    match verdict {
        Verdict::Forward(request) => forward_async(original, Ok(client), request).await,
        other => not_forwarded(original, other),
    }
}

/// Moved into the closure that runs a sync body, so the closure is `FnOnce` and may return
/// what it borrows from its captures.
#[derive(Debug)]
pub struct FnOnceToken;

impl FnOnceToken {
    /// Consumes the token.
    #[inline]
    pub fn consume(self) {}
}
