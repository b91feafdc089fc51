//! The built-in upstream: a small httpbin-compatible server the scenarios call when no
//! `UPSTREAM_URL` is configured.
//!
//! | route | method | answer |
//! |---|---|---|
//! | `/status/{code}` | any | that status (200-599), empty body |
//! | `/delay/{seconds}` | any | after `seconds` (fractional allowed, at most 10), the `/anything` JSON |
//! | `/get` | GET | `{"args","headers","origin","url"}` |
//! | `/post`, `/put`, `/patch`, `/delete` | that method | `{"args","data","files","form","headers","json","origin","url"}` |
//! | `/anything`, `/anything/{*path}` | any | the same, plus `"method"` |
//! | `/headers` | GET | `{"headers"}` |
//! | `/ip` | GET | `{"origin"}` |
//! | `/uuid` | GET | `{"uuid"}` |
//!
//! Query arguments appear under `args` (a repeated name as a list), as httpbin shows them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Path, Query, Request};
use axum::http::{Extensions, HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, patch, post, put};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The longest `/delay/{n}` waits, as httpbin.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// The httpbin-compatible routes.
pub fn router() -> Router {
    Router::new()
        .route("/status/{code}", any(status))
        .route("/delay/{seconds}", any(delay))
        .route("/get", get(echo))
        .route("/post", post(echo))
        .route("/put", put(echo))
        .route("/patch", patch(echo))
        .route("/delete", delete(echo))
        .route("/anything", any(echo))
        .route("/anything/{*path}", any(echo))
        .route("/headers", get(headers))
        .route("/ip", get(ip))
        .route("/uuid", get(|| async { json_response(json!({ "uuid": uuid::Uuid::new_v4().to_string() })) }))
}

/// A running built-in upstream.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Serves [`router`] on `listener`.
    ///
    /// # Errors
    ///
    /// The listener has no local address.
    pub fn serve(listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let service = router().into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, service).with_graceful_shutdown(async {
                let _ = stop.await;
            });
            if let Err(error) = served.await {
                tracing::error!(%error, "the built-in upstream stopped");
            }
        });
        Ok(Self { addr, shutdown: Some(shutdown), task })
    }

    /// Binds `127.0.0.1` on a free port and serves.
    ///
    /// # Errors
    ///
    /// The port cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::serve(TcpListener::bind(("127.0.0.1", 0)).await?)
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (waiting at most 5 s for requests in flight).
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

async fn status(Path(code): Path<String>) -> Response {
    match code.trim().parse::<u16>().ok().filter(|c| (200..=599).contains(c)).map(StatusCode::from_u16) {
        Some(Ok(status)) => status.into_response(),
        _ => (StatusCode::BAD_REQUEST, "Invalid status code").into_response(),
    }
}

async fn delay(Path(seconds): Path<String>, request: Echoed) -> Response {
    let Some(wait) = seconds.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0) else {
        return (StatusCode::BAD_REQUEST, "Invalid delay").into_response();
    };
    tokio::time::sleep(Duration::from_secs_f64(wait).min(MAX_DELAY)).await;
    echo(request).await
}

/// What the echo routes show of a request, as httpbin does.
struct Echoed {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    args: Vec<(String, String)>,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Echoed {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Query(args) = Query::try_from_uri(request.uri()).map_err(IntoResponse::into_response)?;
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let (headers, extensions) = (request.headers().clone(), request.extensions().clone());
        let body = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        Ok(Self { method, uri, headers, extensions, args, body })
    }
}

async fn echo(request: Echoed) -> Response {
    let Echoed { method, uri, headers, extensions, args, body } = request;
    let mut answer = Map::new();
    answer.insert("args".into(), args_object(args));
    answer.insert("headers".into(), headers_object(&headers));
    answer.insert("origin".into(), origin(&extensions).into());
    answer.insert("url".into(), full_url(&headers, &uri).into());
    let path = uri.path();
    if path != "/get" {
        let data = String::from_utf8_lossy(&body).into_owned();
        let parsed = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        answer.insert("data".into(), data.into());
        answer.insert("files".into(), json!({}));
        answer.insert("form".into(), json!({}));
        answer.insert("json".into(), parsed);
    }
    if path == "/anything" || path.starts_with("/anything/") || path.starts_with("/delay/") {
        answer.insert("method".into(), method.as_str().into());
    }
    json_response(Value::Object(answer))
}

async fn headers(headers: HeaderMap) -> Response {
    json_response(json!({ "headers": headers_object(&headers) }))
}

async fn ip(extensions: Extensions) -> Response {
    json_response(json!({ "origin": origin(&extensions) }))
}

fn json_response(value: Value) -> Response {
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn args_object(args: Vec<(String, String)>) -> Value {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in args {
        grouped.entry(name).or_default().push(value);
    }
    let object = grouped
        .into_iter()
        .map(|(name, mut values)| {
            let value = if values.len() == 1 { Value::String(values.remove(0)) } else { json!(values) };
            (name, value)
        })
        .collect();
    Value::Object(object)
}

fn headers_object(headers: &HeaderMap) -> Value {
    let mut object = Map::new();
    for name in headers.keys() {
        let values: Vec<&str> = headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("<non-ascii>")).collect();
        object.insert(title_case(name.as_str()), values.join(",").into());
    }
    Value::Object(object)
}

/// `content-type` as `Content-Type`, as httpbin shows header names.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn origin(extensions: &Extensions) -> String {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string()).unwrap_or_default()
}

fn full_url(headers: &HeaderMap, uri: &Uri) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("http://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_group_repeats() {
        let args =
            vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned()), ("a".to_owned(), "3".to_owned())];
        assert_eq!(args_object(args), json!({"a": ["1", "3"], "b": "2"}));
    }

    #[test]
    fn header_names_are_title_cased() {
        assert_eq!(title_case("content-type"), "Content-Type");
        assert_eq!(title_case("x-ezthrottle-region"), "X-Ezthrottle-Region");
    }
}
