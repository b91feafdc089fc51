use std::convert::Infallible;

use bytes::Bytes;
use ezthrottle_tower::rate_limit::{RateLimit, RateLimitResponseBody, RateLimitStore};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};

pub(crate) type Inner =
    tower::util::ServiceFn<fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>>;

fn ok(_: Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
}

/// An inner service that answers 200 "ok", wrapped in `layer`.
pub(crate) fn limited<St: RateLimitStore>(
    layer: &ezthrottle_tower::rate_limit::RateLimitLayer<St>,
) -> RateLimit<Inner, St> {
    layer.layer(service_fn(ok as fn(_) -> _))
}

pub(crate) fn request(path: &str, user: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::get(path);
    if let Some(user) = user {
        builder = builder.header("x-api-key", user);
    }
    builder.body(Full::new(Bytes::new())).expect("request")
}

pub(crate) async fn send<St: RateLimitStore>(
    service: &RateLimit<Inner, St>,
    request: Request<Full<Bytes>>,
) -> Response<RateLimitResponseBody<Full<Bytes>>> {
    match service.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Sends `count` requests at once (each on its own task) and counts the 200s.
pub(crate) async fn burst<St: RateLimitStore>(service: &RateLimit<Inner, St>, count: usize, user: &str) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let mut service = service.clone();
        let request = request("/", Some(user));
        tasks.spawn(async move {
            let ready = service.ready().await.map_err(|never: Infallible| match never {})?;
            ready.call(request).await.map(|response| response.status())
        });
    }
    let mut admitted = 0;
    while let Some(status) = tasks.join_next().await {
        match status.expect("task") {
            Ok(StatusCode::OK) => admitted += 1,
            Ok(StatusCode::TOO_MANY_REQUESTS) => {}
            Ok(other) => panic!("unexpected status {other}"),
            Err(never) => match never {},
        }
    }
    admitted
}

pub(crate) async fn body_json(response: Response<RateLimitResponseBody<Full<Bytes>>>) -> serde_json::Value {
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&bytes).expect("json")
}

#[cfg(feature = "redis")]
pub(crate) use ezthrottle_test_support::RedisServer;
