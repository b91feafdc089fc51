//! `ezthrottle submit [--wait]`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::response::Response;
use ezthrottle_core::inbox::WebhookInbox;
use ezthrottle_core::webhook::Verifier;
use ezthrottle_core::{Job, RetryPolicy, SubmitReceipt, Webhook, WebhookPayload};
use ezthrottle_tower::axum::webhook_routes;
use serde_json::json;

use crate::args::{ENV_WEBHOOK_SECRET, SubmitArgs};
use crate::output::{CliError, Output, Status};
use crate::progress::Progress;
use crate::signature::read_bounded;

/// Why `--wait` is refused in cloud mode with a loopback receiver, and what to do instead.
/// Said before anything is sent: a job whose only way back is a loopback receiver would
/// run, and be billed, for nothing.
const LOOPBACK_IN_CLOUD: &str = "--wait receives the result on a webhook receiver on this machine's loopback, \
     which EZThrottle cloud cannot reach: the job would run, and be billed, but never report back. Nothing was \
     sent. Either talk to an engine directly (--ezthrottle-url, e.g. `ezthrottle local` at \
     http://127.0.0.1:8080), or give the receiver a public URL: a tunnel (cloudflared, ngrok) to \
     --receiver-bind 127.0.0.1:<port>, with --receiver-url https://<public host>/webhook";

/// Submits the job; with `--wait`, waits for its webhook and prints the payload too.
pub(crate) async fn run(args: &SubmitArgs, out: Output) -> Result<Status, CliError> {
    let mut job = build_job(args)?;
    job.validate().map_err(|invalid| CliError::usage(format!("invalid job: {invalid}")))?;
    let client = args.connection.client()?;
    if !args.wait {
        let receipt = client.submit_job(&job).await?;
        accepted(&receipt);
        out.print(&receipt_text(&receipt), &receipt_json(&receipt));
        return Ok(Status::Ok);
    }
    if let Some(url) = &args.receiver_url
        && !url::Url::parse(url).is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
    {
        return Err(CliError::usage(format!("--receiver-url: {url:?} is not an absolute http(s) URL")));
    }
    if !client.is_direct() && args.receiver_url.as_deref().is_none_or(is_loopback_url) {
        return Err(CliError::usage(LOOPBACK_IN_CLOUD));
    }
    let Some(secret) = args.webhook_secret.as_deref().filter(|s| !s.is_empty()) else {
        return Err(CliError::usage(format!(
            "--wait needs the webhook secret to verify deliveries: pass --webhook-secret or set {ENV_WEBHOOK_SECRET}"
        )));
    };
    let mut verifier = Verifier::new(secret).map_err(|err| CliError::usage(format!("--webhook-secret: {err}")))?;
    if let Some(secondary) = &args.webhook_secondary_secret {
        verifier = verifier
            .with_secondary(secondary)
            .map_err(|err| CliError::usage(format!("--webhook-secondary-secret: {err}")))?;
    }
    let receiver = Receiver::start(verifier, args.receiver_bind).await?;
    let receiver_url = args.receiver_url.clone().unwrap_or_else(|| receiver.url());
    tracing::info!(listening = %receiver.url(), url = %receiver_url, "webhook receiver started");
    job.webhooks.push(Webhook::new(receiver_url));
    let receipt = client.submit_job(&job).await?;
    accepted(&receipt);
    if receipt.duplicate {
        if !out.json {
            crate::output::line(&receipt_text(&receipt));
        }
        return Err(CliError::timed_out(format!(
            "job {} is a duplicate of an earlier submission: its result went to that submission's webhooks, \
             not to this receiver (use another --idempotent-key)",
            receipt.job_id
        )));
    }
    let waiting = format!("job {}: waiting for its webhook", receipt.job_id);
    let progress = Progress::start(waiting, receipt.status.as_str());
    let payload = receiver.wait(&receipt, args.timeout).await;
    drop(progress);
    let payload = payload?;
    tracing::info!(job_id = %payload.job_id, status = ?payload.status, "verified webhook received");
    let pretty = serde_json::to_string_pretty(&payload).unwrap_or_default();
    let value = json!({ "receipt": receipt_json(&receipt), "webhook": payload });
    out.print(&format!("{}\n{pretty}", receipt_text(&receipt)), &value);
    Ok(Status::Ok)
}

fn accepted(receipt: &SubmitReceipt) {
    tracing::info!(job_id = %receipt.job_id, status = %receipt.status, duplicate = receipt.duplicate, "job accepted");
}

/// Whether EZThrottle cloud cannot reach `url`: a loopback host (`localhost`, 127.0.0.0/8,
/// `::1`), or no URL at all.
fn is_loopback_url(url: &str) -> bool {
    match url::Url::parse(url).ok().and_then(|url| url.host().map(|host| host.to_owned())) {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        None => true,
    }
}

/// The job from `--file`, or from the flags.
fn build_job(args: &SubmitArgs) -> Result<Job, CliError> {
    let mut job = match &args.file {
        Some(path) => read_job(path)?,
        None => {
            let mut job = Job::new(args.url.clone().unwrap_or_default());
            job.method = args.method.clone();
            job.headers.extend(args.headers.iter().cloned());
            job.body.clone_from(&args.body);
            job.regions.clone_from(&args.regions);
            if !args.retry_codes.is_empty() {
                job.retry_policy = Some(RetryPolicy::new().retry_codes(args.retry_codes.iter().copied()));
            }
            job
        }
    };
    job.webhooks.extend(args.webhooks.iter().map(Webhook::new));
    if let Some(key) = &args.idempotent_key {
        job.idempotent_key = Some(key.clone());
    }
    Ok(job)
}

/// A JSON job from a file, or stdin for `-`.
fn read_job(path: &Path) -> Result<Job, CliError> {
    let (name, bytes) = if path == Path::new("-") {
        ("the job on stdin".to_owned(), read_bounded(std::io::stdin().lock(), "the job on stdin")?)
    } else {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|err| CliError::usage(format!("cannot open {name}: {err}")))?;
        let bytes = read_bounded(file, &name)?;
        (name, bytes)
    };
    serde_json::from_slice(&bytes).map_err(|err| CliError::usage(format!("{name} is not a valid JSON job: {err}")))
}

fn receipt_text(receipt: &SubmitReceipt) -> String {
    format!(
        "job_id: {}\nstatus: {}\nidempotent_key: {}\nduplicate: {}",
        receipt.job_id,
        receipt.status,
        receipt.idempotent_key.as_deref().unwrap_or("(none)"),
        receipt.duplicate
    )
}

fn receipt_json(receipt: &SubmitReceipt) -> serde_json::Value {
    json!({
        "job_id": receipt.job_id,
        "status": receipt.status.as_str(),
        "idempotent_key": receipt.idempotent_key,
        "duplicate": receipt.duplicate,
    })
}

/// The temporary webhook receiver of `--wait`: `ezthrottle_tower`'s `webhook_routes` on
/// 127.0.0.1, recording verified deliveries into an inbox.
struct Receiver {
    addr: SocketAddr,
    inbox: WebhookInbox,
    /// Deliveries answered 4xx (their signature did not verify, or the body was unreadable).
    refused: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(verifier: Verifier, bind: SocketAddr) -> Result<Self, CliError> {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|err| CliError::failed_with(format!("cannot start the webhook receiver on {bind}"), &err))?;
        let addr =
            listener.local_addr().map_err(|err| CliError::failed_with("cannot start the webhook receiver", &err))?;
        let inbox = WebhookInbox::with_capacity(64);
        let refused = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&refused);
        let app =
            webhook_routes(verifier, inbox.clone()).layer(axum::middleware::map_response(move |response: Response| {
                if response.status().is_client_error() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                std::future::ready(response)
            }));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inbox, refused, server })
    }

    fn url(&self) -> String {
        format!("http://{}/webhook", self.addr)
    }

    /// The delivery for the receipt's job (by its idempotency key only for a duplicate).
    async fn wait(self, receipt: &SubmitReceipt, timeout: Duration) -> Result<WebhookPayload, CliError> {
        let result = self.inbox.wait_for_receipt(receipt, timeout).await;
        self.server.abort();
        result.map_err(|_| {
            let refused = self.refused.load(Ordering::Relaxed);
            let hint = if refused > 0 {
                format!(
                    "; the receiver refused {refused} deliveries whose signature did not verify: \
                     check --webhook-secret"
                )
            } else {
                String::new()
            };
            CliError::timed_out(format!(
                "job {} was accepted but its webhook did not arrive within {}{hint}",
                receipt.job_id,
                humantime::format_duration(timeout)
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_receivers_are_told_apart_from_public_ones() {
        for url in ["http://127.0.0.1:9/webhook", "http://127.8.0.1/", "http://[::1]:80/", "http://localhost/x"] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in ["http://LOCALHOST./", "http://app.localhost/", "http://0.0.0.0:9/", "not a url"] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in ["https://tunnel.example.com/webhook", "http://192.0.2.1/", "https://[2001:db8::1]/"] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }
}
