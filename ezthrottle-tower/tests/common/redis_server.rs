//! A real `redis-server` for tests, shared by the test binaries that need one.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// A `redis-server` on a free loopback port (no persistence), stopped when dropped.
pub(crate) struct RedisServer {
    pub(crate) url: String,
    child: tokio::process::Child,
}

impl RedisServer {
    /// Starts one and waits for its "Ready to accept connections" log line (at most 10 s).
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
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { url: format!("redis://127.0.0.1:{port}"), child }
    }

    /// Kills it (to test what happens when Redis goes away).
    #[allow(dead_code)] // Not every test binary kills its server.
    pub(crate) async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}
