//! Loopback listeners.

use std::net::SocketAddr;

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

/// A loopback address nothing listens on (a port bound, then released).
///
/// # Panics
/// If no loopback port can be bound.
pub async fn refused_addr() -> SocketAddr {
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
