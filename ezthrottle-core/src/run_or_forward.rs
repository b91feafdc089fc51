//! `#[auto_forward]` without a macro: [`EZThrottle::run_or_forward`] and
//! [`EZThrottle::run_or_forward_on`], for teams that avoid proc macros (the Node SDK's
//! `withAutoForward` / `executeWithForwarding`). The same runtime as the attribute, so the
//! same outcomes.

use std::future::Future;

use crate::__private;
use crate::auto_forward::{AutoForwardError, HttpFailure, Outcome};
use crate::client::EZThrottle;
use crate::forward::Forwardable;

impl EZThrottle {
    /// Runs `call`; when it fails with an error that carries a request
    /// ([`Forwardable`], e.g. [`ForwardToEZThrottle`](crate::ForwardToEZThrottle)), hands
    /// that request to EZThrottle. What `#[auto_forward(client = ..)]` does, as a function.
    ///
    /// | `call` returned | this returns |
    /// |---|---|
    /// | `Ok(v)` | `Ok(Outcome::Completed(v))` |
    /// | `Err(e)`, `e.forward_request()` is `None` | `Err(AutoForwardError::Failed(e))` |
    /// | `Err(e)` with a request, EZThrottle accepted it | `Ok(Outcome::Forwarded(receipt))` |
    /// | `Err(e)` with a request, the forward failed | `Err(AutoForwardError::ForwardFailed { original: e, error })` |
    /// | FRUGAL request: made here again, it succeeded | `Ok(Outcome::ExecutedLocally(response))` |
    /// | FRUGAL request: made here again, answered a status that does not forward | `Err(AutoForwardError::FailedLocally { .. })` |
    /// | FRUGAL request: made here again, the [replay rule](crate::replay) refused to forward it | `Err(AutoForwardError::NotForwardable { .. })` |
    ///
    /// A request the error carries is the caller's explicit request: it is forwarded as it
    /// was built, whatever its method.
    ///
    /// ```
    /// use ezthrottle_core::{EZThrottle, ForwardToEZThrottle, Outcome};
    ///
    /// async fn legacy(day: u32) -> Result<String, ForwardToEZThrottle> {
    ///     // The reporting API is overloaded: let EZThrottle fetch it, paced.
    ///     Err(ForwardToEZThrottle::get(format!("http://127.0.0.1:9/reports/{day}")))
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use ezthrottle_test_support::{Answer, TestServer};
    /// # let engine = TestServer::always(|| Answer::json(201, serde_json::json!({"job_id": "job_7", "status": "queued"}))).await;
    /// let client = EZThrottle::builder().direct(&engine.url).build()?;
    /// let Outcome::Forwarded(receipt) = client.run_or_forward(|| legacy(7)).await? else { panic!("not forwarded") };
    /// assert_eq!(receipt.job_id, "job_7");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`AutoForwardError`], which always keeps `call`'s error.
    pub async fn run_or_forward<T, E, F, Fut>(&self, call: F) -> Result<Outcome<T>, AutoForwardError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Forwardable,
    {
        run(self, call, |error| __private::forward_request(error)).await
    }

    /// [`run_or_forward`](Self::run_or_forward) for HTTP failures: forwards the request
    /// that failed when its status is one of `statuses`. What
    /// `#[auto_forward(client = .., on_status = [..])]` does, as a function.
    ///
    /// `E` is [`FailedCall`](crate::FailedCall) (from
    /// [`send_keeping_request`](crate::KeepRequest::send_keeping_request)), a boxed error
    /// holding one, or any [`Forwardable`] error (see [`HttpFailure`]). A `FailedCall` is
    /// forwarded only when the [replay rule](crate::replay) of its step allows it: a `POST`
    /// without an `Idempotency-Key` that answered a listed 503 is returned as
    /// `AutoForwardError::NotForwardable`, a 429 is forwarded. A transport failure has no
    /// status, so it is never selected (`Failed`).
    ///
    /// ```no_run
    /// use ezthrottle_core::{EZThrottle, FailedCall, KeepRequest};
    ///
    /// # async fn run(client: EZThrottle) -> Result<(), Box<dyn std::error::Error>> {
    /// let outcome = client
    ///     .run_or_forward_on(&[429, 503], || async {
    ///         let response = reqwest::Client::new()
    ///             .post("https://api.example.com/orders")
    ///             .header("idempotency-key", "order-7")
    ///             .body(r#"{"sku":"A-1"}"#)
    ///             .send_keeping_request()
    ///             .await?;
    ///         Ok::<_, FailedCall>(response.text().await?)
    ///     })
    ///     .await?;
    /// # let _ = outcome; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`AutoForwardError`], which always keeps `call`'s error.
    pub async fn run_or_forward_on<T, E, F, Fut>(
        &self,
        statuses: &[u16],
        call: F,
    ) -> Result<Outcome<T>, AutoForwardError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: HttpFailure,
    {
        run(self, call, |error| __private::http_forward_request(error, statuses)).await
    }
}

/// Runs `call`; its error goes where `decide` says (the macro's runtime, so the outcomes
/// are the attribute's).
async fn run<T, E, F, Fut>(
    client: &EZThrottle,
    call: F,
    decide: impl FnOnce(&E) -> __private::Verdict,
) -> Result<Outcome<T>, AutoForwardError<E>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let error = match call().await {
        Ok(value) => return Ok(Outcome::Completed(value)),
        Err(error) => error,
    };
    let verdict = decide(&error);
    __private::settle(error, client, verdict).await
}
