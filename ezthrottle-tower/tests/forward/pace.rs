//! `PaceLayer` on a server: fixed and adaptive pace headers.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use ezthrottle_core::Pace;
use ezthrottle_tower::PaceLayer;
use http::{Request, Response};
use http_body_util::Full;
use tokio::sync::Semaphore;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_api_announces_a_fixed_pace() {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/own", get(|| async { ([("x-ezthrottle-rps", "1")], "own") }))
        .layer(PaceLayer::fixed(Pace::new(12.5, 3).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let response = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(response.headers()["x-ezthrottle-rps"], "12.5");
    assert_eq!(response.headers()["x-ezthrottle-max-concurrent"], "3");
    assert_eq!(response.text().await.unwrap(), "ok");
    let own = reqwest::get(format!("http://{addr}/own")).await.unwrap();
    assert_eq!(own.headers()["x-ezthrottle-rps"], "1", "a header the handler set is kept");
    assert_eq!(own.headers()["x-ezthrottle-max-concurrent"], "3");
    let missing = reqwest::get(format!("http://{addr}/missing")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-ezthrottle-rps"], "12.5", "every response carries the pace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adaptive_pace_follows_the_requests_in_flight() {
    let gate = Arc::new(Semaphore::new(0));
    let layer = PaceLayer::adaptive(Pace::new(20.0, 4).unwrap());
    let handler = {
        let gate = Arc::clone(&gate);
        move |_: Request<Full<Bytes>>| {
            let gate = Arc::clone(&gate);
            async move {
                gate.acquire().await.unwrap().forget();
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
            }
        }
    };
    let service = ServiceBuilder::new().layer(layer.clone()).service_fn(handler);
    let pace_of = |response: &Response<Full<Bytes>>| {
        let value = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        (value("x-ezthrottle-rps"), value("x-ezthrottle-max-concurrent"))
    };

    // Idle: the whole room.
    gate.add_permits(1);
    let idle = service.clone().oneshot(Request::new(Full::default())).await.unwrap();
    assert_eq!(pace_of(&idle), ("20".to_owned(), "4".to_owned()));
    assert_eq!(layer.in_flight(), 0);

    // Three at once: the busiest sees two others.
    let mut calls = Vec::new();
    for _ in 0..3 {
        let mut service = service.clone();
        service.ready().await.unwrap();
        calls.push(tokio::spawn(service.call(Request::new(Full::default()))));
    }
    eventually("three in flight", || layer.in_flight() == 3).await;
    gate.add_permits(3);
    let mut paces = Vec::new();
    for call in calls {
        paces.push(pace_of(&call.await.unwrap().unwrap()));
    }
    assert!(paces.contains(&("10".to_owned(), "2".to_owned())), "{paces:?}");
    assert_eq!(layer.in_flight(), 0);

    // A closure decides from the count.
    let custom = ServiceBuilder::new()
        .layer(PaceLayer::from_fn(|in_flight| Pace::new(in_flight as f64 / 3.0, 7).unwrap_or_default()))
        .service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::default()))
        });
    let response = custom.oneshot(Request::new(Full::default())).await.unwrap();
    assert_eq!(pace_of(&response), ("0.333".to_owned(), "7".to_owned()));
}
