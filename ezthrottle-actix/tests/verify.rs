//! Verification under hostile input, against a real actix-web server on 127.0.0.1: a
//! request without a usable signature is refused before its body is read (by the
//! middleware and by the extractor alone), and a body swapped after the middleware
//! verified is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use actix_web::dev::{Payload, Service as _, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::middleware::Condition;
use actix_web::web::Bytes;
use actix_web::{App, HttpMessage as _, HttpResponse, HttpServer, web};
use ezthrottle_actix::{ActixVerifyWebhook, VerifiedDelivery};
use ezthrottle_core::webhook::{Verifier, sign};
use ezthrottle_test_support::post_unending;
use ezthrottle_test_support::webhook::{SECRET, now, payload_json, post_signed, refused_signatures};

async fn handler(delivery: VerifiedDelivery) -> HttpResponse {
    HttpResponse::Ok().body(format!("{}:{:?}", delivery.payload.job_id, delivery.secret()))
}

/// A request payload that sets `polled` the first time anything reads it.
struct Recording {
    inner: Payload,
    polled: Arc<AtomicBool>,
}

impl futures_core::Stream for Recording {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.polled.store(true, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Wraps the payload of `request` in a [`Recording`].
fn record(request: &mut ServiceRequest, polled: &Arc<AtomicBool>) {
    let inner = request.take_payload();
    let recording: actix_web::dev::Payload = Payload::from(
        Box::pin(Recording { inner, polled: Arc::clone(polled) }) as Pin<Box<dyn futures_core::Stream<Item = _>>>
    );
    request.set_payload(recording);
}

/// Serves the app `make` builds on a free port of 127.0.0.1 (one worker), for the test.
fn serve<F, A, B>(make: F) -> (SocketAddr, actix_web::dev::ServerHandle)
where
    F: Fn() -> App<A> + Send + Clone + 'static,
    B: actix_web::body::MessageBody + 'static,
    A: actix_web::dev::ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    let server = HttpServer::new(make).workers(1).bind(("127.0.0.1", 0)).expect("bind a loopback port");
    let addr = *server.addrs().first().expect("an address");
    let server = server.disable_signals().run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (addr, handle)
}

/// Each of [`refused_signatures`] with a body that never ends gets its answer at once,
/// and the body is never polled; a signed delivery is then read and answered. With
/// `middleware`, an `ActixVerifyWebhook` refuses; without, the extractor alone.
async fn assert_refused_unread(middleware: bool) {
    let polled = Arc::new(AtomicBool::new(false));
    let recorder = Arc::clone(&polled);
    let (addr, server) = serve(move || {
        let recorder = Arc::clone(&recorder);
        App::new()
            .app_data(Verifier::new(SECRET).unwrap())
            .route("/hook", web::post().to(handler))
            .wrap(Condition::new(middleware, ActixVerifyWebhook::with_verifier(Verifier::new(SECRET).unwrap())))
            .wrap_fn(move |mut request, service| {
                record(&mut request, &recorder);
                service.call(request)
            })
    });
    for (name, signature, status, text) in refused_signatures(now()) {
        let headers: Vec<(&str, &[u8])> = signature.iter().map(|s| ("x-ezthrottle-signature", s.as_slice())).collect();
        let (got, body) = post_unending(addr, "/hook", &headers).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(body.starts_with(text), "{name}: {body}");
        assert!(!polled.load(Ordering::SeqCst), "{name}: the body was read before the refusal");
    }
    let body = payload_json("job_read", None);
    let answer = post_signed(&format!("http://{addr}/hook"), &body, Some(sign(SECRET, now(), body.as_bytes()))).await;
    assert_eq!(answer, (200, "job_read:Primary".to_owned()));
    assert!(polled.load(Ordering::SeqCst));
    server.stop(false).await;
}

#[actix_web::test]
async fn the_middleware_refuses_a_bad_header_without_reading_the_body() {
    assert_refused_unread(true).await;
}

#[actix_web::test]
async fn the_extractor_refuses_a_bad_header_without_reading_the_body() {
    assert_refused_unread(false).await;
}

/// A middleware between `ActixVerifyWebhook` and the handler swaps the verified body for
/// an unsigned one: the extractor refuses it, with or without a verifier of its own.
#[actix_web::test]
async fn a_body_swapped_after_verification_is_refused() {
    for registered in [true, false] {
        let (addr, server) = serve(move || {
            let app = App::new();
            let app = if registered { app.app_data(Verifier::new(SECRET).unwrap()) } else { app };
            app.route("/hook", web::post().to(handler))
                .wrap_fn(|mut request, service| {
                    request.set_payload(Payload::from(Bytes::from(payload_json("job_forged", None))));
                    service.call(request)
                })
                .wrap(ActixVerifyWebhook::with_verifier(Verifier::new(SECRET).unwrap()))
        });
        let body = payload_json("job_signed", None);
        let signature = Some(sign(SECRET, now(), body.as_bytes()));
        let answer = post_signed(&format!("http://{addr}/hook"), &body, signature).await;
        assert_eq!(answer, (401, "invalid webhook signature".to_owned()), "verifier registered: {registered}");
        server.stop(false).await;
    }
}
