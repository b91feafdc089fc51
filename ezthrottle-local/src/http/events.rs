//! `GET /api/v1/jobs/{id}/events`: a job's events as server-sent events.
//!
//! The stream replays the job's history (every event after `Last-Event-ID`, when given),
//! then follows it by reading the job every [`POLL`], until its `completed` or `failed`
//! event. It reads the store, so any replica streams any job; `position` events come from
//! the replica whose queue holds the job. Bounded ([`StreamLimits`]): at most
//! `max_event_streams` open at once (then 503), each closed after
//! `event_stream_lifetime` (the client resumes with `Last-Event-ID`), a heartbeat comment
//! every [`HEARTBEAT`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use ezthrottle_core::protocol::{JobEvent, JobStatus};
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use super::error::{bad_request, json_error, store_unavailable, unauthorized};
use crate::engine::Shared;
use crate::pacing::host_key;
use crate::store::{JobRecord, StoreError};

/// How often a followed job is read again.
pub(crate) const POLL: Duration = Duration::from_millis(250);
/// How often an idle stream sends a comment, so proxies keep it open.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(15);
/// The range `EngineBuilder::event_stream_lifetime` keeps to.
pub(crate) const LIFETIME_BOUNDS: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 3_600);

/// The bounds on event streams (`EngineBuilder::max_event_streams`,
/// `EngineBuilder::event_stream_lifetime`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLimits {
    /// Most streams open at once.
    pub(crate) max_open: usize,
    /// How long one stream stays open.
    pub(crate) lifetime: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self { max_open: 1_000, lifetime: Duration::from_secs(3_600) }
    }
}

/// The open streams (one count per engine).
#[derive(Debug, Default)]
pub(crate) struct Streams(AtomicUsize);

/// One open stream, counted until it is dropped.
struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>) -> Option<Self> {
        let open = &shared.event_streams.0;
        if open.fetch_add(1, Ordering::AcqRel) >= shared.config.event_streams.max_open {
            open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(Arc::clone(shared)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.event_streams.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) async fn handle(State(shared): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(tenant) = shared.tenants.authenticate(&headers) else {
        return unauthorized().into_response();
    };
    let after = match headers.get("last-event-id").map(|value| value.to_str().ok().and_then(|v| v.trim().parse().ok()))
    {
        None => 0,
        Some(Some(id)) => id,
        Some(None) => return bad_request("last-event-id", "must be an event id this stream sent").into_response(),
    };
    match read(&shared, &id).await {
        Ok(Some(record)) if record.tenant() == &*tenant => {}
        Ok(_) => return json_error(StatusCode::NOT_FOUND, format!("job_id: no job {id:?}")).into_response(),
        Err(err) => return store_unavailable("the job could not be read", &err).into_response(),
    }
    let Some(slot) = Slot::take(&shared) else {
        let max = shared.config.event_streams.max_open;
        let mut response = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("max_event_streams: {max} event streams are open; retry later"),
        );
        response.retry_after = Some(5);
        return response.into_response();
    };
    let follow = Follow {
        slot,
        id,
        after,
        position: None,
        pending: VecDeque::new(),
        read: false,
        done: false,
        opened: Instant::now(),
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        follow.next().await.map(|event| (Ok::<_, Infallible>(event), follow))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT)).into_response()
}

async fn read(shared: &Shared, id: &str) -> Result<Option<Arc<JobRecord>>, StoreError> {
    shared.live.get(&*shared.store, id).await
}

/// A stream following one job.
struct Follow {
    slot: Slot,
    id: String,
    /// The id of the last history event sent.
    after: u64,
    /// The last `position` sent: a position is sent when it changes, not at every read.
    position: Option<u64>,
    pending: VecDeque<Event>,
    /// Whether the job was read once: later reads wait [`POLL`] after the previous one.
    read: bool,
    done: bool,
    opened: Instant,
}

impl Follow {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let shared = Arc::clone(&self.slot.0);
            let left = shared.config.event_streams.lifetime.saturating_sub(self.opened.elapsed());
            if self.done || left.is_zero() {
                return None;
            }
            // One read per POLL at most, events or not: a client never sets the pace.
            if std::mem::replace(&mut self.read, true) {
                tokio::select! {
                    () = tokio::time::sleep(POLL.min(left)) => {}
                    // The drain closes the streams; clients resume elsewhere.
                    () = shared.stopping() => return None,
                }
            }
            self.read_new().await;
        }
    }

    /// Queues the events of the job's history after the last one sent.
    async fn read_new(&mut self) {
        let shared = Arc::clone(&self.slot.0);
        let record = match read(&shared, &self.id).await {
            Ok(Some(record)) => record,
            // Swept (past its retention) or the store failed: the client may resume.
            Ok(None) | Err(_) => {
                self.done = true;
                return;
            }
        };
        let snapshot = record.snapshot();
        for event in JobEvent::history(&snapshot) {
            let Some(id) = event.id.filter(|id| *id > self.after) else { continue };
            self.after = id;
            self.done |= event.kind.is_final();
            self.pending.push_back(sse(&event));
        }
        if snapshot.status != JobStatus::Queued {
            self.position = None;
        } else if let Some(host) = url::Url::parse(&snapshot.url).ok().as_ref().and_then(host_key)
            && let Some(position) = shared.lanes.position(&host, &self.id)
            && self.position.replace(position) != Some(position)
        {
            self.pending.push_back(sse(&JobEvent::position(&self.id, position)));
        }
    }
}

fn sse(event: &JobEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| String::from("{}"));
    let sse = Event::default().event(event.kind.as_str()).data(data);
    match event.id {
        Some(id) => sse.id(id.to_string()),
        None => sse,
    }
}
