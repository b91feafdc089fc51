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
