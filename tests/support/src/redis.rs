//! A real `redis-server` for the tests and benches that need one.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// Set (to anything) where Redis must be there, as in CI: a missing `redis-server` then
/// fails the test instead of skipping it.
pub const REQUIRE_REDIS_ENV: &str = "EZTHROTTLE_REQUIRE_REDIS";

/// How long `redis-server` may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A `redis-server` on a free loopback port (no persistence), killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    /// `redis://127.0.0.1:port`.
    pub url: String,
    child: tokio::process::Child,
}

impl RedisServer {
    /// Starts one, or answers `None` (saying so on stderr) when `redis-server` is not
    /// installed and [`REQUIRE_REDIS_ENV`] is not set: the caller skips its test.
    ///
    /// # Panics
    /// If it is installed but does not start within 10 s, or exits first; or if it is
    /// missing while [`REQUIRE_REDIS_ENV`] is set.
    pub async fn start_or_skip() -> Option<Self> {
        match Self::try_start().await {
            Ok(server) => Some(server),
            Err(Missing(why)) if std::env::var_os(REQUIRE_REDIS_ENV).is_none() => {
                eprintln!("skipped: {why} (set {REQUIRE_REDIS_ENV} to fail instead)");
                None
            }
            Err(Missing(why)) => panic!("{why}, and {REQUIRE_REDIS_ENV} is set"),
        }
    }

    /// Starts one.
    ///
    /// # Panics
    /// If `redis-server` is not installed, or does not start within 10 s.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(server) => server,
            Err(Missing(why)) => panic!("{why}"),
        }
    }

    async fn try_start() -> Result<Self, Missing> {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
            listener.local_addr().expect("the listener's address").port()
        };
        let spawned = tokio::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Missing(
                    "redis-server is not installed (apt-get install redis-server, brew install redis)".to_owned(),
                ));
            }
            Err(error) => panic!("redis-server did not start: {error}"),
        };
        let stdout = child.stdout.take().expect("redis-server's stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Ready to accept connections") {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(READY_WITHIN, ready).await {
            Ok(true) => {}
            Ok(false) => panic!("redis-server on port {port} exited before it was ready"),
            Err(_) => panic!("redis-server on port {port} was not ready within {READY_WITHIN:?}"),
        }
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { url: format!("redis://127.0.0.1:{port}"), child })
    }

    /// Kills it (to test what happens when Redis goes away).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// `redis-server` is not there: why, for the message.
struct Missing(String);
