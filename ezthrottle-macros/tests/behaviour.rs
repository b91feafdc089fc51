//! `#[auto_forward]` (and `run_or_forward`) against a real `ezthrottle-local` engine and a
//! loopback target that answers 429 or 503.
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used, clippy::panic)]

// The default runtime path is `::ezthrottle::__private`: alias core under that name, as
// the facade's glob re-export will provide it.
extern crate ezthrottle_core as ezthrottle;

#[path = "behaviour/on_status.rs"]
mod on_status;
#[path = "behaviour/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ezthrottle::{AutoForwardError, EZThrottle, ForwardToEZThrottle, Forwardable, Outcome, Webhook};
use ezthrottle_macros::auto_forward;
use support::{ByEngine, Target, engine, finished_job, unreachable_client};

/// A legacy error: some failures are worth forwarding, some are not.
#[derive(Debug)]
enum BillingError {
    RateLimited(Box<ForwardToEZThrottle>),
    CardDeclined,
    Parse(std::num::ParseIntError),
}

impl std::fmt::Display for BillingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RateLimited(forward) => write!(f, "rate limited: {forward}"),
            Self::CardDeclined => f.write_str("card declined"),
            Self::Parse(error) => write!(f, "bad amount: {error}"),
        }
    }
}

impl std::error::Error for BillingError {}

impl From<std::num::ParseIntError> for BillingError {
    fn from(error: std::num::ParseIntError) -> Self {
        Self::Parse(error)
    }
}

impl Forwardable for BillingError {
    fn forward_request(&self) -> Option<ForwardToEZThrottle> {
        match self {
            Self::RateLimited(forward) => Some((**forward).clone()),
            Self::CardDeclined | Self::Parse(_) => None,
        }
    }
}

/// Legacy code: POSTs the charge itself; on a 429 it describes the request for EZThrottle.
#[auto_forward(client = client, idempotent_key = format!("charge-{order}"), webhooks = [Webhook::new(webhook)])]
async fn charge(
    client: &EZThrottle,
    url: String,
    webhook: &str,
    order: u32,
    amount: &str,
) -> Result<u32, BillingError> {
    let amount: u32 = amount.parse()?; // `?` into the declared error, as before
    if amount == 0 {
        return Ok(0); // early return, as before
    }
    if amount > 1_000 {
        return Err(BillingError::CardDeclined);
    }
    let body = format!(r#"{{"order":{order},"amount":{amount}}}"#);
    let response = reqwest::Client::new()
        .post(&url)
        .header("authorization", "Bearer target-token")
        .header("x-order", order.to_string())
        .body(body.clone())
        .send()
        .await
        .map_err(|_| BillingError::CardDeclined)?;
    if response.status() == 429 {
        let forward = ForwardToEZThrottle::post(url, body)
            .map_step(|step| step.header("authorization", "Bearer target-token").header("x-order", order.to_string()));
        return Err(BillingError::RateLimited(Box::new(forward)));
    }
    Ok(amount)
}

#[tokio::test]
async fn a_forwarded_job_arrives_intact_and_executes() {
    let target = Target::start().await;
    let (engine, client) = engine().await;
    let webhook = target.url("/webhook");

    let outcome = charge(&client, target.url("/charge"), &webhook, 42, "100").await.unwrap();
    let Outcome::Forwarded(receipt) = outcome else { panic!("expected a forward, got {outcome:?}") };
    assert_eq!(receipt.idempotent_key.as_deref(), Some("charge-42"));

    // The engine runs the job against the target: same method, path, headers and body.
    let executed = target.wait_for(|r| r.path == "/charge" && r.by_engine()).await;
    assert_eq!(executed.method, "POST");
    assert_eq!(executed.body, r#"{"order":42,"amount":100}"#);
    assert_eq!(executed.headers["authorization"], "Bearer target-token");
    assert_eq!(executed.headers["x-order"], "42");

    let job = finished_job(&engine, &receipt.job_id).await;
    assert_eq!(job["status"], "success", "{job:#}");
    assert_eq!(job["method"], "POST");
    assert_eq!(job["url"], target.url("/charge"));
    assert_eq!(job["idempotent_key"], "charge-42");
    assert_eq!(job["attempts"][0]["status_code"], 200);

    // ... and delivers its result to the webhook given by the `webhooks` option.
    let delivered = target.wait_for(|r| r.path == "/webhook").await;
    assert!(delivered.body_text().contains(&receipt.job_id), "{}", delivered.body_text());
    engine.shutdown().await;
}

#[tokio::test]
async fn ok_passes_through_and_question_mark_and_return_keep_working() {
    let target = Target::start().await;
    let client = unreachable_client();
    let webhook = target.url("/webhook");
    // Early `return Ok(0)`.
    assert!(matches!(charge(&client, target.url("/charge"), &webhook, 1, "0").await, Ok(Outcome::Completed(0))));
    // `?` on a `ParseIntError` still converts into `BillingError`, which is not forwarded.
    let error = charge(&client, target.url("/charge"), &webhook, 1, "ten").await.unwrap_err();
    assert!(matches!(error, AutoForwardError::Failed(BillingError::Parse(_))), "{error:?}");
    assert!(error.to_string().starts_with("bad amount"), "{error}");
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn a_failure_without_a_request_is_returned_as_is() {
    let target = Target::start().await;
    let client = unreachable_client();
    let error = charge(&client, target.url("/charge"), &target.url("/webhook"), 7, "5000").await.unwrap_err();
    assert!(matches!(error, AutoForwardError::Failed(BillingError::CardDeclined)), "{error:?}");
    assert!(error.forward_error().is_none());
    assert!(matches!(error.into_original(), BillingError::CardDeclined));
}

#[tokio::test]
async fn engine_down_returns_the_original_error_and_the_submission_error() {
    let target = Target::start().await;
    let client = unreachable_client();
    let error = charge(&client, target.url("/charge"), &target.url("/webhook"), 9, "100").await.unwrap_err();
    let AutoForwardError::ForwardFailed { original, error: submission } = &error else {
        panic!("expected ForwardFailed, got {error:?}")
    };
    assert!(matches!(original, BillingError::RateLimited(_)));
    assert!(submission.is_not_sent(), "{submission}");
    assert!(error.to_string().contains("forwarding it to EZThrottle failed"), "{error}");
    let source = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    assert!(source.contains("unreachable"), "{source}");
}

/// The client expression is evaluated only when a failure is forwarded.
#[auto_forward(client = client_that_must_not_be_built(evaluated))]
async fn lazily(evaluated: &AtomicU32, fail: bool) -> Result<&'static str, ForwardToEZThrottle> {
    if fail { Err(ForwardToEZThrottle::get("http://127.0.0.1:9/never")) } else { Ok("done") }
}

fn client_that_must_not_be_built(evaluated: &AtomicU32) -> EZThrottle {
    evaluated.fetch_add(1, Ordering::SeqCst);
    unreachable_client()
}

#[tokio::test]
async fn the_ok_path_does_not_evaluate_the_client() {
    let evaluated = AtomicU32::new(0);
    assert!(matches!(lazily(&evaluated, false).await, Ok(Outcome::Completed("done"))));
    assert_eq!(evaluated.load(Ordering::SeqCst), 0);
    assert!(matches!(lazily(&evaluated, true).await, Err(AutoForwardError::ForwardFailed { .. })));
    assert_eq!(evaluated.load(Ordering::SeqCst), 1);
}

/// Without `client`, the process-wide client comes from the environment.
#[auto_forward]
async fn from_the_environment() -> Result<(), ForwardToEZThrottle> {
    Err(ForwardToEZThrottle::get("http://127.0.0.1:9/never"))
}

#[tokio::test]
async fn without_a_client_a_missing_environment_is_reported_with_the_original_error() {
    if [ezthrottle::ENV_API_KEY, ezthrottle::ENV_URL, ezthrottle::ENV_TRACKTAGS_URL]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
    {
        return; // configured: this test must not reach a real service
    }
    let error = from_the_environment().await.unwrap_err();
    let AutoForwardError::ForwardFailed { original, error } = error else { panic!("expected ForwardFailed") };
    assert_eq!(original.url(), "http://127.0.0.1:9/never");
    assert!(error.to_string().contains(ezthrottle::ENV_API_KEY), "{error}");
}

/// FRUGAL: the request is made here again before anything is forwarded.
#[auto_forward(client = client, step = frugal)]
async fn frugal(client: &EZThrottle, url: String) -> Result<(), ForwardToEZThrottle> {
    let status = reqwest::get(&url).await.map(|r| r.status().as_u16()).unwrap_or(0);
    if status == 200 { Ok(()) } else { Err(ForwardToEZThrottle::get(url)) }
}

#[tokio::test]
async fn frugal_runs_here_again_first() {
    let target = Target::start().await;
    let client = unreachable_client(); // never reached: the second local attempt decides
    // 429 then 200: the repeat succeeded here.
    let outcome = frugal(&client, target.url("/flaky")).await.unwrap();
    let Outcome::ExecutedLocally(response) = outcome else { panic!("expected ExecutedLocally, got {outcome:?}") };
    assert_eq!(response.status, 200);
    // 429 then 400: nothing forwarded, the original error and the answer come back.
    let error = frugal(&client, target.url("/refuses")).await.unwrap_err();
    let AutoForwardError::FailedLocally { original, response } = error else { panic!("expected FailedLocally") };
    assert_eq!(original.url(), target.url("/refuses"));
    assert_eq!(response.status, 400);
}

/// A sync function: the forward runs on the dedicated forwarding thread.
#[auto_forward(client = client)]
#[allow(clippy::result_large_err)] // `ForwardToEZThrottle` is 320 bytes, with or without the macro
fn legacy_sync(client: &EZThrottle, url: &str) -> Result<u8, ForwardToEZThrottle> {
    if url.is_empty() {
        return Ok(0);
    }
    Err(ForwardToEZThrottle::get(url).map_step(|step| step.header("x-sync", "yes")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::result_large_err)] // the closures return a `ForwardToEZThrottle` (320 bytes)
async fn a_sync_function_forwards_from_a_plain_thread_and_from_inside_a_runtime() {
    let target = Target::start().await;
    let (engine, client) = engine().await;
    let client = Arc::new(client);

    // From a thread without a runtime.
    let (from_thread, url) = (Arc::clone(&client), target.url("/limited/sync-thread"));
    let outcome = std::thread::spawn(move || legacy_sync(&from_thread, &url)).join().unwrap().unwrap();
    assert!(outcome.is_forwarded(), "{outcome:?}");

    // From a runtime's blocking pool: no "cannot start a runtime from within a runtime".
    let (from_runtime, url) = (Arc::clone(&client), target.url("/limited/sync-runtime"));
    let outcome = tokio::task::spawn_blocking(move || legacy_sync(&from_runtime, &url)).await.unwrap().unwrap();
    let receipt = outcome.receipt().cloned().unwrap();
    let executed = target.wait_for(|r| r.path == "/limited/sync-runtime" && r.by_engine()).await;
    assert_eq!(executed.headers["x-sync"], "yes");
    assert_eq!(finished_job(&engine, &receipt.job_id).await["status"], "success");

    assert!(matches!(legacy_sync(&client, ""), Ok(Outcome::Completed(0))));
    engine.shutdown().await;
}

#[test]
fn a_sync_function_reports_an_unreachable_engine() {
    let error = legacy_sync(&unreachable_client(), "http://127.0.0.1:9/x").unwrap_err();
    assert!(error.forward_error().is_some_and(ezthrottle::Error::is_not_sent), "{error:?}");
}

mod methods {
    use super::*;

    /// A service holding its client, with `&self`, `&mut self` and `self` methods.
    pub struct Billing {
        pub client: EZThrottle,
        pub target: String,
        pub attempts: u32,
    }

    impl Billing {
        #[auto_forward(client = self.client)]
        pub async fn charge(&self, path: &str) -> Result<u32, ForwardToEZThrottle> {
            Err(ForwardToEZThrottle::get(format!("{}{path}", self.target)))
        }

        #[auto_forward(client = &self.client, idempotent_key = format!("attempt-{}", self.attempts))]
        pub async fn retry(&mut self, path: &str) -> Result<u32, ForwardToEZThrottle> {
            self.attempts += 1;
            Err(ForwardToEZThrottle::get(format!("{}{path}", self.target)))
        }

        #[auto_forward(client = self.client)]
        #[allow(clippy::result_large_err)] // `ForwardToEZThrottle` is 320 bytes, with or without the macro
        pub fn consume(self, path: &str) -> Result<u32, ForwardToEZThrottle> {
            Err(ForwardToEZThrottle::get(format!("{}{path}", self.target)))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(clippy::result_large_err)] // a closure returns a `ForwardToEZThrottle` (320 bytes)
    async fn methods_forward_with_a_client_from_self() {
        let target = Target::start().await;
        let (engine, client) = engine().await;
        let mut billing = Billing { client, target: target.url(""), attempts: 0 };

        // Spawned: the future of an annotated `&self` method is `Send`.
        let shared = Arc::new(Billing { client: billing.client.clone(), target: billing.target.clone(), attempts: 0 });
        let outcome = tokio::spawn(async move { shared.charge("/limited/ref").await }).await.unwrap().unwrap();
        assert!(outcome.is_forwarded());

        let outcome = billing.retry("/limited/mut").await.unwrap();
        assert_eq!(billing.attempts, 1);
        // The key was computed before the body ran.
        assert_eq!(outcome.receipt().and_then(|r| r.idempotent_key.as_deref()), Some("attempt-0"));

        let outcome = tokio::task::spawn_blocking(move || billing.consume("/limited/owned")).await.unwrap().unwrap();
        assert!(outcome.is_forwarded());
        for path in ["/limited/ref", "/limited/mut", "/limited/owned"] {
            target.wait_for(|r| r.path == path && r.by_engine()).await;
        }
        engine.shutdown().await;
    }
}

mod composition {
    use std::sync::Mutex;

    use super::*;

    #[async_trait::async_trait]
    pub trait Charger {
        async fn charge(&self, path: &str) -> Result<Outcome<u32>, AutoForwardError<ForwardToEZThrottle>>;
        async fn count(&mut self, fail: bool) -> Result<Outcome<u32>, AutoForwardError<ForwardToEZThrottle>>;
    }

    pub struct Service {
        pub client: EZThrottle,
        pub target: String,
        pub calls: u32,
    }

    /// `#[async_trait]` on the impl, `#[auto_forward]` on the method.
    #[async_trait::async_trait]
    impl Charger for Service {
        #[auto_forward(client = self.client, webhooks = vec![Webhook::new(format!("{}/webhook", self.target))])]
        async fn charge(&self, path: &str) -> Result<u32, ForwardToEZThrottle> {
            Err(ForwardToEZThrottle::get(format!("{}{path}", self.target)))
        }

        #[auto_forward(client = self.client)]
        #[tracing::instrument(skip(self))]
        async fn count(&mut self, fail: bool) -> Result<u32, ForwardToEZThrottle> {
            self.calls += 1;
            if fail {
                return Err(ForwardToEZThrottle::get(format!("{}/limited/count", self.target)));
            }
            Ok(self.calls)
        }
    }

    #[tokio::test]
    async fn async_trait_methods_forward() {
        let target = Target::start().await;
        let (engine, client) = engine().await;
        let mut service = Service { client, target: target.url(""), calls: 0 };
        let outcome = service.charge("/limited/trait").await.unwrap();
        let receipt = outcome.receipt().cloned().unwrap();
        assert_eq!(finished_job(&engine, &receipt.job_id).await["status"], "success");
        target.wait_for(|r| r.path == "/webhook").await;

        assert!(matches!(service.count(false).await, Ok(Outcome::Completed(1))));
        assert!(service.count(true).await.unwrap().is_forwarded());
        assert_eq!(service.calls, 2);
        engine.shutdown().await;
    }

    /// Records the span the client expression is evaluated in (the forward runs there too).
    fn client_in_span<'a>(client: &'a EZThrottle, seen: &Mutex<Option<&'static str>>) -> &'a EZThrottle {
        *seen.lock().unwrap() = tracing::Span::current().metadata().map(|metadata| metadata.name());
        client
    }

    static OUTSIDE: Mutex<Option<&'static str>> = Mutex::new(None);
    static INSIDE: Mutex<Option<&'static str>> = Mutex::new(None);

    /// `#[auto_forward]` first: the span covers the forward too.
    #[auto_forward(client = client_in_span(client, &OUTSIDE))]
    #[tracing::instrument(name = "outer_span", skip(client), err)]
    async fn instrumented_outside(client: &EZThrottle, url: String) -> Result<u32, ForwardToEZThrottle> {
        Err(ForwardToEZThrottle::get(url))
    }

    /// `#[instrument]` first: the span covers the body only.
    #[tracing::instrument(name = "inner_span", skip(client), err)]
    #[auto_forward(client = client_in_span(client, &INSIDE))]
    async fn instrumented_inside(client: &EZThrottle, url: String) -> Result<u32, ForwardToEZThrottle> {
        if url.is_empty() {
            return Ok(3);
        }
        Err(ForwardToEZThrottle::get(url))
    }

    #[tokio::test]
    async fn instrument_composes_in_both_orders() {
        use tracing_subscriber::layer::SubscriberExt;
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_test_writer()),
        );

        let target = Target::start().await;
        let (engine, client) = engine().await;
        assert!(instrumented_outside(&client, target.url("/limited/outside")).await.unwrap().is_forwarded());
        assert!(instrumented_inside(&client, target.url("/limited/inside")).await.unwrap().is_forwarded());
        assert!(matches!(instrumented_inside(&client, String::new()).await, Ok(Outcome::Completed(3))));
        engine.shutdown().await;

        assert_eq!(*OUTSIDE.lock().unwrap(), Some("outer_span"));
        assert_eq!(*INSIDE.lock().unwrap(), None);
    }
}
