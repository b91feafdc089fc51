//! `RedisInbox`: deliveries shared by app replicas through one real `redis-server`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ezthrottle_core::inbox::{Inbox, InboxError, WaitError};
use ezthrottle_core::webhook::{Verifier, sign};
use ezthrottle_core::{DeliveryStatus, Error, Step, SubmissionStatus, SubmitReceipt, Webhook, WebhookPayload};
use ezthrottle_tower::axum::webhook_routes;
use ezthrottle_tower::webhook::RedisInbox;
use tokio::task::JoinSet;

use super::support::{RedisServer, SECRET, big_payload_json, http, now, payload_json, serve};

/// A replica's inbox: its own connections to the shared Redis. The re-read interval is
/// long so that these tests see the pub/sub wake-ups, not the safety net.
fn replica(url: &str) -> RedisInbox {
    RedisInbox::builder(redis::Client::open(url).expect("url"))
        .timeout(Duration::from_secs(5))
        .recheck_interval(Duration::from_secs(60))
        .build()
}

fn payload(job: &str, key: Option<&str>) -> WebhookPayload {
    let payload = WebhookPayload::new(job, DeliveryStatus::Success);
    match key {
        Some(key) => payload.with_idempotent_key(key),
        None => payload,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_on_one_replica_wakes_a_waiter_on_the_other() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let (a, b) = (replica(&redis.url), replica(&redis.url));
    let waiter = tokio::spawn({
        let b = b.clone();
        async move { b.wait("order-1", Duration::from_secs(10)).await }
    });
    // The waiter is listening once its subscription is (a subscription of B's listener).
    b.subscribe().await.expect("B subscribes");
    assert!(a.record(payload("job_1", Some("order-1"))).await.expect("recorded"));
    assert!(!a.record(payload("job_1", Some("order-1"))).await.expect("repeat"), "a repeat is not new");
    let got = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken in time").unwrap();
    assert_eq!(got.expect("delivered").job_id, "job_1");
}

#[tokio::test]
async fn a_waiter_arriving_after_the_delivery_still_gets_it() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let a = replica(&redis.url);
    a.record(payload("job_early", Some("order-early"))).await.expect("recorded");
    // A replica that was not even connected when the delivery came.
    let late = replica(&redis.url);
    assert_eq!(late.wait("job_early", Duration::ZERO).await.expect("by job id").job_id, "job_early");
    assert_eq!(late.wait("order-early", Duration::ZERO).await.expect("by key").job_id, "job_early");
}

#[tokio::test]
async fn waits_time_out_naming_the_key() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let inbox = replica(&redis.url);
    let started = std::time::Instant::now();
    let waited = inbox.wait_any(&["nobody", "nobody-key"], Duration::from_millis(100)).await;
    assert!(matches!(waited, Err(WaitError::TimedOut { ref key, .. }) if key == "nobody"), "{waited:?}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(5), "the deadline, not the 60 s re-read");
}

#[tokio::test]
async fn receipts_match_as_in_the_memory_inbox() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let (a, b) = (replica(&redis.url), replica(&redis.url));
    a.record(payload("job_old", Some("order-7"))).await.expect("recorded");
    // A new job reusing a key waits for its own delivery.
    let new = SubmitReceipt::new("job_new", SubmissionStatus::Queued).with_idempotent_key("order-7");
    let waited = b.wait_for_receipt(&new, Duration::from_millis(50)).await;
    assert!(matches!(waited, Err(WaitError::TimedOut { ref key, .. }) if key == "job_new"), "{waited:?}");
    a.record(payload("job_new", Some("order-7"))).await.expect("recorded");
    assert_eq!(b.wait_for_receipt(&new, Duration::ZERO).await.expect("own").job_id, "job_new");
    // A duplicate resolves with the original job's delivery.
    let mut duplicate = SubmitReceipt::new("job_elsewhere", SubmissionStatus::Queued);
    duplicate.idempotent_key = Some("order-1".into());
    duplicate.duplicate = true;
    a.record(payload("job_first", Some("order-1"))).await.expect("recorded");
    assert_eq!(b.wait_for_receipt(&duplicate, Duration::ZERO).await.expect("original").job_id, "job_first");
}

#[tokio::test]
async fn subscribers_on_every_replica_see_each_delivery_and_keys_hide_ids() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let (a, b) = (replica(&redis.url), replica(&redis.url));
    let (mut on_a, mut on_b) = (a.subscribe().await.expect("a"), b.subscribe().await.expect("b"));
    a.record(payload("job_secret_x", Some("card-4242"))).await.expect("recorded");
    for subscription in [&mut on_a, &mut on_b] {
        let seen = tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await.expect("in time");
        assert_eq!(seen.expect("open").job_id, "job_secret_x");
    }
    let mut connection =
        redis::Client::open(redis.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut connection).await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|key| key.starts_with("ezthrottle:inbox:")), "{keys:?}");
    assert!(keys.iter().all(|key| !key.contains("job_secret_x") && !key.contains("4242")), "{keys:?}");
    let ttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query_async(&mut connection).await.unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "the default 10-minute TTL, got {ttl} ms");
}

#[tokio::test]
async fn an_oversize_payload_is_refused_with_413() {
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let inbox = RedisInbox::builder(redis::Client::open(redis.url.as_str()).unwrap()).max_payload(1024).build();
    let refused = inbox.record(payload(&"j".repeat(2000), None)).await;
    assert!(matches!(refused, Err(InboxError::PayloadTooLarge { limit: 1024, .. })), "{refused:?}");

    let receiver = serve(webhook_routes(Verifier::new(SECRET).unwrap(), inbox.clone())).await;
    let url = format!("http://{receiver}/webhook");
    let status = |body: String| {
        let url = url.clone();
        async move {
            let signature = sign(SECRET, now(), body.as_bytes());
            http().post(url).header("x-ezthrottle-signature", signature).body(body).send().await.unwrap().status()
        }
    };
    assert_eq!(status(big_payload_json("job_big", 4096)).await.as_u16(), 413);
    assert_eq!(status(payload_json("job_small", None)).await.as_u16(), 200);
    assert!(inbox.wait("job_big", Duration::ZERO).await.is_err(), "the big one was not stored");
}

#[tokio::test]
async fn redis_down_is_a_typed_error_and_a_503() {
    let down = ezthrottle_test_support::refused_url().await.replace("http://", "redis://");
    let inbox =
        RedisInbox::builder(redis::Client::open(down.as_str()).unwrap()).timeout(Duration::from_secs(2)).build();
    let recorded = inbox.record(payload("job_1", None)).await;
    assert!(matches!(recorded, Err(InboxError::Unavailable { .. })), "{recorded:?}");
    let waited = inbox.wait("job_1", Duration::from_secs(1)).await;
    assert!(matches!(waited, Err(WaitError::Unavailable { .. })), "{waited:?}");
    assert!(matches!(inbox.subscribe().await, Err(WaitError::Unavailable { .. })));

    let receiver = serve(webhook_routes(Verifier::new(SECRET).unwrap(), inbox.clone())).await;
    let body = payload_json("job_1", None);
    let response = http()
        .post(format!("http://{receiver}/webhook"))
        .header("x-ezthrottle-signature", sign(SECRET, now(), body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));

    // queue_and_wait: the job is accepted, the inbox failure is typed.
    let (engine, client) = ezthrottle_test_support::engine::start_open(SECRET).await;
    let job = Step::new(format!("http://{receiver}/nothing")).webhook(Webhook::new("http://127.0.0.1:9/x")).to_job();
    match client.queue_and_wait(&job, &inbox, Duration::from_secs(1)).await {
        Err(Error::InboxUnavailable { job_id, .. }) => assert!(!job_id.is_empty()),
        other => panic!("expected InboxUnavailable, got {other:?}"),
    }
    engine.shutdown().await;
}

/// A round-robin reverse proxy: request `n` goes to `backends[n % 2]`; records which
/// backend got which job's delivery.
#[derive(Clone)]
struct Proxy {
    backends: [String; 2],
    next: Arc<std::sync::atomic::AtomicUsize>,
    routed: Arc<Mutex<Vec<(usize, String)>>>,
    http: reqwest::Client,
}

async fn proxy(State(proxy): State<Proxy>, request: axum::extract::Request) -> Response {
    let turn = proxy.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2;
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let Ok(body) = axum::body::to_bytes(request.into_body(), 4 * 1024 * 1024).await else {
        return http::StatusCode::BAD_REQUEST.into_response();
    };
    if let Ok(payload) = serde_json::from_slice::<WebhookPayload>(&body) {
        proxy.routed.lock().unwrap().push((turn, payload.job_id));
    }
    let mut forward = proxy.http.post(format!("{}{path}", proxy.backends[turn]));
    for (name, value) in &headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            forward = forward.header(name, value);
        }
    }
    match forward.body(body).send().await {
        Ok(answer) => {
            let status = answer.status();
            (status, answer.bytes().await.unwrap_or_default()).into_response()
        }
        Err(_) => http::StatusCode::BAD_GATEWAY.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_a_round_robin_proxy_resolve_100_queue_and_waits() {
    const CALLS: usize = 100;
    let Some(redis) = RedisServer::start_or_skip().await else { return };
    let inboxes = [replica(&redis.url), replica(&redis.url)];
    let verifier = Verifier::new(SECRET).unwrap();
    let a = serve(webhook_routes(verifier.clone(), inboxes[0].clone())).await;
    let b = serve(webhook_routes(verifier, inboxes[1].clone())).await;
    let routed = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy {
        backends: [format!("http://{a}"), format!("http://{b}")],
        next: Arc::default(),
        routed: Arc::clone(&routed),
        http: http(),
    };
    let proxy = serve(Router::new().fallback(self::proxy).with_state(proxy)).await;
    let api =
        serve(Router::new().route("/echo/{n}", get(|Path(n): Path<usize>| async move { format!("result-{n}") }))).await;
    let (engine, client) = ezthrottle_test_support::engine::start_open(SECRET).await;

    let mut calls = JoinSet::new();
    for n in 0..CALLS {
        // Half the callers run on replica A, half on B; the proxy decides where each
        // delivery lands.
        let (inbox, client) = (inboxes[n % 2].clone(), client.clone());
        let job = Step::new(format!("http://{api}/echo/{n}"))
            .webhook(Webhook::new(format!("http://{proxy}/webhook")))
            .to_job();
        calls.spawn(async move {
            let payload = client.queue_and_wait(&job, &inbox, Duration::from_secs(30)).await;
            (n, payload)
        });
    }
    let mut waited_on = std::collections::HashMap::new();
    while let Some(joined) = calls.join_next().await {
        let (n, payload) = joined.expect("the call task");
        let payload = payload.unwrap_or_else(|err| panic!("call {n}: {err}"));
        assert_eq!(payload.status, DeliveryStatus::Success, "call {n}");
        assert_eq!(
            payload.response.as_ref().map(|r| r.body.as_str()),
            Some(format!("result-{n}").as_str()),
            "call {n}"
        );
        waited_on.insert(payload.job_id, n % 2);
    }
    assert_eq!(waited_on.len(), CALLS, "every call got its own job");
    let routed = routed.lock().unwrap().clone();
    let crossed =
        routed.iter().filter(|(replica, job)| waited_on.get(job).is_some_and(|waiter| waiter != replica)).count();
    assert!(routed.iter().any(|(replica, _)| *replica == 0) && routed.iter().any(|(replica, _)| *replica == 1));
    assert!(crossed > 0, "some deliveries landed on the replica that did not wait: {routed:?}");
    engine.shutdown().await;
}
