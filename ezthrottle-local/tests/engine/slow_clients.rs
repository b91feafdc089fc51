//! The engine's HTTP server against slow and numerous clients: header and body read
//! timeouts, the connection limit.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::support::*;

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nhost: engine\r\n\r\n";

/// Reads what the server sends until it closes the connection (bounded by [`DEADLINE`]).
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(DEADLINE, stream.read(&mut buf)).await.expect("the server closes the connection") {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one whole HTTP/1.1 answer with a `content-length`, within `within`.
async fn read_answer(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .and_then(|length| length.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return Some(text);
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

async fn health(stream: &mut TcpStream, within: Duration) -> Option<String> {
    stream.write_all(HEALTH).await.ok()?;
    read_answer(stream, within).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_half_a_header_is_disconnected_after_the_header_timeout() {
    let (engine, _api) = start(fast_engine().header_read_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(engine.addr()).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"GET /health HTTP/1.1\r\nhost: eng").await.unwrap();
    let answered = read_until_closed(&mut stream).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "closed after {waited:?}, before the timeout");
    assert!(waited < Duration::from_secs(5), "closed only after {waited:?}");
    assert!(!String::from_utf8_lossy(&answered).contains("200 OK"), "{answered:?}");

    // A connection that sends nothing is closed too.
    let mut silent = TcpStream::connect(engine.addr()).await.unwrap();
    let started = Instant::now();
    assert!(read_until_closed(&mut silent).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250), "closed after {:?}", started.elapsed());

    // A complete request is served as usual; the idle keep-alive connection after it is
    // closed once the next head has not come within the timeout.
    let mut stream = TcpStream::connect(engine.addr()).await.unwrap();
    let answer = health(&mut stream, DEADLINE).await.expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let idle = Instant::now();
    assert!(read_until_closed(&mut stream).await.is_empty());
    assert!(idle.elapsed() >= Duration::from_millis(250), "closed after {:?}", idle.elapsed());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_gets_408_naming_the_body_timeout() {
    let (engine, _api) = start(fast_engine().body_read_timeout(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(engine.addr()).await.unwrap();
    let head = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nhost: engine\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"url\": \"ht"
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut stream, DEADLINE).await.expect("an answer");
    assert!(started.elapsed() >= Duration::from_millis(250), "answered before the timeout: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body read timeout"), "{answer}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_limit_new_connections_wait_while_open_ones_work() {
    let (engine, _api) = start(fast_engine().max_connections(2)).await;
    let mut first = TcpStream::connect(engine.addr()).await.unwrap();
    let mut second = TcpStream::connect(engine.addr()).await.unwrap();
    assert!(health(&mut first, DEADLINE).await.is_some());
    assert!(health(&mut second, DEADLINE).await.is_some());

    // The third connects (the kernel's backlog) but is not served while two are open.
    let mut third = TcpStream::connect(engine.addr()).await.unwrap();
    assert_eq!(health(&mut third, Duration::from_millis(500)).await, None, "served beyond the limit");
    let again = health(&mut first, DEADLINE).await.expect("an open connection still works");
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");

    // Once one closes, the waiting one is served.
    drop(first);
    let answer = read_answer(&mut third, DEADLINE).await.expect("served once a slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(second);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_open_request_finish_and_closes_idle_connections() {
    let target = Server::start().await;
    let (engine, _api) = start(fast_engine()).await;
    let addr = engine.addr();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(health(&mut idle, DEADLINE).await.is_some());

    let body = serde_json::json!({"url": target.url("/ok")}).to_string();
    let (first, rest) = body.split_at(10);
    let mut open = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nhost: engine\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    open.write_all(head.as_bytes()).await.unwrap();
    // `100 Continue`: the handler is reading the body, the request is in progress.
    let mut buf = [0u8; 64];
    let n = timeout(DEADLINE, open.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 100"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    open.write_all(first.as_bytes()).await.unwrap();
    let shutdown = tokio::spawn(engine.shutdown());
    // The idle connection is closed at once; the open request keeps the server running.
    assert!(read_until_closed(&mut idle).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!shutdown.is_finished(), "shutdown did not wait for the open request");
    open.write_all(rest.as_bytes()).await.unwrap();
    // Answered, not dropped: with the drain's 503 (admission stopped) and its Retry-After.
    let answer = read_answer(&mut open, DEADLINE).await.expect("the open request is answered");
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("retry-after: 5"), "{answer}");
    timeout(DEADLINE, shutdown).await.expect("shutdown ends").unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
}
