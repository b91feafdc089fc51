//! Loopback listeners.

use std::net::SocketAddr;
use std::sync::OnceLock;

use tokio::net::TcpSocket;

/// Serves `app` on a free port of 127.0.0.1 until the runtime ends; answers its address.
///
/// # Panics
/// If no loopback port can be bound.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("the listener's address");
    tokio::spawn(async move {
        // The server ends with the test's runtime; an accept error ends it early, and the
        // test then fails on a refused connection, which names the cause.
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// [`serve`], with each request's peer address there for `ConnectInfo<SocketAddr>`.
///
/// # Panics
/// If no loopback port can be bound.
pub async fn serve_with_peer_addr(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("the listener's address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    addr
}

/// A loopback address that refuses every connection: a port bound and never listened on,
/// held for as long as the process runs. A port bound and then released (as
/// [`free_addr`] gives) may be taken by another test's listener meanwhile, and a test
/// counting on a refusal then talks to that listener instead.
///
/// # Panics
/// If no loopback port can be bound.
#[allow(clippy::unused_async)] // async as the rest of this module: callers await it
pub async fn refused_addr() -> SocketAddr {
    static REFUSED: OnceLock<(TcpSocket, SocketAddr)> = OnceLock::new();
    REFUSED
        .get_or_init(|| {
            let socket = TcpSocket::new_v4().expect("a TCP socket");
            socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind a loopback port");
            let addr = socket.local_addr().expect("the socket's address");
            (socket, addr)
        })
        .1
}

/// A free loopback address (a port bound, then released) for a test that must bind a
/// port of its own choosing later. Another listener may take it in between: for a port
/// that must refuse connections, use [`refused_addr`].
///
/// # Panics
/// If no loopback port can be bound.
pub async fn free_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    listener.local_addr().expect("the listener's address")
}

/// `http://` + [`refused_addr`].
pub async fn refused_url() -> String {
    format!("http://{}", refused_addr().await)
}

/// A loopback listener that accepts connections and never answers: a black-holed server.
/// It keeps every accepted socket open until it is dropped.
#[derive(Debug)]
pub struct BlackHole {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    /// Starts listening.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("the listener's address"));
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { url, task }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback server that reads each request whole (its head, then the `content-length`
/// bytes of body) and hangs up without answering: the request was sent and may have run,
/// but no answer came. Counts the requests it read whole.
#[derive(Debug)]
pub struct HangUp {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests read whole.
    pub read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HangUp {
    /// Starts listening.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start() -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("the listener's address"));
        let read: std::sync::Arc<std::sync::atomic::AtomicUsize> = std::sync::Arc::default();
        let count = std::sync::Arc::clone(&read);
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let count = std::sync::Arc::clone(&count);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Bounded: at most 64 KiB is read from one connection.
                    while seen.len() < 64 * 1024 {
                        if request_complete(&seen) {
                            count.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => seen.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                        }
                    }
                });
            }
        });
        Self { url, read, task }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// How many requests it read whole so far.
    pub fn requests_read(&self) -> usize {
        self.read.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HangUp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `seen` holds a whole request head and the body its `content-length` announces.
fn request_complete(seen: &[u8]) -> bool {
    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(seen.get(..end).unwrap_or_default()).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    seen.len() >= end + 4 + length
}

/// A reqwest resolver that answers every name with one loopback address and counts the
/// look-ups: each is a new connection attempt (a refused connection is never pooled).
#[derive(Debug, Clone)]
pub struct CountingResolver {
    addr: SocketAddr,
    lookups: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingResolver {
    /// Resolves to `addr`.
    ///
    /// # Panics
    /// If `addr` is not a loopback address: tests talk to loopback only.
    pub fn new(addr: SocketAddr) -> Self {
        assert!(addr.ip().is_loopback(), "tests talk to loopback only");
        Self { addr, lookups: std::sync::Arc::default() }
    }

    /// The look-ups so far.
    pub fn lookups(&self) -> usize {
        self.lookups.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// An HTTP client resolving through this resolver (and never through a proxy).
    ///
    /// # Panics
    /// If the client cannot be built.
    pub fn http_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(self.clone()))
            .build()
            .expect("an HTTP client")
    }
}

impl reqwest::dns::Resolve for CountingResolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let addr = self.addr;
        Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs) })
    }
}

#[cfg(test)]
mod tests {
    use super::refused_addr;

    #[tokio::test]
    async fn the_refused_port_refuses_and_no_listener_can_take_it() {
        let addr = refused_addr().await;
        let refused = tokio::net::TcpStream::connect(addr).await.expect_err("refused");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(tokio::net::TcpListener::bind(addr).await.is_err(), "a listener took the refused port");
        assert_eq!(refused_addr().await, addr, "one port for the whole process");
    }
}
