//! The core of the EZThrottle Rust SDK: the client, the [`Step`] builder, the protocol
//! types and webhook signatures.
//!
//! EZThrottle takes an HTTP request as a *job*, runs it against a rate-limited API (per-host
//! pacing, retries, region racing, fallbacks, workflows) and delivers the result to signed
//! webhooks.
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
//! Modules: [`protocol`] (the wire types), [`webhook`] (signatures), and at the root the
//! client ([`EZThrottle`]), [`Step`], [`ForwardToEZThrottle`] and [`Error`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

#[doc(hidden)]
pub mod __private;
mod auto_forward;
mod client;
mod error;
mod forward;
pub mod headers;
pub mod inbox;
pub mod protocol;
pub mod retry_after;
pub mod step;
pub mod webhook;

pub use auto_forward::{AutoForwardError, Outcome};
pub use client::{
    DEFAULT_EZTHROTTLE_URL, DEFAULT_TIMEOUT, DEFAULT_TRACKTAGS_URL, ENV_API_KEY, ENV_TRACKTAGS_URL, ENV_URL,
    EZThrottle, EZThrottleBuilder, ForwardOrFallback,
};
pub use error::{Error, Origin};
pub use forward::{ForwardBuildError, ForwardToEZThrottle, Forwardable};
pub use http::{Method, StatusCode};
pub use inbox::{StepDelivery, WaitError, WebhookInbox};
pub use protocol::{
    DeliveryStatus, ExecutionMode, Job, RegionPolicy, RetryPolicy, SubmissionStatus, SubmitReceipt, Trigger, Webhook,
    WebhookPayload,
};
pub use step::{IdempotentStrategy, LocalFailure, LocalResponse, Step, StepOutcome, StepResult, StepType};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
