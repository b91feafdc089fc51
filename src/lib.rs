//! # ezthrottle
//!
//! The Rust SDK for [EZThrottle](https://ezthrottle.fly.dev): hand rate-limited HTTP calls
//! to EZThrottle as *jobs* (per-host pacing, retries, region racing, fallbacks, workflows)
//! and receive the results on signed webhooks.
//!
//! ```sh
//! cargo add ezthrottle                                    # the client, Step, webhook signatures
//! cargo add ezthrottle --features tower,axum,reqwest-middleware   # plus middleware and receivers
//! ```
//!
//! (Nothing is on crates.io yet: until the first release, add
//! `--git https://github.com/ezthrottle/ezthrottle-rs` to each `cargo add`.)
//!
//! This facade re-exports the workspace crates behind features; with none, it is the
//! client crate `ezthrottle-core` alone.
//!
//! | feature | adds | from |
//! |---|---|---|
//! | (none) | the client [`EZThrottle`], [`Step`], the [`protocol`] types, [`webhook`] signatures, [`WebhookInbox`] | `ezthrottle-core` |
//! | `macros` | `#[auto_forward]` (with [`Outcome`] and [`AutoForwardError`]) | `ezthrottle-macros` |
//! | `tower` | every tower middleware, as `ezthrottle::tower`: `ForwardLayer`, `PaceLayer`, `RateLimitLayer`, `IdempotencyLayer`, `VerifyWebhookLayer` | `ezthrottle-tower` |
//! | `forward`, `pace`, `rate-limit`, `idempotency`, `webhook` | one middleware each, in `ezthrottle::tower` | `ezthrottle-tower`'s feature of the same name |
//! | `axum` | `webhook`, plus the axum `VerifiedWebhook` extractor and `webhook_routes` | `ezthrottle-tower/axum` |
//! | `redis` | Redis stores for the enabled `rate-limit` and `idempotency` middlewares; `RedisInbox` with `webhook` | `ezthrottle-tower/redis` |
//! | `reqwest-middleware` | `forward`, plus `ForwardMiddleware` for reqwest-middleware clients | `ezthrottle-tower/reqwest-middleware` |
//! | `actix` | the actix-web `VerifiedWebhook` extractor and middlewares, as `ezthrottle::actix` | `ezthrottle-actix` |
//! | `local` | the EZThrottle-compatible engine, as `ezthrottle::local` | `ezthrottle-local` |
//!
//! The wire contract these crates speak, with the reason for each decision, is
//! [`docs/protocol.md`](https://github.com/ezthrottle/ezthrottle-rs/blob/main/docs/protocol.md).
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
