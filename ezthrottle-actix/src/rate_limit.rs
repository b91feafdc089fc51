//! [`ActixRateLimit`]: the rules of a [`RateLimitLayer`] as actix-web middleware.

use std::rc::Rc;

use actix_web::Error;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};

use ezthrottle_tower::rate_limit::{
    MemoryRateLimitStore, RateLimitLayer, RateLimitMetrics, RateLimitStore, RequestHead,
};

use super::{bad_request, copy_headers, own_answer, request_parts};

/// actix-web middleware rate-limiting requests by the rules of a [`RateLimitLayer`], with
/// the same answers as the tower service: `RateLimit-*` / `X-RateLimit-*` headers (per the
/// layer's [`HeaderStyle`](ezthrottle_tower::rate_limit::HeaderStyle)) and the optional pace headers
/// on every answer; a refusal is `429` with `Retry-After` and
/// `{"error":"rate limit exceeded","limit":"<rule>","retry_after":<s>}`; a store failure
/// lets the request through ([`FailMode::Open`](ezthrottle_tower::rate_limit::FailMode::Open)) or
/// answers `503` ([`FailMode::Closed`](ezthrottle_tower::rate_limit::FailMode::Closed)).
///
/// [`Scope::client_ip`](ezthrottle_tower::rate_limit::Scope::client_ip) reads the connection's peer
/// address (`HttpRequest::peer_addr`).
///
/// ```
/// use std::time::Duration;
/// use actix_web::{App, HttpResponse, web};
/// use ezthrottle_actix::ActixRateLimit;
/// use ezthrottle_tower::rate_limit::{Algorithm, RateLimitLayer, Rule, Scope};
///
/// let limits = RateLimitLayer::new()
///     .rule(Rule::new("per_ip", Scope::client_ip(), Algorithm::sliding_window(100, Duration::from_secs(60))))
///     .pace_headers(true);
/// let app = App::new()
///     .wrap(ActixRateLimit::new(limits))
///     .route("/", web::get().to(|| async { HttpResponse::Ok().body("hello") }));
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ActixRateLimit<St = MemoryRateLimitStore> {
    layer: RateLimitLayer<St>,
}

impl<St: RateLimitStore> ActixRateLimit<St> {
    /// Middleware applying `layer`'s rules, store and answer settings (a layer built with
    /// [`RateLimitLayer::with_store`] shares its store, e.g. Redis, across replicas).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ezthrottle_actix::ActixRateLimit;
    /// use ezthrottle_tower::rate_limit::{Algorithm, MemoryRateLimitStore, RateLimitLayer, Rule, Scope};
    ///
    /// let layer = RateLimitLayer::with_store(MemoryRateLimitStore::new())
    ///     .rule(Rule::new("global", Scope::global(), Algorithm::token_bucket(50.0, 100)));
    /// let limit = ActixRateLimit::new(layer);
    /// # let _ = limit;
    /// ```
    pub fn new(layer: RateLimitLayer<St>) -> Self {
        Self { layer }
    }

    /// The counters so far (shared with the layer it was made from and its clones).
    ///
    /// ```
    /// use ezthrottle_actix::ActixRateLimit;
    /// use ezthrottle_tower::rate_limit::RateLimitLayer;
    ///
    /// let limit = ActixRateLimit::new(RateLimitLayer::new());
    /// assert_eq!(limit.metrics().refused, 0);
    /// ```
    #[must_use]
    pub fn metrics(&self) -> RateLimitMetrics {
        self.layer.metrics()
    }
}

impl<St: RateLimitStore> From<RateLimitLayer<St>> for ActixRateLimit<St> {
    /// The same as [`ActixRateLimit::new`].
    ///
    /// ```
    /// use ezthrottle_actix::ActixRateLimit;
    /// use ezthrottle_tower::rate_limit::RateLimitLayer;
    ///
    /// let limit: ActixRateLimit = RateLimitLayer::new().into();
    /// # let _ = limit;
    /// ```
    fn from(layer: RateLimitLayer<St>) -> Self {
        Self::new(layer)
    }
}

super::middleware! {
    ActixRateLimit<St: RateLimitStore> => RateLimitMiddleware,
    state: Rc<RateLimitLayer<St>> = |transform| Rc::new(transform.layer.clone()),
    handle,
}

/// The service of [`ActixRateLimit`] (made by actix when the app starts).
///
/// ```
/// use actix_web::{App, HttpResponse, test, web};
/// use ezthrottle_actix::ActixRateLimit;
/// use ezthrottle_tower::rate_limit::RateLimitLayer;
///
/// # actix_web::rt::System::new().block_on(async {
/// let app = test::init_service(
///     App::new().wrap(ActixRateLimit::new(RateLimitLayer::new())).route("/", web::get().to(|| async { HttpResponse::Ok().finish() })),
/// )
/// .await; // `app` runs every request through a `RateLimitMiddleware`
/// # let _ = app;
/// # });
/// ```
pub struct RateLimitMiddleware<S, St = MemoryRateLimitStore> {
    service: Rc<S>,
    state: Rc<RateLimitLayer<St>>,
}

async fn handle<S, B, St>(
    service: Rc<S>,
    layer: Rc<RateLimitLayer<St>>,
    req: ServiceRequest,
) -> Result<ServiceResponse<EitherBody<B>>, Error>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    St: RateLimitStore,
{
    let Some(parts) = request_parts(&req) else {
        return Ok(req.into_response(bad_request()).map_into_right_body());
    };
    let head = http::Request::from_parts(parts, ());
    let checks = layer.config().checks(&RequestHead::of(&head));
    let scopes = layer.config().audit_scopes(&checks);
    let span = layer.config().decision_span();
    let decided = tracing::Instrument::instrument(layer.store().check(checks), span.clone()).await;
    let tightest = match layer.config().verdict(decided, scopes.as_deref(), &span) {
        Ok(tightest) => tightest,
        Err(refusal) => {
            let (status, headers, body) = *refusal;
            return Ok(req.into_response(own_answer(status, &headers, body)).map_into_right_body());
        }
    };
    let mut response = service.call(req).await?;
    let mut headers = http::HeaderMap::new();
    layer.config().write_headers(tightest.as_ref(), &mut headers);
    copy_headers(&headers, response.headers_mut());
    Ok(response.map_into_left_body())
}
