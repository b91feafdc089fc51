//! What proves a refusal came before the body: a request whose body never ends, sent over
//! a raw loopback connection, and a request body that records whether it was polled.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::Request;
use http_body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::util::MapRequestLayer;

/// How long an answer may take: a refusal before the body comes at once, a server waiting
/// for the body never answers.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A request body that sets `polled` the first time anything reads it.
struct Recording {
    inner: Body,
    polled: Arc<AtomicBool>,
}

impl http_body::Body for Recording {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.polled.store(true, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_frame(cx)
    }
}

/// A layer (put it outermost) wrapping each request body in one that records, in `polled`,
/// whether it was read.
pub(crate) fn record_body_reads(
    polled: Arc<AtomicBool>,
) -> MapRequestLayer<impl Fn(Request<Body>) -> Request<Body> + Clone + Send + Sync + 'static> {
    MapRequestLayer::new(move |request: Request<Body>| {
        let polled = Arc::clone(&polled);
        request.map(|inner| Body::new(Recording { inner, polled }))
    })
}

/// POSTs to `http://{addr}{path}` with the signature header `signature` (raw bytes, so
/// not UTF-8 too), a chunked body of one chunk and never its end; answers the status and
/// body of the response. Panics if none comes within [`ANSWER_WITHIN`].
pub(crate) async fn post_unending(addr: SocketAddr, path: &str, signature: Option<&[u8]>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n").into_bytes();
    if let Some(signature) = signature {
        head.extend_from_slice(b"x-ezthrottle-signature: ");
        head.extend_from_slice(signature);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n5\r\n{\"job\r\n");
    stream.write_all(&head).await.expect("write");
    match tokio::time::timeout(ANSWER_WITHIN, read_response(&mut stream)).await {
        Ok(answer) => answer,
        Err(_) => panic!("no answer within {ANSWER_WITHIN:?}: the server waits for the body"),
    }
}

/// Reads one HTTP/1.1 response with a `content-length` (every answer here has one).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.expect("read");
        buffer.extend_from_slice(chunk.get(..read).expect("within the chunk"));
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned()))
                .and_then(|n| n.parse::<usize>().ok())
                .expect("a content-length");
            if body.len() >= length || read == 0 {
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
                return (status, body.to_owned());
            }
        }
        assert!(read > 0, "the connection closed before a whole response: {text:?}");
    }
}

/// The signature headers refused before the body is read, with the answer each gets
/// (the answer a full verification gives): none, malformed, no `v1`, a bad `t`, not UTF-8,
/// and a timestamp outside the tolerance (the generic 401).
pub(crate) fn refused_headers(now: i64) -> Vec<(&'static str, Option<Vec<u8>>, u16, &'static str)> {
    let stale = ezthrottle_core::webhook::sign(super::support::SECRET, now - 1000, b"{\"job");
    vec![
        ("missing", None, 400, "missing X-EZThrottle-Signature header"),
        ("garbage", Some(b"garbage".to_vec()), 400, "malformed X-EZThrottle-Signature header: no v1 signature"),
        ("no v1", Some(format!("t={now}").into_bytes()), 400, "malformed X-EZThrottle-Signature header: no v1"),
        ("no t", Some(b"v1=00".to_vec()), 400, "malformed X-EZThrottle-Signature header: missing or invalid t"),
        ("bad t", Some(b"t=soon,v1=00".to_vec()), 400, "malformed X-EZThrottle-Signature header: missing or invalid t"),
        ("not utf-8", Some(b"t=1,v1=\xff\xfe".to_vec()), 400, "malformed X-EZThrottle-Signature header: the value"),
        ("stale", Some(stale.into_bytes()), 401, "invalid webhook signature"),
    ]
}

/// Posts each of [`refused_headers`] with a body that never ends to `addr`; each gets its
/// answer and the body is never polled.
pub(crate) async fn assert_refused_unread(addr: SocketAddr, path: &str, polled: &AtomicBool, now: i64) {
    for (name, signature, status, text) in refused_headers(now) {
        let (got, body) = post_unending(addr, path, signature.as_deref()).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(body.starts_with(text), "{name}: {body}");
        assert!(!polled.load(Ordering::SeqCst), "{name}: the body was read before the refusal");
    }
}
