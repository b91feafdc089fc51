//! `EZThrottle::job_events`: a job's events as a stream, resumed across disconnections.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use http::StatusCode;

use super::EZThrottle;
use super::sse::{RawEvent, SseReader};
use crate::error::{Error, Origin};
use crate::protocol::{JobEvent, JobEventKind, paths};

/// No byte for this long (the engine sends a heartbeat every 15 s): the connection is
/// taken as dead and opened again.
const SILENCE: Duration = Duration::from_secs(45);
/// Reconnections in a row without a byte before the stream gives up.
const MAX_RECONNECTS: u32 = 5;

/// The events of one job ([`EZThrottle::job_events`]): a [`Stream`] that is `Unpin`, so
/// `StreamExt::next` works on it as it is.
pub struct JobEvents {
    inner: Pin<Box<dyn Stream<Item = Result<JobEvent, Error>> + Send>>,
}

impl std::fmt::Debug for JobEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEvents").finish_non_exhaustive()
    }
}

impl Stream for JobEvents {
    type Item = Result<JobEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct Follow {
    client: EZThrottle,
    url: String,
    job_id: String,
    last_id: Option<String>,
    response: Option<reqwest::Response>,
    reader: SseReader,
    ready: std::collections::VecDeque<RawEvent>,
    reconnects: u32,
    done: bool,
}

impl EZThrottle {
    /// The events of job `job_id` as they happen (`GET /api/v1/jobs/{id}/events`): its
    /// history first (`queued`, each `dispatching`, `retrying`, `rerouted`), then what
    /// follows, until `completed` or `failed`, which end the stream. A dropped connection is
    /// opened again with `Last-Event-ID`, so no event is missed or repeated, however long
    /// the job waits (five reconnections in a row without a byte, heartbeats included,
    /// end it with the error).
    ///
    /// Direct mode only (an engine such as `ezthrottle-local`): the cloud's proxy does not
    /// stream.
    ///
    /// # Errors
    ///
    /// Each item: [`Error::JobNotFound`], [`Error::Config`] in cloud mode, the server's
    /// refusal, or the transport failure that ended the stream.
    pub fn job_events(&self, job_id: &str) -> JobEvents {
        let base = self.direct_base().map(|base| format!("{base}{}/{job_id}/events", paths::JOBS));
        let check = super::check_job_id(job_id);
        let start = match (base, check) {
            (Ok(url), Ok(())) => Ok(Follow {
                client: self.clone(),
                url,
                job_id: job_id.to_owned(),
                last_id: None,
                response: None,
                reader: SseReader::default(),
                ready: std::collections::VecDeque::new(),
                reconnects: 0,
                done: false,
            }),
            (Err(err), _) | (_, Err(err)) => Err(err),
        };
        let stream = futures_util::stream::unfold(Some(start), |state| async move {
            match state? {
                Err(err) => Some((Err(err), None)),
                Ok(mut follow) => match follow.next().await {
                    Ok(Some(event)) => Some((Ok(event), Some(Ok(follow)))),
                    Ok(None) => None,
                    Err(err) => Some((Err(err), None)),
                },
            }
        });
        JobEvents { inner: Box::pin(stream) }
    }
}

impl Follow {
    async fn next(&mut self) -> Result<Option<JobEvent>, Error> {
        loop {
            if let Some(raw) = self.ready.pop_front() {
                if raw.id.is_some() {
                    self.last_id.clone_from(&raw.id);
                }
                let kind = raw.event.as_deref().map_or(JobEventKind::Unknown, JobEventKind::from_name);
                let mut event: JobEvent = serde_json::from_str(&raw.data).map_err(|err| Error::InvalidResponse {
                    origin: Origin::EZThrottle,
                    status: StatusCode::OK,
                    message: format!("an event of job {} is not JSON: {err}", self.job_id),
                })?;
                event.kind = kind;
                event.id = raw.id.and_then(|id| id.parse().ok());
                self.done |= kind.is_final();
                return Ok(Some(event));
            }
            if self.done {
                return Ok(None);
            }
            let Some(response) = self.response.as_mut() else {
                self.connect().await?;
                continue;
            };
            match tokio::time::timeout(SILENCE, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    // The stream is alive (an event or a heartbeat): a later close is the
                    // engine ending it (its lifetime, a drain), not a failing server.
                    self.reconnects = 0;
                    let events = self.reader.feed(&chunk).map_err(|err| Error::InvalidResponse {
                        origin: Origin::EZThrottle,
                        status: StatusCode::OK,
                        message: err.to_string(),
                    })?;
                    self.ready.extend(events);
                }
                // Closed, broken or silent: open it again after the last event seen.
                Ok(Ok(None) | Err(_)) | Err(_) => {
                    self.response = None;
                    self.reader = SseReader::default();
                }
            }
        }
    }

    /// Opens the stream (after the last event seen), trying again on a transport failure.
    async fn connect(&mut self) -> Result<(), Error> {
        loop {
            if self.reconnects >= MAX_RECONNECTS {
                return Err(Error::InvalidResponse {
                    origin: Origin::EZThrottle,
                    status: StatusCode::OK,
                    message: format!("the event stream of job {} kept closing without an event", self.job_id),
                });
            }
            if self.reconnects > 0 {
                tokio::time::sleep(Duration::from_millis(200u64.saturating_mul(u64::from(self.reconnects)))).await;
            }
            self.reconnects = self.reconnects.saturating_add(1);
            let mut request = self.client.streaming_request(&self.url);
            if let Some(id) = &self.last_id {
                request = request.header("last-event-id", id);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) if self.reconnects < MAX_RECONNECTS => {
                    tracing::debug!(target: crate::telemetry::TARGET_CLIENT, job_id = self.job_id, error = %crate::ErrorChain(&err), "the event stream could not be opened; trying again");
                    continue;
                }
                Err(err) => return Err(Error::transport(&self.url, err)),
            };
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                return Err(Error::JobNotFound { job_id: self.job_id.clone() });
            }
            if !status.is_success() {
                let headers = response.headers().clone();
                let body = response.bytes().await.unwrap_or_default();
                return Err(super::transport::Answer { origin: Origin::EZThrottle, status, headers, body }.into_error());
            }
            self.response = Some(response);
            return Ok(());
        }
    }
}
