//! The layer around hyper-util's legacy client, against loopback servers and the engine.

use bytes::Bytes;
use ezthrottle_core::IdempotentStrategy;
use ezthrottle_core::protocol::time::to_unix_ms;
use ezthrottle_core::{DeliveryStatus, StatusCode, Webhook};
use ezthrottle_tower::forward::ResponseBody;
use ezthrottle_tower::{Forward, ForwardFailed, ForwardLayer, ForwardReason, ForwardedJob};
use http::{HeaderName, Request, Response};
use hyper::body::Incoming;
use tower::{Layer, ServiceExt};

use crate::support::*;

type Wrapped = Forward<HyperClient>;

fn wrap(layer: ForwardLayer) -> Wrapped {
    layer.layer(hyper_client())
}

async fn send(client: &Wrapped, request: Request<TestBody>) -> Response<ResponseBody<Incoming>> {
    client.clone().oneshot(request).await.expect("an answer")
}

async fn json_of(response: Response<ResponseBody<Incoming>>) -> serde_json::Value {
    serde_json::from_slice(&bytes_of(response.into_body()).await).expect("JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_calls_pass_through_byte_exact() {
    let (target, ezt) = target_and_ezthrottle().await;
    let client = wrap(ForwardLayer::new(ezt.client.clone()));
    let body = binary_kib();
    let request = Request::post(target.url("/echo?q=1"))
        .header("authorization", "Bearer token-1")
        .header("content-type", "application/octet-stream")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(TestBody::from(body.clone()))
        .unwrap();
    let response = send(&client, request).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-target"], "echo");
    assert_eq!(response.headers()["x-echo-method"], "POST");
    assert!(!response.headers().contains_key("x-ezthrottle-forwarded"));
    assert!(response.extensions().get::<ForwardedJob>().is_none());
    assert!(response.extensions().get::<ForwardFailed>().is_none());
    assert!(!response.body().is_synthesized());
    assert_eq!(bytes_of(response.into_body()).await, body, "the response body is untouched");

    let hits = target.hits();
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert_eq!((hit.method.as_str(), hit.path.as_str()), ("POST", "/echo?q=1"));
    assert_eq!(hit.body, body, "the request body reached the target byte for byte");
    assert_eq!(hit.headers["authorization"], "Bearer token-1");
    assert_eq!(hit.headers["content-type"], "application/octet-stream");
    assert_eq!(hit.headers.get_all("x-multi").iter().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(hit.headers["content-length"], "1024");
    assert!(ezt.store.is_empty(), "nothing was submitted");
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_becomes_a_job_that_runs_and_is_delivered_signed() {
    let (target, ezt) = target_and_ezthrottle().await;
    let mut receiver = Receiver::start().await;
    let client =
        wrap(ForwardLayer::new(ezt.client.clone()).with_template(|job| job.webhook(Webhook::new(&receiver.url))));
    let body = r#"{"sku":"tea","qty":2}"#;
    let url = target.url("/limited/1?order=7");
    let before = now_ms();
    let request = Request::post(&url)
        .header("authorization", "Bearer token-2")
        .header("content-type", "application/json")
        .header("idempotency-key", "order-7")
        .header("x-custom", "kept")
        .header("keep-alive", "timeout=5")
        .body(TestBody::from(body))
        .unwrap();
    let response = send(&client, request).await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-ezthrottle-forwarded"], "true");
    let job = response.extensions().get::<ForwardedJob>().cloned().expect("ForwardedJob");
    assert_eq!(job.original_status, Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(job.reason, ForwardReason::Status(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(job.receipt.idempotent_key.as_deref(), Some("order-7"));
    assert_eq!(response.headers()["x-ezthrottle-job-id"], job.receipt.job_id.as_str());
    let answer = json_of(response).await;
    assert_eq!(answer["job_id"], job.receipt.job_id.as_str());
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["idempotent_key"], "order-7");
    assert_eq!(answer["forwarded"], true);
    assert_eq!(answer["original_status"], 429);

    // The job is the original request.
    let record = ezt.job(&job.receipt.job_id);
    let submitted = record.job();
    assert_eq!(submitted.method, http::Method::POST);
    assert_eq!(submitted.url, url);
    assert_eq!(submitted.body.as_deref(), Some(body));
    assert_eq!(submitted.idempotent_key.as_deref(), Some("order-7"));
    assert_eq!(submitted.headers["authorization"], "Bearer token-2");
    assert_eq!(submitted.headers["idempotency-key"], "order-7");
    assert_eq!(submitted.headers["x-custom"], "kept");
    assert_eq!(submitted.headers["content-type"], "application/json");
    assert!(!submitted.headers.contains_key("keep-alive"), "hop-by-hop dropped: {:?}", submitted.headers);
    assert!(!submitted.headers.contains_key("host"));
    let retry_at = submitted.retry_at.map(to_unix_ms).expect("Retry-After became retry_at");
    assert!((before + 1000..=now_ms() + 1000).contains(&retry_at), "retry_at {retry_at}");

    // EZThrottle runs it (after the Retry-After) and the signed webhook arrives.
    let attempt = target.wait_engine_hit(&job.receipt.job_id).await;
    assert_eq!(attempt.method, http::Method::POST);
    assert_eq!(attempt.path, "/limited/1?order=7");
    assert_eq!(attempt.body, body.as_bytes());
    assert_eq!(attempt.headers["authorization"], "Bearer token-2");
    assert_eq!(attempt.headers["x-custom"], "kept");
    let delivery = receiver.next().await;
    assert_eq!(delivery.job_id, job.receipt.job_id);
    assert_eq!(delivery.status, DeliveryStatus::Success);
    assert_eq!(delivery.response.as_ref().map(|r| r.status_code), Some(200));
    assert_eq!(receiver.rejected.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(target.direct_hits().len(), 1);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_key_header_makes_repeats_one_job() {
    let (target, ezt) = target_and_ezthrottle().await;
    let client = wrap(ForwardLayer::new(ezt.client.clone()));
    let request = |key: Option<&str>, body: &'static str| {
        let mut request = Request::put(target.url("/limited/60")).body(TestBody::from(body)).unwrap();
        if let Some(key) = key {
            request.headers_mut().insert("idempotency-key", key.parse().unwrap());
        }
        request
    };
    let receipt = |response: &Response<ResponseBody<Incoming>>| {
        response.extensions().get::<ForwardedJob>().expect("forwarded").receipt.clone()
    };

    let first = receipt(&send(&client, request(Some("pay-1"), "a")).await);
    let second = receipt(&send(&client, request(Some("pay-1"), "a")).await);
    assert_eq!(first.job_id, second.job_id);
    assert!(!first.duplicate && second.duplicate);

    // Without the header: the SDK's key over method, URL, body and credentials.
    let hashed = receipt(&send(&client, request(None, "b")).await);
    let again = receipt(&send(&client, request(None, "b")).await);
    let other = receipt(&send(&client, request(None, "c")).await);
    assert_eq!(hashed.job_id, again.job_id);
    assert!(again.duplicate);
    assert_ne!(hashed.job_id, other.job_id);
    let key = ezt.job(&hashed.job_id).job().idempotent_key.clone().expect("the SDK computed the key");
    assert_eq!(key.len(), 64, "{key}");

    // Two callers with their own tokens are two jobs; one caller repeating is one job.
    let as_caller = |token: &str| {
        let mut request = request(None, "b");
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    let alice = receipt(&send(&client, as_caller("alice")).await);
    let bob = receipt(&send(&client, as_caller("bob")).await);
    let alice_again = receipt(&send(&client, as_caller("alice")).await);
    assert_ne!(alice.job_id, bob.job_id, "two tokens, two jobs");
    assert_ne!(alice.job_id, hashed.job_id);
    assert_eq!(alice.job_id, alice_again.job_id, "the same token twice, one job");
    assert!(alice_again.duplicate);
    let key = ezt.job(&alice.job_id).job().idempotent_key.clone().unwrap_or_default();
    assert!(!key.contains("alice"), "the key does not carry the token: {key}");

    // HASH, chosen on the template: no key sent, the engine derives one.
    let hash = wrap(
        ForwardLayer::new(ezt.client.clone()).with_template(|job| job.idempotent_strategy(IdempotentStrategy::Hash)),
    );
    let derived = receipt(&send(&hash, request(None, "e")).await);
    assert_eq!(ezt.job(&derived.job_id).job().idempotent_key, None, "no key sent: the engine derived one");

    // UNIQUE: every call without a key is its own job.
    let unique = wrap(
        ForwardLayer::new(ezt.client.clone()).with_template(|job| job.idempotent_strategy(IdempotentStrategy::Unique)),
    );
    let one = receipt(&send(&unique, request(None, "d")).await);
    let two = receipt(&send(&unique, request(None, "d")).await);
    assert_ne!(one.job_id, two.job_id);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_are_forwarded() {
    let reset = Resetter::start().await;
    let ezt = Ezt::start().await;
    let client = wrap(ForwardLayer::new(ezt.client.clone()));
    let response = send(&client, Request::get(reset.url("/reset")).body(TestBody::from("")).unwrap()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = response.extensions().get::<ForwardedJob>().cloned().unwrap();
    assert_eq!((job.reason, job.original_status), (ForwardReason::TransportError, None));
    let answer = json_of(response).await;
    assert_eq!(answer["original_status"], serde_json::Value::Null);
    assert_eq!(answer["reason"], "transport_error");
    assert!(reset.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(ezt.job(&job.receipt.job_id).job().url, reset.url("/reset"));

    // Refused connections too; unless transport errors are switched off.
    let refused = format!("http://{}/x", refused_addr().await);
    let response = send(&client, Request::get(&refused).body(TestBody::from("")).unwrap()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let strict = wrap(ForwardLayer::new(ezt.client.clone()).forward_on_transport_error(false));
    let error = strict.oneshot(Request::get(&refused).body(TestBody::from("")).unwrap()).await.unwrap_err();
    assert!(error.is_connect(), "{error}");
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_cannot_be_captured_pass_through_and_keep_the_original_answer() {
    let (target, ezt) = target_and_ezthrottle().await;
    let client = wrap(ForwardLayer::new(ezt.client.clone()).max_replay_bytes(64 * 1024));

    // A stream (no size hint), larger than the cap in the end.
    let (tx, body) = TestBody::channel();
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    let sender = tokio::spawn(async move {
        for _ in 0..8 {
            tx.send(chunk.clone()).await.unwrap();
        }
    });
    let response = send(&client, Request::post(target.url("/limited/1")).body(body).unwrap()).await;
    sender.await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "the original answer");
    assert_eq!(response.headers()["retry-after"], "1");
    let failed = response.extensions().get::<ForwardFailed>().cloned().expect("ForwardFailed");
    assert!(failed.reason.contains("no known size"), "{failed:?}");
    assert_eq!(failed.status, None);
    assert_eq!(bytes_of(response.into_body()).await, "slow down");
    let hit = target.direct_hits().pop().unwrap();
    assert_eq!(hit.body.len(), 128 * 1024, "the stream reached the target whole");

    // A buffered body larger than the cap.
    let small = wrap(ForwardLayer::new(ezt.client.clone()).max_replay_bytes(16));
    let response =
        send(&small, Request::post(target.url("/limited/1")).body(TestBody::from(binary_kib())).unwrap()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let failed = response.extensions().get::<ForwardFailed>().cloned().unwrap();
    assert!(failed.reason.contains("larger than max_replay_bytes (16)"), "{failed:?}");
    assert_eq!(target.direct_hits().pop().unwrap().body, binary_kib());

    // A body that is not UTF-8 cannot be a job.
    let response =
        send(&client, Request::post(target.url("/limited/1")).body(TestBody::from(binary_kib())).unwrap()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.extensions().get::<ForwardFailed>().unwrap().reason.contains("UTF-8"));
    assert!(ezt.store.is_empty());
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_still_arriving_with_a_known_size_is_captured_and_forwarded() {
    let (target, ezt) = target_and_ezthrottle().await;
    let client = wrap(ForwardLayer::new(ezt.client.clone()));
    let (tx, body) = TestBody::sized_channel(11);
    let sender = tokio::spawn(async move {
        for chunk in ["{\"a\":", "1,", "\"b\":2}"] {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            tx.send(Bytes::from_static(chunk.as_bytes())).await.unwrap();
        }
    });
    let response = send(&client, Request::post(target.url("/limited/60")).body(body).unwrap()).await;
    sender.await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = response.extensions().get::<ForwardedJob>().cloned().unwrap();
    assert_eq!(ezt.job(&job.receipt.job_id).job().body.as_deref(), Some("{\"a\":1,\"b\":2}"));
    assert_eq!(target.direct_hits().pop().unwrap().body, "{\"a\":1,\"b\":2}", "the target got the same bytes");
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_ezthrottle_is_down_the_original_answer_comes_back() {
    let target = Target::start().await;
    let client = wrap(ForwardLayer::new(unreachable_ezthrottle().await));
    let response = send(&client, Request::post(target.url("/limited/3")).body(TestBody::from("{}")).unwrap()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "3");
    assert!(!response.headers().contains_key("x-ezthrottle-forwarded"));
    let failed = response.extensions().get::<ForwardFailed>().cloned().expect("ForwardFailed");
    assert!(failed.reason.contains("unreachable"), "{failed:?}");
    assert_eq!(failed.status, None);
    assert_eq!(bytes_of(response.into_body()).await, "slow down");

    // A transport error comes back as the original error.
    let refused = format!("http://{}/x", refused_addr().await);
    let error = client.clone().oneshot(Request::get(refused).body(TestBody::from("")).unwrap()).await.unwrap_err();
    assert!(error.is_connect(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_ezthrottle_is_reported_with_its_status() {
    let target = Target::start().await;
    let engine = ezthrottle_local::Engine::builder().api_key("ck_live_right").start().await.unwrap();
    let wrong =
        ezthrottle_core::EZThrottle::builder().direct(engine.base_url()).api_key("ck_live_wrong").build().unwrap();
    let client = wrap(ForwardLayer::new(wrong));
    let response = send(&client, Request::get(target.url("/unavailable")).body(TestBody::from("")).unwrap()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let failed = response.extensions().get::<ForwardFailed>().cloned().unwrap();
    assert_eq!(failed.status, Some(StatusCode::UNAUTHORIZED), "{failed:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_concurrent_call_gets_exactly_one_answer() {
    let (target, ezt) = target_and_ezthrottle().await;
    let up = wrap(
        ForwardLayer::new(ezt.client.clone()).with_template(|job| job.idempotent_strategy(IdempotentStrategy::Unique)),
    );
    let down = wrap(ForwardLayer::new(unreachable_ezthrottle().await));
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (client, path) = match i % 4 {
            0 => (up.clone(), "/echo"),
            1 => (up.clone(), "/limited/60"),
            2 => (down.clone(), "/echo"),
            _ => (down.clone(), "/limited/60"),
        };
        let url = target.url(path);
        calls.spawn(async move {
            let response = client.oneshot(Request::post(url).body(TestBody::from("{}")).unwrap()).await.unwrap();
            (i % 4, response.status(), response.extensions().get::<ForwardFailed>().is_some())
        });
    }
    let answers = calls.join_all().await;
    assert_eq!(answers.len(), 40);
    for (kind, status, failed) in answers {
        let expected = match kind {
            0 | 2 => (StatusCode::OK, false),
            1 => (StatusCode::ACCEPTED, false),
            _ => (StatusCode::TOO_MANY_REQUESTS, true),
        };
        assert_eq!((status, failed), expected, "call kind {kind}");
    }
    assert_eq!(ezt.store.len(), 10);
    assert_eq!(target.direct_hits().len(), 40);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_settings_and_the_deny_list_shape_the_job() {
    let (target, ezt) = target_and_ezthrottle().await;
    let mut metadata = ezthrottle_core::protocol::Metadata::new();
    metadata.insert("service".into(), "billing".into());
    let client = wrap(
        ForwardLayer::new(ezt.client.clone())
            .forward_on([StatusCode::CONFLICT])
            .with_template(|job| {
                job.webhooks([Webhook::new("http://127.0.0.1:9/a"), Webhook::new("http://127.0.0.1:9/b")])
                    .webhook_quorum(2)
                    .regions(["iad", "lax"])
                    .execution_mode(ezthrottle_core::ExecutionMode::Fanout)
                    .region_policy(ezthrottle_core::RegionPolicy::Strict)
                    .retry_policy(ezthrottle_core::RetryPolicy::new().max_retries(1).retry_codes([409]))
                    .metadata(metadata)
            })
            .metadata_fn(|parts| {
                let mut metadata = ezthrottle_core::protocol::Metadata::new();
                metadata.insert("path".into(), parts.uri.path().into());
                metadata
            })
            .deny_header(HeaderName::from_static("x-internal")),
    );
    // 429 is no longer forwarded; a 409 from /switch is.
    let response = send(&client, Request::get(target.url("/limited/1")).body(TestBody::from("")).unwrap()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.extensions().get::<ForwardFailed>().is_none(), "not selected, so no failure either");
    target.set_switch(409);
    let request = Request::get(target.url("/switch"))
        .header("x-internal", "secret")
        .header("x-public", "ok")
        .body(TestBody::from(""));
    let response = send(&client, request.unwrap()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job_id = response.extensions().get::<ForwardedJob>().unwrap().receipt.job_id.clone();
    let record = ezt.job(&job_id);
    let job = record.job();
    assert_eq!(job.webhooks.len(), 2);
    assert_eq!(job.webhook_quorum, 2);
    assert_eq!(job.regions, ["iad", "lax"]);
    assert_eq!(job.execution_mode, ezthrottle_core::ExecutionMode::Fanout);
    assert_eq!(job.region_policy, ezthrottle_core::RegionPolicy::Strict);
    assert_eq!(job.retry_policy.as_ref().and_then(|p| p.max_retries), Some(1));
    assert_eq!(job.metadata["service"], "billing");
    assert_eq!(job.metadata["path"], "/switch");
    assert_eq!(job.retry_at, None, "no Retry-After");
    assert!(!job.headers.contains_key("x-internal"), "{:?}", job.headers);
    assert_eq!(job.headers["x-public"], "ok");
    let direct = target.direct_hits().pop().unwrap();
    assert_eq!(direct.headers["x-internal"], "secret", "the deny-list only applies to the job");
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn performance_mode_submits_without_calling_the_target() {
    let (target, ezt) = target_and_ezthrottle().await;
    let client = wrap(
        ForwardLayer::new(ezt.client.clone())
            .with_template(|job| job.step_type(ezthrottle_core::StepType::Performance)),
    );
    let response = send(&client, Request::post(target.url("/echo/perf")).body(TestBody::from("p")).unwrap()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job = response.extensions().get::<ForwardedJob>().cloned().unwrap();
    assert_eq!((job.reason, job.original_status), (ForwardReason::Performance, None));
    let attempt = target.wait_engine_hit(&job.receipt.job_id).await;
    assert_eq!(attempt.body, "p");
    assert!(target.direct_hits().is_empty(), "the client never called the target");

    // A stream cannot be submitted: it goes to the target.
    let (tx, body) = TestBody::channel();
    drop(tx);
    let response = send(&client, Request::post(target.url("/echo/stream")).body(body).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(target.direct_hits().len(), 1);
    ezt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_me_with_two_tokens_is_two_jobs_each_run_with_its_own_token() {
    let (target, ezt) = target_and_ezthrottle().await;
    let client = wrap(ForwardLayer::new(ezt.client.clone()));
    let me = |token: &str| {
        Request::get(target.url("/me")).header("authorization", format!("Bearer {token}")).body(TestBody::from(""))
    };
    let receipt = |response: Response<ResponseBody<Incoming>>| {
        response.extensions().get::<ForwardedJob>().expect("forwarded").receipt.clone()
    };
    let a = receipt(send(&client, me("token-a").unwrap()).await);
    let b = receipt(send(&client, me("token-b").unwrap()).await);
    assert_ne!(a.job_id, b.job_id, "two callers, two jobs");
    assert!(!a.duplicate && !b.duplicate);
    // Each job is run by the engine with its own caller's token.
    let run_a = target.wait_engine_hit(&a.job_id).await;
    let run_b = target.wait_engine_hit(&b.job_id).await;
    assert_eq!((run_a.method.as_str(), run_a.path.as_str()), ("GET", "/me"));
    assert_eq!(run_a.headers["authorization"], "Bearer token-a");
    assert_eq!(run_b.headers["authorization"], "Bearer token-b");

    // The same token again: the same job.
    let again = receipt(send(&client, me("token-a").unwrap()).await);
    assert_eq!(again.job_id, a.job_id);
    assert!(again.duplicate, "the same caller repeating is one job");
    assert_eq!(ezt.store.len(), 2);
    ezt.shutdown().await;
}
