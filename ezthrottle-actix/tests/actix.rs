//! The actix-web integrations: the `VerifiedDelivery` extractor, the verify, idempotency
//! and rate-limit middlewares, through actix's test server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, test, web};
use ezthrottle_actix::VerifiedDelivery;
use ezthrottle_core::webhook::{Verifier, sign};

use ezthrottle_test_support::webhook::{OLD_SECRET, SECRET, big_payload_json, now, payload_json};

async fn handler(delivery: VerifiedDelivery) -> HttpResponse {
    HttpResponse::Ok().body(format!("{}:{:?}", delivery.payload.job_id, delivery.secret()))
}

async fn send(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    body: String,
    header: Option<String>,
) -> (StatusCode, String) {
    let mut request = test::TestRequest::post().uri("/hook").set_payload(body);
    if let Some(header) = header {
        request = request.insert_header(("X-EZThrottle-Signature", header));
    }
    let response = test::call_service(app, request.to_request()).await;
    let status = response.status();
    let body = test::read_body(response).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[actix_web::test]
async fn actix_extractor_statuses() {
    let app = test::init_service(
        App::new()
            .app_data(Verifier::new(SECRET).unwrap().with_secondary(OLD_SECRET).unwrap())
            .app_data(web::PayloadConfig::new(2048))
            .route("/hook", web::post().to(handler)),
    )
    .await;
    let body = payload_json("job_x", None);
    let t = now();
    assert_eq!(
        send(&app, body.clone(), Some(sign(SECRET, t, body.as_bytes()))).await,
        (StatusCode::OK, "job_x:Primary".into())
    );
    assert_eq!(send(&app, body.clone(), Some(sign(OLD_SECRET, t, body.as_bytes()))).await.1, "job_x:Secondary");
    let tampered = body.replace("job_x", "job_y");
    let (status, text) = send(&app, tampered, Some(sign(SECRET, t, body.as_bytes()))).await;
    assert_eq!((status, text.as_str()), (StatusCode::UNAUTHORIZED, "invalid webhook signature"));
    assert_eq!(send(&app, body.clone(), Some(sign("wrong", t, body.as_bytes()))).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&app, body.clone(), Some(sign(SECRET, t - 1000, body.as_bytes()))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, body.clone(), Some(sign(SECRET, t + 1000, body.as_bytes()))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, body.clone(), None).await,
        (StatusCode::BAD_REQUEST, "missing X-EZThrottle-Signature header".into())
    );
    let (status, text) = send(&app, body.clone(), Some("garbage".into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.starts_with("malformed X-EZThrottle-Signature header"), "{text}");
    let big = big_payload_json("job_big", 4096);
    assert_eq!(send(&app, big.clone(), Some(sign(SECRET, t, big.as_bytes()))).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let bad = r#"{"job_id":1}"#.to_owned();
    let (status, text) = send(&app, bad.clone(), Some(sign(SECRET, t, bad.as_bytes()))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
}

#[actix_web::test]
async fn actix_web_data_and_missing_configuration() {
    let app = test::init_service(
        App::new().app_data(web::Data::new(Verifier::new(SECRET).unwrap())).route("/hook", web::post().to(handler)),
    )
    .await;
    let body = payload_json("job_d", None);
    assert_eq!(send(&app, body.clone(), Some(sign(SECRET, now(), body.as_bytes()))).await.0, StatusCode::OK);

    let bare = test::init_service(App::new().route("/hook", web::post().to(handler))).await;
    let (status, text) = send(&bare, body.clone(), Some(sign(SECRET, now(), body.as_bytes()))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("Verifier"), "{text}");
}

mod middleware {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use actix_web::http::StatusCode;
    use actix_web::{App, HttpResponse, test, web};
    use ezthrottle_actix::{ActixIdempotency, ActixRateLimit};
    use ezthrottle_tower::REPLAY_HEADER;
    use ezthrottle_tower::idempotency::IdempotencyLayer;
    use ezthrottle_tower::rate_limit::{Algorithm, FailMode, RateLimitLayer, Rule, Scope};

    const KEY: &str = "order-0001-abcdefgh";

    /// `/charge` echoes the body and counts its runs; the first `fail_first` runs answer 500.
    fn charge(runs: Arc<AtomicUsize>, fail_first: usize) -> actix_web::Route {
        web::post().to(move |body: web::Bytes| {
            let runs = Arc::clone(&runs);
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                let body = String::from_utf8_lossy(&body).into_owned();
                if run <= fail_first {
                    HttpResponse::InternalServerError().body(format!("failed run {run}"))
                } else {
                    HttpResponse::Created().insert_header(("x-run", run.to_string())).body(format!("charged {body}"))
                }
            }
        })
    }

    /// An app whose `/charge` route (see [`charge`]) runs behind `idempotency`.
    async fn charging_app(
        idempotency: ActixIdempotency,
        runs: &Arc<AtomicUsize>,
        fail_first: usize,
    ) -> impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    > {
        test::init_service(App::new().wrap(idempotency).route("/charge", charge(Arc::clone(runs), fail_first))).await
    }

    fn post(body: &'static str) -> test::TestRequest {
        test::TestRequest::post().uri("/charge").insert_header(("Idempotency-Key", KEY)).set_payload(body)
    }

    fn header<'a>(headers: &'a actix_web::http::header::HeaderMap, name: &str) -> &'a str {
        headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_else(|| panic!("header {name}"))
    }

    async fn call<B: actix_web::body::MessageBody>(
        app: &impl actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
        request: test::TestRequest,
    ) -> (StatusCode, bool, String) {
        let response = test::call_service(app, request.to_request()).await;
        let status = response.status();
        let replayed = response.headers().get(REPLAY_HEADER).is_some_and(|value| value == "true");
        let body = test::read_body(response).await;
        (status, replayed, String::from_utf8_lossy(&body).into_owned())
    }

    #[actix_web::test]
    async fn idempotency_sequential_duplicates_run_once_and_replay() {
        let runs = Arc::new(AtomicUsize::new(0));
        let app = charging_app(ActixIdempotency::memory(), &runs, 0).await;
        assert_eq!(call(&app, post("a")).await, (StatusCode::CREATED, false, "charged a".into()));
        for _ in 0..4 {
            let response = test::call_service(&app, post("a").to_request()).await;
            assert_eq!(response.status(), StatusCode::CREATED);
            assert_eq!(header(response.headers(), REPLAY_HEADER), "true");
            assert_eq!(header(response.headers(), "x-run"), "1", "stored headers are replayed");
            assert_eq!(test::read_body(response).await, "charged a");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Same key, different body: 422, the handler does not run.
        let (status, _, _) = call(&app, post("b")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        // No key: passes through (and the handler still gets the body).
        let plain = test::TestRequest::post().uri("/charge").set_payload("c");
        assert_eq!(call(&app, plain).await, (StatusCode::CREATED, false, "charged c".into()));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // An invalid key header is 400.
        let bad = test::TestRequest::post().uri("/charge").insert_header(("Idempotency-Key", "short"));
        assert_eq!(call(&app, bad).await.0, StatusCode::BAD_REQUEST);
    }

    /// `VerifyWebhook` wrapped around `Idempotency`: nothing unverified is answered from
    /// the store, and the extractor does not verify a second time.
    #[actix_web::test]
    async fn verify_middleware_runs_before_idempotency() {
        use ezthrottle_actix::{ActixVerifyWebhook, VerifiedDelivery};
        use ezthrottle_core::webhook::{Verifier, sign};

        use ezthrottle_test_support::webhook::{SECRET, now, payload_json};

        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let handler = move |delivery: VerifiedDelivery| {
            let counter = Arc::clone(&counter);
            async move {
                let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
                HttpResponse::Ok().body(format!("{} run {run} {:?}", delivery.payload.job_id, delivery.secret()))
            }
        };
        let app = test::init_service(
            App::new()
                .route("/hook", web::post().to(handler))
                .wrap(ActixIdempotency::memory())
                .wrap(ActixVerifyWebhook::with_verifier(Verifier::new(SECRET).unwrap())),
        )
        .await;
        let body = payload_json("job_verified_first", None);
        let delivery = |signature: Option<String>| {
            let request = test::TestRequest::post().uri("/hook").set_payload(body.clone());
            match signature {
                Some(signature) => request.insert_header(("X-EZThrottle-Signature", signature)),
                None => request,
            }
        };
        let genuine = || delivery(Some(sign(SECRET, now(), body.as_bytes())));
        let first = (StatusCode::OK, false, "job_verified_first run 1 Primary".to_owned());
        assert_eq!(call(&app, genuine()).await, first);
        assert_eq!(call(&app, delivery(None)).await.0, StatusCode::BAD_REQUEST);
        let forged = delivery(Some(sign("whsec_forger_0123456", now(), body.as_bytes())));
        assert_eq!(call(&app, forged).await.0, StatusCode::UNAUTHORIZED);
        let (status, replayed, text) = call(&app, genuine()).await;
        assert_eq!((status, replayed, text.as_str()), (StatusCode::OK, true, "job_verified_first run 1 Primary"));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[actix_web::test]
    async fn verify_middleware_without_a_verifier_is_500() {
        use ezthrottle_actix::ActixVerifyWebhook;
        let app = test::init_service(
            App::new().route("/hook", web::post().to(HttpResponse::Ok)).wrap(ActixVerifyWebhook::new()),
        )
        .await;
        let (status, _, text) = call(&app, test::TestRequest::post().uri("/hook").set_payload("{}")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(text.contains("not configured"), "{text}");
    }

    #[actix_web::test]
    async fn idempotency_concurrent_duplicates_run_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let app = charging_app(ActixIdempotency::memory(), &runs, 0).await;
        let (a, b, c, d, e) = tokio::join!(
            call(&app, post("x")),
            call(&app, post("x")),
            call(&app, post("x")),
            call(&app, post("x")),
            call(&app, post("x")),
        );
        let answers = [a, b, c, d, e];
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(answers.iter().all(|(status, _, body)| *status == StatusCode::CREATED && body == "charged x"));
        assert_eq!(answers.iter().filter(|(_, replayed, _)| *replayed).count(), 4);
    }

    #[actix_web::test]
    async fn idempotency_server_error_releases_the_key_and_bodies_are_bounded() {
        let runs = Arc::new(AtomicUsize::new(0));
        let app = charging_app(ActixIdempotency::new(IdempotencyLayer::memory().max_body(16)), &runs, 1).await;
        assert_eq!(call(&app, post("a")).await, (StatusCode::INTERNAL_SERVER_ERROR, false, "failed run 1".into()));
        assert_eq!(call(&app, post("a")).await, (StatusCode::CREATED, false, "charged a".into()));
        assert_eq!(call(&app, post("a")).await, (StatusCode::CREATED, true, "charged a".into()));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let (status, _, _) = call(&app, post("this body is longer than sixteen bytes")).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Without a key (and unsigned, so not a delivery) nothing is buffered or keyed: a
        // large body passes, and a body naming a job is data, run every time.
        for body in ["this body is longer than sixteen bytes", r#"{"job_id":"j"}"#, r#"{"job_id":"j"}"#] {
            let request = test::TestRequest::post().uri("/charge").set_payload(body);
            assert_eq!(call(&app, request).await, (StatusCode::CREATED, false, format!("charged {body}")));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 5);
    }

    #[actix_web::test]
    async fn rate_limit_sliding_window_admits_three_of_five() {
        let limits = RateLimitLayer::new()
            .rule(Rule::new(
                "per_key",
                Scope::header("x-api-key"),
                Algorithm::sliding_window(3, Duration::from_secs(60)),
            ))
            .pace_headers(true);
        let limit = ActixRateLimit::new(limits);
        let app = test::init_service(
            App::new().wrap(limit.clone()).route("/", web::get().to(|| async { HttpResponse::Ok().body("ok") })),
        )
        .await;
        let mut statuses = Vec::new();
        for i in 0..5u64 {
            let request = test::TestRequest::get().uri("/").insert_header(("x-api-key", "alice")).to_request();
            let response = test::call_service(&app, request).await;
            statuses.push(response.status());
            let headers = response.headers().clone();
            assert_eq!(header(&headers, "ratelimit-limit"), "3");
            assert_eq!(header(&headers, "x-ratelimit-limit"), "3");
            assert_eq!(header(&headers, "ratelimit-remaining"), (3u64.saturating_sub(i + 1)).to_string().as_str());
            assert!(headers.contains_key("ratelimit-reset"));
            assert!(headers.contains_key("x-ezthrottle-rps"));
            let body = test::read_body(response).await;
            if i < 3 {
                assert_eq!(body, "ok");
                assert!(!headers.contains_key("retry-after"));
            } else {
                let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
                assert_eq!(json["error"], "rate limit exceeded");
                assert_eq!(json["limit"], "per_key");
                assert!(json["retry_after"].as_u64().is_some_and(|s| (1..=60).contains(&s)));
                assert_eq!(header(&headers, "content-type"), "application/json");
                assert!(headers.contains_key("retry-after"));
            }
        }
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 3);
        assert_eq!(&statuses[3..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
        // Another key has its own window.
        let other = test::TestRequest::get().uri("/").insert_header(("x-api-key", "bob")).to_request();
        assert_eq!(test::call_service(&app, other).await.status(), StatusCode::OK);
        let metrics = limit.metrics();
        assert_eq!((metrics.allowed, metrics.refused), (4, 2));
    }

    #[actix_web::test]
    async fn rate_limit_client_ip_uses_the_peer_address() {
        let limits = RateLimitLayer::new().rule(Rule::new(
            "per_ip",
            Scope::client_ip(),
            Algorithm::sliding_window(1, Duration::from_secs(60)),
        ));
        let app = test::init_service(
            App::new()
                .wrap(ActixRateLimit::new(limits))
                .route("/", web::get().to(|| async { HttpResponse::Ok().finish() })),
        )
        .await;
        let from = |ip: &str| test::TestRequest::get().uri("/").peer_addr(ip.parse().expect("addr")).to_request();
        assert_eq!(test::call_service(&app, from("10.0.0.1:1000")).await.status(), StatusCode::OK);
        assert_eq!(test::call_service(&app, from("10.0.0.1:2000")).await.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(test::call_service(&app, from("10.0.0.2:1000")).await.status(), StatusCode::OK);
    }

    #[actix_web::test]
    async fn rate_limit_hostile_keys_and_addresses_get_no_way_around_the_limit() {
        let limits = RateLimitLayer::new()
            .rule(Rule::new(
                "per_key",
                Scope::header("x-api-key"),
                Algorithm::sliding_window(1, Duration::from_secs(60)),
            ))
            .rule(Rule::new("per_ip", Scope::client_ip(), Algorithm::sliding_window(2, Duration::from_secs(60))));
        let app = test::init_service(
            App::new()
                .wrap(ActixRateLimit::new(limits))
                .route("/", web::get().to(|| async { HttpResponse::Ok().finish() })),
        )
        .await;
        let status = |peer: &str, key: Option<&[u8]>| {
            let mut request = test::TestRequest::get().uri("/").peer_addr(peer.parse().expect("addr"));
            if let Some(key) = key {
                request = request.insert_header((
                    "x-api-key",
                    actix_web::http::header::HeaderValue::from_bytes(key).expect("header value"),
                ));
            }
            let app = &app;
            async move { test::call_service(app, request.to_request()).await.status() }
        };
        // Without a key: the shared bucket; the text `anonymous` is a key of its own.
        assert_eq!(status("10.0.0.1:1", None).await, StatusCode::OK);
        assert_eq!(status("10.0.0.2:1", None).await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status("10.0.0.3:1", Some(b"anonymous")).await, StatusCode::OK);
        // A key that is not text is counted like any other, never a 5xx.
        assert_eq!(status("10.0.0.4:1", Some(b"\xffkey\x80")).await, StatusCode::OK);
        assert_eq!(status("10.0.0.5:1", Some(b"\xffkey\x80")).await, StatusCode::TOO_MANY_REQUESTS);
        // One client spelling its address as IPv4-mapped IPv6 shares its IPv4 bucket.
        assert_eq!(status("[::ffff:10.0.0.9]:1", Some(b"k1")).await, StatusCode::OK);
        assert_eq!(status("10.0.0.9:2", Some(b"k2")).await, StatusCode::OK);
        assert_eq!(status("[::ffff:10.0.0.9]:3", Some(b"k3")).await, StatusCode::TOO_MANY_REQUESTS);
    }

    #[actix_web::test]
    async fn rate_limit_store_failure_fails_closed_or_open() {
        use ezthrottle_tower::rate_limit::RedisRateLimitStore;

        // Nothing listens on port 1 of the loopback: every check fails.
        let layer = |mode| {
            RateLimitLayer::with_store(RedisRateLimitStore::open("redis://127.0.0.1:1/").expect("url"))
                .rule(Rule::new("global", Scope::global(), Algorithm::sliding_window(10, Duration::from_secs(60))))
                .fail_mode(mode)
        };
        let closed = ActixRateLimit::new(layer(FailMode::Closed));
        let app = test::init_service(
            App::new().wrap(closed.clone()).route("/", web::get().to(|| async { HttpResponse::Ok().body("ok") })),
        )
        .await;
        let response = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(response.headers(), "retry-after"), "1");
        let json: serde_json::Value = serde_json::from_slice(&test::read_body(response).await).expect("json");
        assert_eq!(json["error"], "rate limiter unavailable");
        assert_eq!(closed.metrics().store_errors, 1);

        let app = test::init_service(
            App::new()
                .wrap(ActixRateLimit::new(layer(FailMode::Open)))
                .route("/", web::get().to(|| async { HttpResponse::Ok().body("ok") })),
        )
        .await;
        let response = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("ratelimit-limit").is_none());
    }
}
