//! The engine's HTTP server: `axum::serve` without its open doors.
//!
//! `axum::serve` waits forever for a request's head or body and accepts every connection.
//! A client sending one byte a minute would hold a task and a socket for as long as it
//! likes, and enough of them exhaust file descriptors. Here every request head must arrive
//! within [`ServerLimits`]' header timeout (hyper closes the connection otherwise, idle
//! keep-alive connections included), every body within the body timeout (a `408` naming
//! it), and at most `max_connections` connections are served at once: beyond it new
//! connections wait in the listen backlog until one closes.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::{Instant, Sleep};
use tower_service::Service as _;

/// How long the server waits for what a client sends, and how many clients it serves
/// (set on the [`EngineBuilder`](crate::EngineBuilder)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerLimits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) max_connections: usize,
}

impl Default for ServerLimits {
    /// 10 s for a request head, 30 s for a body, 10,000 connections.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// Serves `router` on `listener` until `stop` fires (or its sender is dropped), then stops
/// accepting, lets open requests finish and closes idle connections.
pub(crate) async fn serve(listener: TcpListener, router: Router, limits: ServerLimits, stop: oneshot::Receiver<()>) {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(stop);
    loop {
        // The slot first: past the limit the server stops accepting, and new connections
        // wait in the kernel's backlog instead of costing a task each.
        let slot = tokio::select! {
            slot = Arc::clone(&connections).acquire_owned() => slot,
            _ = &mut stop => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: wait before trying again rather
                    // than spinning on the error.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let body_timeout = limits.body_read_timeout;
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let mut router = router.clone();
            router.call(request.map(|body| TimedBody::new(body, body_timeout)))
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The error of a request body that did not arrive within the body read timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyReadTimeout(pub(crate) Duration);

impl fmt::Display for BodyReadTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body did not arrive within {} ms (the body read timeout)", self.0.as_millis())
    }
}

impl StdError for BodyReadTimeout {}

/// Whether `err` (or one of its causes) is a [`BodyReadTimeout`].
pub(crate) fn body_timed_out(err: &(dyn StdError + 'static)) -> Option<BodyReadTimeout> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(timeout) = err.downcast_ref::<BodyReadTimeout>() {
            return Some(*timeout);
        }
        cause = err.source();
    }
    None
}

/// A request body that fails with [`BodyReadTimeout`] once its deadline has passed. The
/// timer is only set when a read has to wait (a body that is already there, or none, costs
/// none).
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl TimedBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        // A timeout past what an `Instant` can hold is no deadline.
        Self { inner, timeout, deadline: Instant::now().checked_add(timeout), timer: None }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let Some(deadline) = self.deadline else { return Poll::Pending };
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyReadTimeout(self.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
