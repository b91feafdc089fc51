//! A scripted, recording HTTP server on 127.0.0.1.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::wait::DEADLINE;

/// The largest request body the server reads (larger ones are recorded empty).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its method.
    pub method: Method,
    /// Its path and query, e.g. `/orders/1?x=2`.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, as received.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// How many requests to this same path (and query) had arrived, this one included:
    /// 1 for the first. Routes that answer differently on a retry read it.
    pub nth: usize,
}

impl Recorded {
    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split_once('?').map_or(self.path.as_str(), |(path, _)| path)
    }

    /// The body as text.
    ///
    /// # Panics
    /// If it is not UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("a UTF-8 body")
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// An answer of the server: status, headers, body, and an optional delay before it.
#[derive(Debug, Clone)]
pub struct Answer {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Option<Duration>,
}

impl Answer {
    /// `status` with an empty body and no content type.
    ///
    /// # Panics
    /// If `status` is not an HTTP status code.
    pub fn status(status: u16) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("an HTTP status code"),
            headers: Vec::new(),
            body: Bytes::new(),
            delay: None,
        }
    }

    /// `status` with a text body (and its content type).
    pub fn text(status: u16, body: &str) -> Self {
        Self::status(status).header("content-type", "text/plain; charset=utf-8").body(body.to_owned())
    }

    /// `status` with a JSON body (and its content type).
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self::status(status).header("content-type", "application/json").body(body.to_string())
    }

    /// The proxy's `200` answer wrapping EZThrottle's `status` and JSON `body`.
    pub fn proxied(status: u16, body: serde_json::Value) -> Self {
        Self::json(
            200,
            serde_json::json!({
                "status": "allowed",
                "breach_status": {"is_breached": false},
                "forwarded_response": {"status_code": status, "headers": {"content-type": "application/json"}, "body": body.to_string()},
            }),
        )
    }

    /// The body, replaced (the content type is left as it is).
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// With one more header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Answered only after `delay`.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    fn into_response(self) -> Response {
        let mut response = Response::new(axum::body::Body::from(self.body));
        *response.status_mut() = self.status;
        for (name, value) in self.headers {
            let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) else {
                return (StatusCode::INTERNAL_SERVER_ERROR, "the test scripted an invalid header").into_response();
            };
            response.headers_mut().append(name, value);
        }
        response
    }
}

type BoxedAnswer = Pin<Box<dyn Future<Output = Answer> + Send>>;
type Responder = dyn Fn(Recorded) -> BoxedAnswer + Send + Sync;

struct Shared {
    responder: Box<Responder>,
    recorded: Mutex<Vec<Recorded>>,
    arrived: Notify,
}

impl Shared {
    fn recorded(&self) -> MutexGuard<'_, Vec<Recorded>> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stops the server when the last handle to it is dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A scripted HTTP server on a free loopback port, recording every request; it stops when
/// the last clone of it is dropped.
///
/// The responder sees each request (with [`Recorded::nth`], so a route can fail its first
/// calls) and picks the [`Answer`].
#[derive(Clone)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its base URL, `http://127.0.0.1:port` (see [`TestServer::url`] for a path on it).
    pub url: String,
    shared: Arc<Shared>,
    _task: Arc<Task>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server answering with `responder`.
    pub async fn start(responder: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Self {
        Self::start_async(move |request| std::future::ready(responder(&request))).await
    }

    /// Starts a server whose `responder` may wait (on a gate, a channel) before answering.
    pub async fn start_async<F, Fut>(responder: F) -> Self
    where
        F: Fn(Recorded) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        Self::serve(listener, Box::new(move |request| Box::pin(responder(request)))).await
    }

    /// A server answering every request with `answer()`.
    pub async fn always(answer: impl Fn() -> Answer + Send + Sync + 'static) -> Self {
        Self::start(move |_| answer()).await
    }

    /// Starts a server on `addr`, a port picked earlier (say, for a receiver down at first).
    ///
    /// # Panics
    /// If `addr` cannot be bound again.
    pub async fn start_on(addr: SocketAddr, responder: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the port again");
        Self::serve(listener, Box::new(move |request| Box::pin(std::future::ready(responder(&request))))).await
    }

    async fn serve(listener: tokio::net::TcpListener, responder: Box<Responder>) -> Self {
        let addr = listener.local_addr().expect("the listener's address");
        let shared = Arc::new(Shared { responder, recorded: Mutex::new(Vec::new()), arrived: Notify::new() });
        let app = axum::Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, url: format!("http://{addr}"), shared, _task: Arc::new(Task(task)) }
    }

    /// The URL of `path` on this server (`path` starts with `/`, or is empty).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `127.0.0.1:port`: its host as EZThrottle's lanes and circuit breakers key it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded().clone()
    }

    /// The requests whose path starts with `prefix`.
    pub fn hits(&self, prefix: &str) -> Vec<Recorded> {
        self.shared.recorded().iter().filter(|request| request.path.starts_with(prefix)).cloned().collect()
    }

    /// The one request received.
    ///
    /// # Panics
    /// Unless exactly one arrived.
    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request, got {requests:#?}");
        requests.into_iter().next().expect("one request")
    }

    /// Waits until `done` holds for the requests received; answers them.
    ///
    /// # Panics
    /// After [`DEADLINE`], naming `what` and listing what arrived.
    pub async fn wait(&self, what: &str, done: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let arrived = self.shared.arrived.notified();
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "timed out waiting for {what}; received {requests:#?}"
            );
        }
    }

    /// Waits for the first request matching `wanted`.
    pub async fn wait_for(&self, wanted: impl Fn(&Recorded) -> bool) -> Recorded {
        let requests = self.wait("a matching request", |requests| requests.iter().any(&wanted)).await;
        requests.into_iter().find(|request| wanted(request)).expect("a matching request")
    }

    /// Waits until at least `count` requests whose path starts with `prefix` arrived.
    pub async fn wait_hits(&self, prefix: &str, count: usize) -> Vec<Recorded> {
        let what = format!("{count} requests to {prefix}");
        self.wait(&what, |requests| requests.iter().filter(|r| r.path.starts_with(prefix)).count() >= count).await;
        self.hits(prefix)
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let recorded = {
        let mut log = shared.recorded();
        let nth = log.iter().filter(|earlier| earlier.path == path).count() + 1;
        let recorded = Recorded { method: parts.method, path, headers: parts.headers, body, at: Instant::now(), nth };
        log.push(recorded.clone());
        recorded
    };
    shared.arrived.notify_waiters();
    let answer = (shared.responder)(recorded).await;
    if let Some(delay) = answer.delay {
        tokio::time::sleep(delay).await;
    }
    answer.into_response()
}

/// A fixed route table: what a test binary's target answers, by path.
pub trait Routes: Send + Sync + 'static {
    /// The answer to `request`.
    fn answer(request: &Recorded) -> Answer;
}

/// A [`TestServer`] answering with the route table `R` (it derefs to the server).
pub struct RoutedServer<R> {
    server: TestServer,
    routes: std::marker::PhantomData<fn() -> R>,
}

impl<R: Routes> RoutedServer<R> {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        Self { server: TestServer::start(R::answer).await, routes: std::marker::PhantomData }
    }

    /// Starts one on `addr`, a port picked earlier (say, for a receiver down at first).
    pub async fn start_on(addr: SocketAddr) -> Self {
        Self { server: TestServer::start_on(addr, R::answer).await, routes: std::marker::PhantomData }
    }
}

impl<R> Clone for RoutedServer<R> {
    fn clone(&self) -> Self {
        Self { server: self.server.clone(), routes: std::marker::PhantomData }
    }
}

impl<R> std::fmt::Debug for RoutedServer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.server.fmt(f)
    }
}

impl<R> std::ops::Deref for RoutedServer<R> {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}
