//! `#[auto_forward]`: hand a fallible function's failures to EZThrottle, without rewriting
//! its error handling.
//!
//! ```sh
//! cargo add ezthrottle --features macros
//! ```
//!
//! (Nothing is on crates.io yet: until the first release, add
//! `--git https://github.com/ezthrottle/ezthrottle-rs`.) This crate has no Cargo features of
//! its own; the code it generates names `::ezthrottle` (the facade) unless told otherwise
//! with `crate = "..."`.
//!
//! Use it through the facade, `ezthrottle::auto_forward` (feature `macros`). Put it on a
//! `fn` or `async fn` returning `Result<T, E>`, where `E` is
//! [`ForwardToEZThrottle`](https://docs.rs/ezthrottle-core/latest/ezthrottle_core/struct.ForwardToEZThrottle.html)
//! or implements `Forwardable` (an error that may carry a request to forward):
//!
//! ```no_run
//! # extern crate ezthrottle_core as ezthrottle;
//! # use ezthrottle_macros::auto_forward;
//! use std::sync::LazyLock;
//! use ezthrottle::{AutoForwardError, EZThrottle, ForwardToEZThrottle, Outcome};
//!
//! static CLIENT: LazyLock<EZThrottle> =
//!     LazyLock::new(|| EZThrottle::builder().direct("http://127.0.0.1:8080").build().unwrap());
//!
//! #[auto_forward(client = CLIENT)]
//! async fn charge(amount: u32) -> Result<String, ForwardToEZThrottle> {
//!     // Legacy code: on a 429 it gives up and describes the request to retry.
//!     Err(ForwardToEZThrottle::post("https://api.example.com/charge", format!(r#"{{"amount":{amount}}}"#)))
//! }
//!
//! # async fn run() {
//! // The function now returns `Result<Outcome<String>, AutoForwardError<ForwardToEZThrottle>>`.
//! match charge(100).await {
//!     Ok(Outcome::Completed(id)) => println!("charged here: {id}"),
//!     Ok(Outcome::Forwarded(receipt)) => println!("EZThrottle runs it as {}", receipt.job_id),
//!     Ok(Outcome::ExecutedLocally(response)) => println!("FRUGAL retry succeeded: {}", response.status),
//!     Err(AutoForwardError::ForwardFailed { original, error }) => eprintln!("{original}; and {error}"),
//!     Err(other) => eprintln!("{other}"),
//! }
//! # }
//! ```
//!
//! Runnable, against the in-process engine of `ezthrottle-local`:
//!
//! ```
//! # extern crate ezthrottle_core as ezthrottle;
//! # use ezthrottle_macros::auto_forward;
//! use ezthrottle::{EZThrottle, ForwardToEZThrottle, Outcome};
//!
//! #[auto_forward(client = client)]
//! async fn report(client: &EZThrottle, day: u32) -> Result<String, ForwardToEZThrottle> {
//!     if day == 0 {
//!         return Ok("cached".to_owned());
//!     }
//!     // The reporting API is overloaded: let EZThrottle fetch it, paced.
//!     Err(ForwardToEZThrottle::get(format!("http://127.0.0.1:9/reports/{day}")))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = ezthrottle_local::Engine::builder().open().start().await?;
//! let client = EZThrottle::builder().direct(engine.base_url()).build()?;
//! assert!(matches!(report(&client, 0).await?, Outcome::Completed(ref text) if text == "cached"));
//! let Outcome::Forwarded(receipt) = report(&client, 7).await? else { panic!("not forwarded") };
//! assert!(receipt.job_id.starts_with("job_"));
//! engine.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What the function returns
//!
//! The attribute changes the function's signature: its return type `Result<T, E>` becomes
//! `Result<Outcome<T>, AutoForwardError<E>>` (for an `async fn`, the output of its future;
//! an alias such as `io::Result<T>` is resolved the same way). Everything else is kept
//! exactly: the name, the arguments, generics, `where` clauses, visibility, attributes and
//! `async`. Callers therefore change: `f()?` in a function returning `Result<_, E>` needs
//! `.map_err(AutoForwardError::into_original)`, or a caller returning
//! `AutoForwardError<E>` / `Box<dyn Error>`; matching on `Ok(v)` becomes matching on
//! `Ok(Outcome::Completed(v))` (or `outcome.completed()`).
//!
//! | the body returned | the function returns |
//! |---|---|
//! | `Ok(v)` | `Ok(Outcome::Completed(v))`: no allocation, no clone; `client` is not even evaluated |
//! | `Err(e)`, `e.forward_request()` is `None` (or, with `on_status`, its status is not listed) | `Err(AutoForwardError::Failed(e))` |
//! | `Err(e)` with a request, EZThrottle accepted it | `Ok(Outcome::Forwarded(receipt))` |
//! | `Err(e)` with a request, the forward failed | `Err(AutoForwardError::ForwardFailed { original: e, error })` |
//! | `Err(e)` selected, but it cannot be forwarded as the request that failed, or the replay rule refuses it (see below) | `Err(AutoForwardError::NotForwardable { original: e, reason })` |
//! | FRUGAL: the request, made here again, succeeded | `Ok(Outcome::ExecutedLocally(response))` |
//! | FRUGAL: made here again, answered a status that does not forward | `Err(AutoForwardError::FailedLocally { original: e, response })` |
//! | FRUGAL: made here again, it failed in a way the replay rule does not forward | `Err(AutoForwardError::NotForwardable { original: e, reason: Unforwardable::MayHaveRun(..) })` |
//!
//! Nothing is swallowed: every error variant keeps `e` (`original()`, `into_original()`).
//! `AutoForwardError<E>` implements `From<E>` (so `?` on a plain `Result<_, E>` works in a
//! caller returning it), `Display` and `std::error::Error` (when `E` does; the forward's
//! error is its `source`), so `?` into `Box<dyn Error>` or `anyhow::Error` works too.
//! Inside the body nothing changes: `?` and `return` still produce the declared
//! `Result<T, E>`.
//!
//! # What the expansion changes
//!
//! Only the return type (above) and the body's statements: the body runs as it did, in an
//! `async` block (a closure for a sync `fn`); its `Ok` is returned at once; its `Err` is
//! asked for a request (`Forwardable::forward_request`, or with `on_status` the
//! `HttpFailure` of the error), the options are applied to that request, and it is handed to
//! the client (`EZThrottle::forward`: submitted, or FRUGAL made here once more first). The
//! expansion adds no field, no trait impl and no item, and calls nothing on the `Ok` path.
//!
//! # Which failures are forwarded: the replay rule
//!
//! Forwarding a failed call means EZThrottle makes it once more. The SDK's one rule
//! (`ezthrottle::replay`, the same for the tower `ForwardLayer`, `ForwardMiddleware` and
//! FRUGAL steps) decides, for a failure `on_status` selected from a
//! [`FailedCall`](https://docs.rs/ezthrottle-core/latest/ezthrottle_core/struct.FailedCall.html),
//! and for a FRUGAL step's own attempt, with the default `ReplayPolicy::WhenSafe`:
//!
//! | the request that failed | not sent (refused, DNS, TLS) | 429 | other listed status (5xx, ..) | sent, no answer (FRUGAL: timeout, reset) |
//! |---|---|---|---|---|
//! | `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE` | forwarded | forwarded | forwarded | forwarded |
//! | `POST`, `PATCH`, any other method | forwarded | forwarded | **`NotForwardable`** | **`NotForwardable`** |
//! | any method with an `Idempotency-Key` header | forwarded | forwarded | forwarded | forwarded |
//! | the step's policy is `ReplayPolicy::Always` (`failed.map_step(\|step\| step.replay(ReplayPolicy::Always))`) | forwarded | forwarded | forwarded | forwarded |
//! | a `ForwardToEZThrottle` (or `Forwardable` error) the body returned | forwarded as built | forwarded as built | forwarded as built | forwarded as built |
//!
//! `on_status` selects statuses only: a `FailedCall` without a status (not sent, no answer)
//! is returned as `Failed`. A request the body built itself (`ForwardToEZThrottle`, or
//! the request of a `Forwardable` error) is the user's explicit request: it is forwarded as
//! it was built, whatever its method (with `step = frugal`, its local repeat is still under
//! the rule).
//!
//! # Without the macro
//!
//! `EZThrottle::run_or_forward(|| async { legacy().await })` and
//! `EZThrottle::run_or_forward_on(&[429, 503], || ..)` run a closure's future and return the
//! same `Result<Outcome<T>, AutoForwardError<E>>`, with the same outcomes (the same
//! runtime), for teams that avoid proc macros; options are set on the request
//! (`ForwardToEZThrottle::map_step`, `FailedCall::map_step`).
//!
//! # Options
//!
//! | option | meaning |
//! |---|---|
//! | `client = <expr>` | The client: any expression of type `EZThrottle`, or anything that derefs to it (`&EZThrottle`, `Arc<EZThrottle>`, a `LazyLock<EZThrottle>` static, `self.client`, an argument). Evaluated only when a failure is forwarded, after the body: it may use the arguments the body did not consume. Without it, a process-wide client built once from the environment (`EZThrottle::from_env()`: `EZTHROTTLE_API_KEY`, `EZTHROTTLE_URL`); if that cannot be built, the forward fails with that error (`ForwardFailed`), and the next forward tries again. |
//! | `step = frugal` / `step = performance` | Overrides the request's step type. Without it the request keeps its own (PERFORMANCE unless the error built it FRUGAL). PERFORMANCE submits at once; FRUGAL makes the request here once more and forwards only if it fails again with a status of `fallback_on_error` (429, 5xx by default), a timeout or a transport error, and the replay rule (below) allows it. |
//! | `idempotent_key = <expr>` | Overrides the request's key; anything `Into<String>`. Without it (and without a key on the request), the job gets the SDK's default key, `IdempotentStrategy::CredentialHash`: the same call by the same caller is one job, two callers are two. Evaluated when the function is called, **before** the body, so it may use any argument, even one the body consumes (it costs its evaluation on every call: prefer a cheap expression). |
//! | `webhooks = <expr>` | Added to the request's webhooks: anything `IntoIterator<Item = Webhook>` (`[Webhook::new(url)]`, a `Vec`). Evaluated only on forward, like `client`. |
//! | `on_status = [429, 500, ..]` | For HTTP failures that keep their request: `ezthrottle::FailedCall`, the error of `.send_keeping_request()` (trait `ezthrottle::KeepRequest`, on `reqwest::RequestBuilder`), which keeps the method, the full URL, the end-to-end headers and the body; and `Box<dyn Error + Send + Sync>` / `Box<dyn Error>` whose chain of sources holds one. A listed status is forwarded as exactly that request, when the replay rule allows it (above); anything else is returned unchanged (`Failed`). A bare `reqwest::Error` (from `error_for_status()`) knows neither method, headers nor body: as the error type it is a compile error naming `send_keeping_request`; found at run time in a boxed error's chain, with a listed status, it is returned as `NotForwardable { reason: Unforwardable::RequestUnknown }`. A `Forwardable` error still decides for itself. |
//! | `crate = "path"` | Where the runtime lives, default `::ezthrottle`; `crate = "ezthrottle_core"` works on the core crate directly, and a renamed dependency (`ez = { package = "ezthrottle" }`) uses `crate = "ez"`. |
//!
//! # Sync functions
//!
//! A sync `fn` is supported: its forward runs on one dedicated background thread owning a
//! current-thread tokio runtime (started on the first sync forward), and the calling thread
//! waits for it. The caller enters no runtime, so this neither panics nor deadlocks inside
//! a tokio runtime; like any blocking I/O it does block the calling thread while the
//! submission is in flight (on a tokio worker, call such functions from `spawn_blocking`).
//! Prefer `async fn` in async code.
//!
//! # With other attributes
//!
//! - `#[tracing::instrument]`: both orders work. Put `#[auto_forward]` **first** (above)
//!   so the span also covers the forward and `err`/`ret` record the final outcome.
//! - `#[async_trait]`: put `#[async_trait]` on the impl block and `#[auto_forward]` on the
//!   method; it recognizes the `Box::pin(async move { .. })` body `#[async_trait]` produces.
//!   The trait declares the transformed type:
//!   `async fn charge(&self) -> Result<Outcome<u32>, AutoForwardError<MyError>>`. With
//!   both `#[async_trait]` and `#[instrument]`, keep `#[auto_forward]` above `#[instrument]`.
//!   Native `async fn` in traits needs nothing special.
//!
//! # Errors at compile time
//!
//! They point at the user's code: a function not returning `Result` (the return type), a
//! `const fn`, an unknown option (listing the valid ones), an option set twice, an error
//! type that is not `Forwardable` (or, with `on_status`, one that does not keep its request,
//! such as a bare `reqwest::Error`: the note names `send_keeping_request`). A `client`
//! that cannot be evaluated where the function is (e.g. `client = self.client` on a free
//! function) is reported by the compiler at that expression. There is no "missing client"
//! error: without `client`, the environment's client is always available at run time. On
//! an argument error the function is still emitted unchanged next to the error, so IDEs
//! keep working.
//!
//! # Cost
//!
//! None on the `Ok` path: no allocation, no clone, `client`/`webhooks` not evaluated, and
//! the annotated `async fn`'s future holds nothing but the body's future (the failure path
//! keeps one `Box`, allocated only on failure). `benches/ok_path.rs` compares annotated and
//! plain functions returning `Ok`: the ratio is 1.00 (`cargo bench -p ezthrottle-macros`).
//! Only `idempotent_key` is evaluated on every call (see above).
//!
//! # Caveat
//!
//! The body runs inside an `async { .. }` block (sync: a closure) that captures what it
//! uses by reference unless it consumes it, so that `client` and `webhooks` can still use
//! the arguments afterwards. A `Send + !Sync` argument used only by reference in an
//! `async fn` body therefore makes the future `!Send`; take it by `&mut` or consume it.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use proc_macro::TokenStream;

mod async_trait;
mod attr;
mod expand;
mod tokens;

/// Forwards the annotated function's forwardable failures to EZThrottle.
///
/// `#[auto_forward(client = <expr>, step = frugal|performance, idempotent_key = <expr>,
/// webhooks = <expr>, on_status = [429, ..], crate = "path")]`, every option optional. See the
/// [crate documentation](crate) for what the function then returns and what each option does.
#[proc_macro_attribute]
pub fn auto_forward(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::auto_forward(args.into(), item.into()).into()
}
