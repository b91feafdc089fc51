#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, BufReader};

pub(crate) const SECRET: &str = "whsec_primary_for_tests";
pub(crate) const OLD_SECRET: &str = "whsec_previous_for_tests";

pub(crate) fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()).expect("i64")
}

pub(crate) fn payload_json(job_id: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!(r#"{{"job_id":"{job_id}","idempotent_key":"{key}","status":"success","metadata":{{}}}}"#),
        None => format!(r#"{{"job_id":"{job_id}","status":"success","metadata":{{}}}}"#),
    }
}

/// A 1 KiB-ish payload.
pub(crate) fn big_payload_json(job_id: &str, size: usize) -> String {
    let pad = "x".repeat(size.saturating_sub(80));
    format!(r#"{{"job_id":"{job_id}","status":"success","metadata":{{"pad":"{pad}"}}}}"#)
}

#[cfg(feature = "axum")]
pub(crate) async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    addr
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client")
}

/// A `redis-server` on a free loopback port, stopped when dropped.
pub(crate) struct RedisServer {
    pub(crate) url: String,
    _child: tokio::process::Child,
}

impl RedisServer {
    pub(crate) async fn start() -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            listener.local_addr().expect("addr").port()
        };
        let mut child = tokio::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = async {
            while let Some(line) = lines.next_line().await.expect("read redis log") {
                if line.contains("Ready to accept connections") {
                    return;
                }
            }
            panic!("redis-server exited before it was ready");
        };
        tokio::time::timeout(Duration::from_secs(10), ready).await.expect("redis-server ready within 10 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { url: format!("redis://127.0.0.1:{port}"), _child: child }
    }
}
