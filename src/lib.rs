//! # ezthrottle
//!
//! The Rust SDK for [EZThrottle](https://ezthrottle.fly.dev): hand rate-limited HTTP calls
//! to EZThrottle as *jobs* (per-host pacing, retries, region racing, fallbacks, workflows)
//! and receive the results on signed webhooks.
//!
//! This facade re-exports the workspace crates:
//!
//! | what | where | feature |
//! |---|---|---|
//! | client, [`Step`], protocol types, [`webhook`] signatures | `ezthrottle-core` | always |
//! | the EZThrottle-compatible engine, as `ezthrottle::local` | `ezthrottle-local` | `local` |
//! | `#[auto_forward]` (with [`Outcome`] and [`AutoForwardError`]) | `ezthrottle-macros` | `macros` |
//! | every tower middleware, as `ezthrottle::tower` | `ezthrottle-tower` | `tower` (all of them), or one each: `forward`, `pace`, `rate-limit`, `idempotency`, `webhook`; with `redis`, `axum`, `reqwest-middleware` |
//! | actix-web extractor and middlewares, as `ezthrottle::actix` | `ezthrottle-actix` | `actix` |
//!
//! ```no_run
//! use ezthrottle::{EZThrottle, Step, StepType, Webhook};
//!
//! # async fn run() -> Result<(), ezthrottle::Error> {
//! let client = EZThrottle::from_env()?;
//! let outcome = Step::new("https://api.example.com/orders")
//!     .step_type(StepType::Frugal)
//!     .webhook(Webhook::new("https://app.example.com/webhook"))
//!     .execute(&client)
//!     .await?;
//! println!("{outcome:?}");
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use ezthrottle_core::*;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use ezthrottle_macros::auto_forward;

/// Tower middleware: forward failed calls as jobs, tell callers your pace, rate-limit,
/// suppress duplicates, verify webhooks (each behind its own feature).
#[cfg(any(
    feature = "forward",
    feature = "pace",
    feature = "rate-limit",
    feature = "idempotency",
    feature = "webhook",
    feature = "redis"
))]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use ezthrottle_tower as tower;

/// actix-web integrations (`ezthrottle-actix`): the `VerifiedDelivery` extractor and the
/// verify, idempotency and rate-limit middlewares.
#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub use ezthrottle_actix as actix;

/// The EZThrottle-compatible engine (`ezthrottle-local`): start one in-process for tests
/// and offline work.
#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub use ezthrottle_local as local;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
