//! Running a job: attempts, retries, reroutes, regions (race / fanout), then the end of
//! the job (children, webhooks).
//!
//! A job becomes a task only when its lane dispatches it; every later request it makes
//! (a retry, another region, a fallback) waits for a permit of the host it goes to.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use ezthrottle_core::ErrorChain;
use ezthrottle_core::protocol::headers::{JOB_ID_HEADER, REGION_HEADER};
use ezthrottle_core::protocol::{AttemptOutcome, ExecutionMode, Job, JobStatus, RegionPolicy, TargetResponse};
use ezthrottle_core::telemetry::TARGET_ENGINE;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use crate::engine::Shared;
use crate::pacing::{Permit, acquire, host_key};
use crate::redirect;
use crate::store::{AttemptRecord, JobRecord};
use crate::util::{header_object, jittered, millis, now_ms, retry_after};

/// How long a job whose record could not be read waits before the next try.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Status codes retried when a job carries no `retry_policy`.
pub(crate) const DEFAULT_RETRY_CODES: [u16; 4] = [429, 502, 503, 504];
/// Retries in the same region when a job carries no `retry_policy` (or no `max_retries`).
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 3;

/// How a job (or a fallback job) ended.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) success: bool,
    pub(crate) response: Option<TargetResponse>,
    pub(crate) error: Option<String>,
    /// The status code the triggers and policies match: the target's status, or 502 when
    /// the target could not be reached, 504 when it did not answer in time.
    pub(crate) code: Option<u16>,
    /// The drain started before the job ended: it stops where its saved progress says,
    /// and a durable store resumes it at the next start.
    pub(crate) stopped: bool,
}

impl Outcome {
    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self { success: false, response: None, error: Some(message.into()), code: None, stopped: false }
    }

    pub(crate) fn stopped() -> Self {
        Self { stopped: true, ..Self::error("the engine stopped before the job finished") }
    }

    /// The outcome a finished job recorded (to settle a job resumed after a restart).
    pub(crate) fn recorded(record: &JobRecord) -> Self {
        let state = record.state();
        let detail = state.detail_ref();
        let response = detail.and_then(|d| d.response.clone());
        let code = response.as_ref().map(|r| r.status_code);
        Self {
            success: state.status == JobStatus::Success,
            response,
            error: detail.and_then(|d| d.error.clone()),
            code,
            stopped: false,
        }
    }
}

/// Called by a lane's dispatcher when a queued job's turn comes.
pub(crate) fn start(shared: &Arc<Shared>, job_id: Box<str>, tenant: Arc<str>, permit: Permit) {
    shared.metrics.queued.fetch_sub(1, Relaxed);
    crate::tenancy::release(shared, &tenant);
    let task_shared = Arc::clone(shared);
    shared.spawn(async move {
        let shared = task_shared;
        match shared.live.get(&*shared.store, &job_id).await {
            Ok(Some(record)) => {
                shared.metrics.running.fetch_add(1, Relaxed);
                run_job(shared, record, permit).await;
            }
            // Swept while it waited (its retention ran out): nothing to run.
            Ok(None) => tracing::warn!(job_id = &*job_id, "a queued job is no longer in the store"),
            Err(err) => {
                shared.metrics.store_errors.fetch_add(1, Relaxed);
                tracing::error!(job_id = &*job_id, error = %ErrorChain(&err), "a queued job could not be read: retrying in 1 s");
                let lane = shared.lanes.lane(permit.host());
                drop(permit);
                shared.metrics.queued.fetch_add(1, Relaxed);
                let _ = crate::tenancy::reserve(&shared, &tenant, crate::submit::Admission::Bypass);
                let later = Instant::now().checked_add(STORE_RETRY);
                crate::pacing::enqueue(&shared, &lane, crate::pacing::Item::Start { job_id, tenant }, later);
            }
        }
    });
}

/// Marks the job failed if its task panics. A task dropped by the drain leaves the job as
/// last saved, for the next start to resume.
struct FinishGuard {
    shared: Arc<Shared>,
    record: Arc<JobRecord>,
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.shared.metrics.running.fetch_sub(1, Relaxed);
        if !std::thread::panicking() {
            return;
        }
        let unfinished = {
            let mut state = self.record.state();
            if state.status.is_finished() {
                false
            } else {
                state.status = JobStatus::Failed;
                state.finished_at_ms = now_ms();
                state.detail().error = Some("the job's task failed (a bug: please report it)".into());
                true
            }
        };
        if unfinished {
            self.shared.metrics.failed.fetch_add(1, Relaxed);
            let (shared, record) = (Arc::clone(&self.shared), Arc::clone(&self.record));
            tokio::spawn(async move { shared.persist(&record).await });
        }
    }
}

async fn run_job(shared: Arc<Shared>, record: Arc<JobRecord>, permit: Permit) {
    use tracing::Instrument as _;
    let span = tracing::debug_span!(target: TARGET_ENGINE, "job", job_id = record.id(), host = permit.host());
    run_job_in_span(shared, record, permit).instrument(span).await;
}

async fn run_job_in_span(shared: Arc<Shared>, record: Arc<JobRecord>, permit: Permit) {
    let _guard = FinishGuard { shared: Arc::clone(&shared), record: Arc::clone(&record) };
    {
        let mut state = record.state();
        state.status = JobStatus::Running;
        if state.started_at_ms == 0 {
            state.started_at_ms = now_ms();
            let waited = state.started_at_ms.saturating_sub(record.accepted_at_ms());
            shared.metrics.dispatched(Duration::from_millis(waited));
        }
    }
    // Only a job still queued (or resumed while running) starts: a cancel saved first wins.
    if !shared.persist_if(&record, &[JobStatus::Queued, JobStatus::Running]).await {
        tracing::info!(job_id = record.id(), "a job cancelled before its turn: not run");
        return;
    }
    let outcome = crate::fallback::run_node(&shared, &record, record.job(), Arc::from("primary"), Some(permit)).await;
    if outcome.stopped {
        return;
    }
    {
        let mut state = record.state();
        state.status = if outcome.success { JobStatus::Success } else { JobStatus::Failed };
        state.finished_at_ms = now_ms();
        let detail = state.detail();
        detail.response.clone_from(&outcome.response);
        detail.error.clone_from(&outcome.error);
    }
    if outcome.success {
        shared.metrics.succeeded.fetch_add(1, Relaxed);
    } else {
        shared.metrics.failed.fetch_add(1, Relaxed);
    }
    shared.persist(&record).await;
    settle(&shared, &record, &outcome).await;
}

/// What follows the end of a job: its children, then its webhooks. Each step is saved, so
/// a job resumed after a restart does only what is left.
pub(crate) async fn settle(shared: &Arc<Shared>, record: &Arc<JobRecord>, outcome: &Outcome) {
    tracing::debug!(target: TARGET_ENGINE, job_id = record.id(), status = %record.status(), "job finished");
    crate::workflow::on_finished(shared, record, outcome.success).await;
    crate::delivery::deliver(shared, record, outcome).await;
}

/// The regions a job runs in: `Ok(lanes)` where each lane is an ordered list of regions
/// (the first is where it starts; the rest are where `reroute_codes` move it).
fn plan_regions(shared: &Shared, job: &Job) -> Result<Vec<Vec<Arc<str>>>, String> {
    let config = &shared.config;
    let requested: Vec<&str> = if job.regions.is_empty() {
        vec![config.default_region()]
    } else {
        job.regions.iter().map(String::as_str).collect()
    };
    let down: Vec<&str> = requested.iter().copied().filter(|r| config.is_down(r)).collect();
    if !down.is_empty() && job.region_policy == RegionPolicy::Strict {
        return Err(format!("region {} is down (region_policy strict)", down.join(", ")));
    }
    let mut up: Vec<&str> = requested.iter().copied().filter(|r| !config.is_down(r)).collect();
    up.dedup();
    let spare: Vec<&str> =
        config.regions.iter().map(String::as_str).filter(|r| !config.is_down(r) && !requested.contains(r)).collect();
    if up.is_empty() {
        let Some(first) = spare.first() else {
            return Err(format!("every requested region is down ({})", down.join(", ")));
        };
        up.push(first);
    }
    if up.len() == 1 {
        let lane: Vec<Arc<str>> = up.iter().chain(spare.iter()).map(|r| Arc::from(*r)).collect();
        return Ok(vec![lane]);
    }
    Ok(up.iter().map(|r| vec![Arc::from(*r)]).collect())
}

/// Runs one job (not its fallbacks) in its regions.
pub(crate) async fn run_regions(
    shared: &Arc<Shared>,
    record: &Arc<JobRecord>,
    job: &Job,
    path: &Arc<str>,
    mut permit: Option<Permit>,
) -> Outcome {
    let host = match url::Url::parse(&job.url).ok().as_ref().and_then(host_key) {
        Some(host) => host,
        None => return Outcome::error(format!("{path}.url: not an absolute URL with a host")),
    };
    let lanes = match plan_regions(shared, job) {
        Ok(lanes) => lanes,
        Err(reason) => {
            record.state().detail().events.push(format!("{path}: {reason}"));
            return Outcome::error(reason);
        }
    };
    if let Some(at) = job.retry_at.filter(|_| permit.is_none()) {
        let wait = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        // tokio clamps a sleep past its horizon; this never overflows.
        if !wait.is_zero() && !sleep_unless_stopping(shared, wait).await {
            return Outcome::stopped();
        }
    }
    if lanes.len() == 1 {
        let regions = lanes.into_iter().next().unwrap_or_default();
        return run_lane(shared, record, job, path, &host, &regions, permit, true).await;
    }
    let mut running: FuturesUnordered<_> =
        lanes.iter().map(|regions| run_lane(shared, record, job, path, &host, regions, permit.take(), false)).collect();
    let mut best: Option<Outcome> = None;
    while let Some(outcome) = running.next().await {
        if outcome.success && job.execution_mode == ExecutionMode::Race {
            // Dropping the other lanes cancels them; their in-flight attempts show as cancelled.
            return outcome;
        }
        if best.as_ref().is_none_or(|b| !b.success) {
            best = Some(outcome);
        }
    }
    best.unwrap_or_else(|| Outcome::error("no region ran"))
}

/// The retry policy of a job with the engine's defaults filled in.
struct Policy {
    max_retries: u32,
    max_reroutes: u32,
    retry_codes: Vec<u16>,
    reroute_codes: Vec<u16>,
}

impl Policy {
    fn of(job: &Job, regions: usize) -> Self {
        match &job.retry_policy {
            None => Self {
                max_retries: DEFAULT_MAX_RETRIES,
                max_reroutes: 0,
                retry_codes: DEFAULT_RETRY_CODES.to_vec(),
                reroute_codes: Vec::new(),
            },
            Some(policy) => Self {
                max_retries: policy.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
                max_reroutes: policy
                    .max_reroutes
                    .unwrap_or_else(|| u32::try_from(regions.saturating_sub(1)).unwrap_or(u32::MAX)),
                retry_codes: policy.retry_codes.clone(),
                reroute_codes: policy.reroute_codes.clone(),
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_lane(
    shared: &Arc<Shared>,
    record: &Arc<JobRecord>,
    job: &Job,
    path: &Arc<str>,
    host: &str,
    regions: &[Arc<str>],
    mut permit: Option<Permit>,
    may_reroute: bool,
) -> Outcome {
    let policy = Policy::of(job, regions.len());
    // Attempts made before a restart count against the policy (none for a new job).
    let earlier = record
        .state()
        .detail_ref()
        .map_or(0, |detail| detail.attempts.iter().filter(|attempt| attempt.job_path == *path).count());
    let (mut region_index, mut reroutes) = (0usize, 0u32);
    let mut retries = u32::try_from(earlier).unwrap_or(u32::MAX);
    loop {
        let Some(region) = regions.get(region_index) else {
            return Outcome::error("no region left");
        };
        let permit = match permit.take() {
            Some(permit) => permit,
            None => match acquire(shared, host).await {
                Some(permit) => permit,
                None => return Outcome::stopped(),
            },
        };
        let result = attempt(shared, record, job, path, region, permit).await;
        let code = result.outcome.code.unwrap_or(502);
        let decision = if result.outcome.success {
            AttemptOutcome::Success
        } else if may_reroute
            && policy.reroute_codes.contains(&code)
            && reroutes < policy.max_reroutes
            && region_index + 1 < regions.len()
        {
            AttemptOutcome::Reroute
        } else if policy.retry_codes.contains(&code) && retries < policy.max_retries {
            AttemptOutcome::Retry
        } else {
            AttemptOutcome::Failed
        };
        set_attempt_outcome(shared, record, result.index, decision);
        let backoff = (decision == AttemptOutcome::Retry).then(|| {
            let exponent = retries.min(20);
            let backoff =
                jittered(shared.config.retry_base.saturating_mul(1u32 << exponent), 0.2).min(shared.config.retry_max);
            let wait = match result.retry_after {
                Some(after) => backoff.max(after.min(shared.config.max_retry_after)),
                None => backoff,
            };
            // Saved with the job: after a restart the retry still waits until then.
            record.state().detail().due_at_ms = Some(now_ms().saturating_add(millis(wait)));
            wait
        });
        shared.persist(record).await;
        match decision {
            AttemptOutcome::Reroute => {
                reroutes += 1;
                region_index += 1;
            }
            AttemptOutcome::Retry => {
                retries = retries.saturating_add(1);
                if !sleep_unless_stopping(shared, backoff.unwrap_or_default()).await {
                    return Outcome::stopped();
                }
            }
            _ => return result.outcome,
        }
    }
}

struct AttemptResult {
    index: usize,
    outcome: Outcome,
    retry_after: Option<Duration>,
}

/// Marks an attempt cancelled if its future is dropped mid-flight (a race loser, a timeout).
struct InFlight<'a> {
    shared: &'a Shared,
    record: &'a JobRecord,
    index: usize,
    armed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed {
            set_attempt_outcome(self.shared, self.record, self.index, AttemptOutcome::Cancelled);
        }
    }
}

/// Sends `job`, following the redirects [`redirect::next_hop`] allows, all within `timeout`.
async fn send_following_redirects(
    shared: &Shared,
    job: &Job,
    job_id: &str,
    region: &str,
    timeout: Duration,
) -> Result<reqwest::Response, reqwest::Error> {
    let started = Instant::now();
    // reqwest parses the URL, so a bad one is its error like any other.
    let mut url = shared.http.request(job.method.clone(), &job.url).build()?.url().clone();
    let mut headers = std::borrow::Cow::Borrowed(&job.headers);
    let mut hops = 0;
    loop {
        let mut request = shared.http.request(job.method.clone(), url.clone());
        request = request.timeout(timeout.saturating_sub(started.elapsed()));
        for (name, value) in headers.iter() {
            request = request.header(name.as_str(), value.as_str());
        }
        request = request.header(JOB_ID_HEADER, job_id).header(REGION_HEADER, region);
        if let Some(body) = &job.body {
            request = request.body(body.clone());
        }
        let response = request.send().await?;
        if hops >= redirect::MAX_REDIRECTS {
            return Ok(response);
        }
        let Some(hop) = redirect::next_hop(response.status(), &job.method, &url, response.headers(), &shared.config)
        else {
            return Ok(response);
        };
        if hop.cross_origin {
            redirect::drop_credentials(headers.to_mut());
        }
        url = hop.url;
        hops += 1;
    }
}

/// Sleeps `wait`; `false` when the drain started first.
pub(crate) async fn sleep_unless_stopping(shared: &Shared, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = shared.stopping() => false,
    }
}

/// Records an attempt's outcome (in memory: the caller saves the job).
fn set_attempt_outcome(shared: &Shared, record: &JobRecord, index: usize, outcome: AttemptOutcome) {
    if let Some(attempt) = record.state().detail().attempts.get_mut(index) {
        attempt.outcome = outcome;
    }
    shared.metrics.attempt(outcome);
}

async fn attempt(
    shared: &Arc<Shared>,
    record: &Arc<JobRecord>,
    job: &Job,
    path: &Arc<str>,
    region: &Arc<str>,
    permit: Permit,
) -> AttemptResult {
    let started = Instant::now();
    let index = {
        let mut state = record.state();
        let attempts = &mut state.detail().attempts;
        attempts.push(AttemptRecord {
            job_path: Arc::clone(path),
            url: Arc::from(job.url.as_str()),
            region: Arc::clone(region),
            started_at_ms: now_ms(),
            latency_ms: None,
            status_code: None,
            error: None,
            outcome: AttemptOutcome::InFlight,
        });
        attempts.len() - 1
    };
    let span = tracing::debug_span!(
        target: TARGET_ENGINE,
        "attempt",
        attempt = index.saturating_add(1),
        region = &**region,
        status_code = tracing::field::Empty,
    );
    tracing::Instrument::instrument(send_attempt(shared, record, job, region, permit, index, started), span).await
}

/// The attempt `index` of `record`, in its span: sent, read, recorded.
async fn send_attempt(
    shared: &Arc<Shared>,
    record: &Arc<JobRecord>,
    job: &Job,
    region: &Arc<str>,
    permit: Permit,
    index: usize,
    started: Instant,
) -> AttemptResult {
    let mut guard = InFlight { shared, record, index, armed: true };
    // Saved before the request goes out: after a crash, the job shows the attempt whose
    // outcome nobody saw (and `resume` marks it interrupted).
    shared.persist(record).await;
    let timeout = shared.config.target_timeout;
    let sent = send_following_redirects(shared, job, record.id(), region, timeout).await;
    let (outcome, retry_after) = match sent {
        Ok(mut response) => {
            if let Some(pace) = permit.observe(response.headers()) {
                crate::replicas::share_pace(shared, permit.host(), pace);
            }
            let status = response.status();
            let headers = header_object(response.headers());
            let after = retry_after(response.headers());
            let cap = shared.config.max_response_bytes;
            let mut body = Vec::new();
            let mut read_error = None;
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        let room = cap.saturating_sub(body.len());
                        body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                        if chunk.len() > room {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        read_error = Some(format!("reading the body: {err}"));
                        break;
                    }
                }
            }
            let response = TargetResponse::new(status.as_u16(), headers, String::from_utf8_lossy(&body).into_owned());
            let outcome = Outcome {
                success: status.is_success() && read_error.is_none(),
                response: Some(response),
                error: read_error,
                code: Some(status.as_u16()),
                stopped: false,
            };
            (outcome, after)
        }
        Err(err) => {
            let (code, message) = if err.is_timeout() {
                (504, format!("no answer within {} ms", timeout.as_millis()))
            } else {
                (502, format!("could not reach the target: {}", ErrorChain(&err)))
            };
            (Outcome { success: false, response: None, error: Some(message), code: Some(code), stopped: false }, None)
        }
    };
    drop(permit);
    guard.armed = false;
    {
        let mut state = record.state();
        if let Some(attempt) = state.detail().attempts.get_mut(index) {
            attempt.latency_ms = Some(millis(started.elapsed()));
            attempt.status_code = outcome.response.as_ref().map(|r| r.status_code);
            attempt.error.clone_from(&outcome.error);
        }
    }
    shared.metrics.attempt_took(started.elapsed());
    if let Some(code) = outcome.code {
        tracing::Span::current().record("status_code", code);
    }
    tracing::debug!(
        target: TARGET_ENGINE,
        job_id = record.id(),
        attempt = index.saturating_add(1),
        region = &**region,
        status_code = outcome.code,
        success = outcome.success,
        latency_ms = millis(started.elapsed()),
        "attempt ended"
    );
    AttemptResult { index, outcome, retry_after }
}
