//! hyper client -> `ForwardLayer` -> engine -> signed webhook -> `VerifiedWebhook` -> inbox.

use bytes::Bytes;
use ezthrottle::tower::{ForwardLayer, ForwardReason, ForwardedJob};
use ezthrottle::{DeliveryStatus, StatusCode, Webhook};
use ezthrottle_test_support::{DEADLINE, engine};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};

use crate::{SECRET, engine_attempts, limited_api, verified_inbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_hyper_call_comes_back_as_a_verified_webhook_in_the_inbox() {
    let api = limited_api().await;
    let (engine, ezthrottle) = engine::start_open(SECRET).await;
    let (webhook_url, inbox) = verified_inbox().await;
    let client = ServiceBuilder::new()
        .layer(ForwardLayer::new(ezthrottle).with_template(|job| job.webhook(Webhook::new(&webhook_url))))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let request = http::Request::post(api.url("/orders/7")).body(Full::from(r#"{"qty":2}"#)).unwrap();
    let response = client.oneshot(request).await.expect("an answer");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = response.extensions().get::<ForwardedJob>().cloned().expect("the 429 was forwarded");
    assert_eq!(job.reason, ForwardReason::Status(StatusCode::TOO_MANY_REQUESTS));

    let payload = inbox.wait(&job.receipt.job_id, DEADLINE).await.expect("the webhook resolves the inbox");
    assert_eq!(payload.status, DeliveryStatus::Success);
    let answered = payload.response.expect("the target's answer");
    assert_eq!((answered.status_code, answered.body.as_str()), (200, &*format!("done for {}", job.receipt.job_id)));

    // The engine replayed the call as it was made: method, path, body.
    let attempts = engine_attempts(&api);
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!((attempts[0].method.as_str(), attempts[0].path.as_str()), ("POST", "/orders/7"));
    assert_eq!(attempts[0].body, r#"{"qty":2}"#.as_bytes());
    engine.shutdown().await;
}
