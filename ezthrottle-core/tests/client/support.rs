//! A recording HTTP server on 127.0.0.1 that answers like the proxy, EZThrottle or a target.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use ezthrottle_core::EZThrottle;

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Recorded {
    pub(crate) fn body_text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("utf-8 body")
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// An answer: status, headers, body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
    pub(crate) delay: Option<Duration>,
}

impl Answer {
    pub(crate) fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("status"),
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
            delay: None,
        }
    }

    pub(crate) fn text(status: u16, body: &str) -> Self {
        Self { status: StatusCode::from_u16(status).expect("status"), headers: vec![], body: body.into(), delay: None }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The proxy's 200 answer wrapping EZThrottle's `status` and `body`.
    pub(crate) fn proxied(status: u16, body: serde_json::Value) -> Self {
        Self::json(
            200,
            serde_json::json!({
                "status": "allowed",
                "breach_status": {"is_breached": false},
                "forwarded_response": {"status_code": status, "headers": {"content-type": "application/json"}, "body": body.to_string()},
            }),
        )
    }
}

type Responder = dyn Fn(&Recorded) -> Answer + Send + Sync;

struct Shared {
    responder: Box<Responder>,
    recorded: Mutex<Vec<Recorded>>,
}

/// A server started on a free loopback port; stops when dropped.
pub(crate) struct TestServer {
    pub(crate) url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub(crate) async fn start(responder: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared { responder: Box::new(responder), recorded: Mutex::new(Vec::new()) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { url, shared, task }
    }

    /// A server that answers every request the same way.
    pub(crate) async fn always(answer: impl Fn() -> Answer + Send + Sync + 'static) -> Self {
        Self::start(move |_| answer()).await
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().expect("lock").clone()
    }

    pub(crate) fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request, got {requests:#?}");
        requests.into_iter().next().expect("one request")
    }

    /// A cloud client whose proxy is this server.
    pub(crate) fn cloud_client(&self) -> EZThrottle {
        EZThrottle::builder().api_key("ck_test_key").tracktags_url(&self.url).build().expect("client")
    }

    /// A direct-mode client to this server.
    pub(crate) fn direct_client(&self) -> EZThrottle {
        EZThrottle::builder().direct(&self.url).api_key("ck_test_key").build().expect("client")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let recorded = Recorded {
        method: parts.method,
        path: parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    let answer = (shared.responder)(&recorded);
    shared.recorded.lock().expect("lock").push(recorded);
    if let Some(delay) = answer.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = (answer.status, answer.body).into_response();
    for (name, value) in answer.headers {
        response.headers_mut().insert(name, value.parse().expect("header value"));
    }
    response
}

/// A loopback URL where nothing listens.
pub(crate) async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    url
}

/// The receipt EZThrottle answers a new job with.
pub(crate) fn receipt(job_id: &str) -> serde_json::Value {
    serde_json::json!({"job_id": job_id, "status": "queued", "idempotent_key": format!("key_{job_id}")})
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64
}
