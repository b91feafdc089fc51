//! The stories across the crates, end to end, on real loopback servers: a rate-limited call
//! becomes a job at the engine, runs, and comes back as a signed webhook that a verifying
//! axum receiver hands to the `WebhookInbox` the caller awaits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod auto_forward;
mod forward_layer;
mod inbox;
mod workflow;

use axum::Router;
use axum::routing::post;
use ezthrottle::WebhookInbox;
use ezthrottle::tower::webhook::VerifiedWebhook;
use ezthrottle::webhook::Verifier;
use ezthrottle_test_support::{Answer, Recorded, TestServer, serve};

/// The secret the engine signs with and the receiver verifies with.
pub const SECRET: &str = "whsec_end_to_end_stories";
/// A previous secret, still accepted during a rotation.
pub const OLD_SECRET: &str = "whsec_end_to_end_previous";

use ezthrottle::protocol::headers::JOB_ID_HEADER;

/// A rate-limited API: `429` with `Retry-After: 0` to the caller, `200` to the engine.
pub async fn limited_api() -> TestServer {
    TestServer::start(|request: &Recorded| match request.header(JOB_ID_HEADER) {
        Some(job_id) => Answer::text(200, &format!("done for {job_id}")),
        None => Answer::text(429, "slow down").header("retry-after", "0"),
    })
    .await
}

/// The receiver an application writes: axum and the `VerifiedWebhook` extractor (verifying
/// with [`SECRET`]); each verified delivery goes to `on_delivery`. Answers its URL.
pub async fn verified_receiver(on_delivery: impl Fn(VerifiedWebhook) + Clone + Send + Sync + 'static) -> String {
    let handler = move |delivery: VerifiedWebhook| {
        on_delivery(delivery);
        std::future::ready("ok")
    };
    let app = Router::new().route("/webhook", post(handler)).with_state(Verifier::new(SECRET).unwrap());
    format!("http://{}/webhook", serve(app).await)
}

/// A [`verified_receiver`] recording into a new inbox: its URL and the inbox to await.
pub async fn verified_inbox() -> (String, WebhookInbox) {
    let inbox = WebhookInbox::new();
    let record = inbox.clone();
    let url = verified_receiver(move |delivery| {
        record.record(delivery.payload);
    });
    (url.await, inbox)
}

/// The engine's attempts at `api` (the caller's own calls carry no job id).
pub fn engine_attempts(api: &TestServer) -> Vec<Recorded> {
    api.requests().into_iter().filter(|request| request.header(JOB_ID_HEADER).is_some()).collect()
}
