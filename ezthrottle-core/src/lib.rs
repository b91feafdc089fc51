//! The core of the EZThrottle Rust SDK: the client, the [`Step`] builder, the protocol
//! types and webhook signatures.
//!
//! EZThrottle takes an HTTP request as a *job*, runs it against a rate-limited API (per-host
//! pacing, retries, region racing, fallbacks, workflows) and delivers the result to signed
//! webhooks.
//!
//! ```sh
//! cargo add ezthrottle-core   # or the facade, `cargo add ezthrottle`, which re-exports it
//! ```
//!
//! (Nothing is on crates.io yet: until the first release, add
//! `--git https://github.com/ezthrottle/ezthrottle-rs`.) One Cargo feature, `client` (on by
//! default): the client and everything that sends; without it the crate is the protocol
//! types, the webhook signatures and the header helpers, with no HTTP client.
//! What it sends and accepts, and why, is the wire contract in
//! [`docs/protocol.md`](https://github.com/ezthrottle/ezthrottle-rs/blob/main/docs/protocol.md).
//!
//! ```no_run
//! use ezthrottle_core::{EZThrottle, Method, Step, StepType, Trigger, Webhook};
//!
//! # async fn run() -> Result<(), ezthrottle_core::Error> {
//! let client = EZThrottle::from_env()?; // EZTHROTTLE_API_KEY, or EZTHROTTLE_URL for a local engine
//! let outcome = Step::new("https://api.example.com/charge")
//!     .method(Method::POST)
//!     .body(r#"{"amount":100}"#)
//!     .step_type(StepType::Frugal) // try here first, forward on 429/5xx
//!     .webhook(Webhook::new("https://app.example.com/webhook"))
//!     .fallback(Step::new("https://backup.example.com/charge"), Trigger::on_error([500, 502]))
//!     .execute(&client)
//!     .await?;
//! println!("{outcome:?}");
//! # Ok(()) }
//! ```
//!
//! What a step becomes on the wire, and a signed delivery verified (runs offline):
//!
//! ```
//! use ezthrottle_core::webhook::{Verifier, sign};
//! use ezthrottle_core::{Step, StepType, Trigger, Webhook};
//!
//! let job = Step::new("https://api.example.com/orders")
//!     .step_type(StepType::Frugal)
//!     .webhook(Webhook::new("https://app.example.com/webhook"))
//!     .fallback(Step::new("https://backup.example.com/orders"), Trigger::on_error([500]))
//!     .to_job();
//! job.validate().expect("a valid job");
//! assert!(job.to_json().contains(r#""trigger":{"type":"on_error","codes":[500]}"#));
//!
//! let body = br#"{"job_id":"job_1","status":"success"}"#;
//! let header = sign("whsec_current_0123456789", 1_763_674_210, body);
//! let verifier = Verifier::new("whsec_current_0123456789")?.with_secondary("whsec_previous_012345")?;
//! assert_eq!(verifier.verify_at(body, &header, 1_763_674_215).map(|v| v.reason()), Ok("valid_primary"));
//! # Ok::<(), ezthrottle_core::protocol::WeakSecret>(())
//! ```
//!
//! Modules: [`protocol`] (the wire types), [`webhook`] (signatures), and at the root the
//! client ([`EZThrottle`]), [`Step`], [`ForwardToEZThrottle`] and [`Error`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

#[cfg(feature = "client")]
#[doc(hidden)]
pub mod __private;
#[cfg(feature = "client")]
mod auto_forward;
#[cfg(feature = "client")]
mod call;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "client")]
mod error;
#[cfg(feature = "client")]
mod forward;
#[cfg(feature = "client")]
pub mod inbox;
pub mod protocol;
pub mod replay;
#[cfg(feature = "client")]
mod run_or_forward;
#[cfg(feature = "client")]
pub mod step;
pub mod telemetry;
pub mod webhook;

#[cfg(feature = "client")]
pub use auto_forward::{AutoForwardError, HttpFailure, Outcome, Unforwardable};
#[cfg(feature = "client")]
pub use call::{FailedCall, KeepRequest};
#[cfg(feature = "client")]
pub use client::{
    DEFAULT_BREAKER_COOL_DOWN, DEFAULT_BREAKER_THRESHOLD, DEFAULT_CONNECT_TIMEOUT, DEFAULT_EZTHROTTLE_URL,
    DEFAULT_SUBMIT_DEADLINE, DEFAULT_TIMEOUT, DEFAULT_TRACKTAGS_URL, ENV_API_KEY, ENV_TRACKTAGS_URL, ENV_URL,
    EZThrottle, EZThrottleBuilder, ForwardOrFallback, JobEvents, JobFilter, MAX_BREAKER_COOL_DOWN, MAX_SUBMIT_DEADLINE,
    USER_AGENT,
};
#[cfg(feature = "client")]
pub use error::{Error, ErrorChain, Origin};
#[cfg(feature = "client")]
pub use forward::{ForwardBuildError, ForwardToEZThrottle, Forwardable};
pub use http::{Method, StatusCode};
#[cfg(feature = "client")]
pub use inbox::{Inbox, InboxError, StepDelivery, WaitError, WebhookInbox};
pub use protocol::{
    DeliveryStatus, ExecutionMode, Job, Pace, RegionPolicy, RetryPolicy, SubmissionStatus, SubmitReceipt, Trigger,
    Webhook, WebhookPayload,
};
pub use replay::{CallFailure, ReplayPolicy};
#[cfg(feature = "client")]
pub use step::{IdempotentStrategy, LocalFailure, LocalResponse, Step, StepOutcome, StepResult, StepType};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
