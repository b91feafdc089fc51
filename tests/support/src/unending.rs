//! A request whose body never ends, over a raw loopback connection: what proves a server
//! answered before reading the body.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long [`post_unending`] waits for an answer: a refusal before the body comes at
/// once, a server waiting for the body never answers.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// POSTs to `http://{addr}{path}` with `headers` (raw value bytes, so not UTF-8 too), a
/// chunked body of one chunk and never its end; answers the status and body of the
/// response.
///
/// # Panics
/// If no whole response (with a `content-length`) comes within [`ANSWER_WITHIN`].
pub async fn post_unending(addr: SocketAddr, path: &str, headers: &[(&str, &[u8])]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n").into_bytes();
    for (name, value) in headers {
        head.extend_from_slice(format!("{name}: ").as_bytes());
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n5\r\n{\"job\r\n");
    stream.write_all(&head).await.expect("write");
    match tokio::time::timeout(ANSWER_WITHIN, read_response(&mut stream)).await {
        Ok(answer) => answer,
        Err(_) => panic!("no answer within {ANSWER_WITHIN:?}: the server waits for the body"),
    }
}

/// Reads one HTTP/1.1 response with a `content-length`.
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
