//! Per-target-host pacing: one FIFO lane and one dispatcher task per active host.
//!
//! A lane holds queued jobs as plain data (no task per queued job). Its dispatcher hands
//! out [`Permit`]s on a grid of `1 / rps` seconds, each slot late by a random 0–10 % of
//! the interval (so spacing varies ±10 % while the mean rate stays exact), and never more
//! than `max_concurrent` at once. The target's pacing headers change the lane's pace from
//! the next dispatch on. The dispatcher exits when its lane is empty.
//!
//! A lane nobody uses is dropped after the lane idle timeout ([`Lanes::evict_idle`]), so a
//! tenant naming a million hosts does not hold a million lanes: only a lane with nothing
//! queued, nothing in flight and no dispatcher, idle that long, goes (with it its announced
//! pace; a new lane starts at the configured pace).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use ezthrottle_core::protocol::{AnnouncedPace, Pace};

use crate::config::announced;
use crate::engine::Shared;
use crate::util::lock;

/// Something waiting in a lane.
pub(crate) enum Item {
    /// An accepted job, by id (its record waits in the store): started when its turn comes.
    Start {
        job_id: Box<str>,
        /// Its tenant, whose share of the queue the job gives back when it starts.
        tenant: Arc<str>,
    },
    /// A running job waiting to make another request to this host.
    Wait(oneshot::Sender<Permit>),
}

struct LaneState {
    ready: VecDeque<Item>,
    delayed: BTreeMap<(Instant, u64), Item>,
    seq: u64,
    queued_jobs: usize,
    pace: Pace,
    last_grid: Option<Instant>,
    lateness: f64,
    running: bool,
    /// Last enqueue or end of a request: when the lane became idle, once it is.
    last_active: Instant,
}

/// The queue and pace of one target host.
pub(crate) struct Lane {
    key: Arc<str>,
    state: Mutex<LaneState>,
    notify: Notify,
    in_flight: AtomicU32,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("key", &self.key).finish_non_exhaustive()
    }
}

/// What a lane looks like right now (for `/metrics`).
#[derive(Debug, Clone)]
pub(crate) struct LaneView {
    pub(crate) key: Arc<str>,
    pub(crate) depth: usize,
    pub(crate) in_flight: u32,
    pub(crate) pace: Pace,
}

/// The right to make one request to a host. Dropping it frees the concurrency slot.
pub(crate) struct Permit {
    lane: Arc<Lane>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").field("host", &self.lane.key).finish()
    }
}

impl Permit {
    /// The lane key (`host:port`) the permit is for.
    pub(crate) fn host(&self) -> &str {
        &self.lane.key
    }

    /// Applies the target's pacing headers (`X-Aqueduct-*` wins over `X-EZTHROTTLE-*`);
    /// answers the new pace when they changed it.
    pub(crate) fn observe(&self, headers: &HeaderMap) -> Option<Pace> {
        let update = AnnouncedPace::from_headers(headers);
        if update.is_empty() {
            return None;
        }
        let changed = {
            let mut state = lock(&self.lane.state);
            let pace = announced(state.pace, update);
            (pace != state.pace).then(|| {
                state.pace = pace;
                pace
            })
        };
        self.lane.notify.notify_one();
        changed
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.lane.state().last_active = Instant::now();
        self.lane.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.lane.notify.notify_one();
    }
}

/// Every lane, by host key.
#[derive(Debug)]
pub(crate) struct Lanes {
    lanes: RwLock<HashMap<Arc<str>, Arc<Lane>>>,
    default_pace: Pace,
    overrides: HashMap<String, Pace>,
    /// Paces other replicas of a shared store learned from targets: a lane made here
    /// starts with its host's.
    shared: RwLock<HashMap<Box<str>, Pace>>,
}

/// How far back in a lane a job's position is looked for.
const MAX_POSITION_SCAN: usize = 10_000;

/// Most paces learned from other replicas kept (one per host).
const MAX_SHARED_PACES: usize = 100_000;

/// The lane key of a URL: `host:port` (lower-case host, default port filled in).
pub(crate) use ezthrottle_core::protocol::lane_key_of_url as host_key;

impl Lanes {
    pub(crate) fn new(default_pace: Pace, overrides: HashMap<String, Pace>) -> Self {
        let overrides = overrides.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        Self { lanes: RwLock::new(HashMap::new()), default_pace, overrides, shared: RwLock::new(HashMap::new()) }
    }

    /// The lane for `key` (`host:port`), created on first use.
    pub(crate) fn lane(&self, key: &str) -> Arc<Lane> {
        if let Some(lane) = self.lanes.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(key) {
            return Arc::clone(lane);
        }
        let mut lanes = self.lanes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let pace = self.pace_for(key);
        Arc::clone(lanes.entry(Arc::from(key)).or_insert_with(|| {
            Arc::new(Lane {
                key: Arc::from(key),
                state: Mutex::new(LaneState {
                    ready: VecDeque::new(),
                    delayed: BTreeMap::new(),
                    seq: 0,
                    queued_jobs: 0,
                    pace,
                    last_grid: None,
                    lateness: 0.0,
                    running: false,
                    last_active: Instant::now(),
                }),
                notify: Notify::new(),
                in_flight: AtomicU32::new(0),
            })
        }))
    }

    fn pace_for(&self, key: &str) -> Pace {
        if let Some(pace) = self.shared.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(key) {
            return *pace;
        }
        let host = key.rsplit_once(':').map_or(key, |(host, _)| host);
        self.overrides.get(key).or_else(|| self.overrides.get(host)).copied().unwrap_or(self.default_pace)
    }

    /// Where the job `job_id` waits in the lane `key`: 1 when it is next. `None` when it
    /// is not queued here (or is further back than `MAX_POSITION_SCAN`: the scan holds the
    /// lane's lock).
    pub(crate) fn position(&self, key: &str, job_id: &str) -> Option<u64> {
        let lane = self.lanes.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).cloned()?;
        let state = lane.state();
        let index = state
            .ready
            .iter()
            .take(MAX_POSITION_SCAN)
            .position(|item| matches!(item, Item::Start { job_id: queued, .. } if &**queued == job_id))?;
        u64::try_from(index).ok().map(|index| index.saturating_add(1))
    }

    /// Whether a lane for `key` exists here.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.lanes.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(key)
    }

    /// The pace another replica learned for `key`: applied to its lane, and to the lane
    /// made for it later.
    pub(crate) fn adopt_pace(&self, key: &str, pace: Pace) {
        {
            let mut shared = self.shared.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if shared.len() < MAX_SHARED_PACES || shared.contains_key(key) {
                shared.insert(key.into(), pace);
            }
        }
        let lane = self.lanes.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).cloned();
        if let Some(lane) = lane {
            let changed = {
                let mut state = lane.state();
                std::mem::replace(&mut state.pace, pace) != pace
            };
            if changed {
                lane.notify.notify_one();
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<LaneView> {
        let lanes: Vec<Arc<Lane>> =
            self.lanes.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
        let mut views: Vec<LaneView> = lanes
            .iter()
            .map(|lane| {
                let state = lock(&lane.state);
                LaneView {
                    key: Arc::clone(&lane.key),
                    depth: state.ready.len() + state.delayed.len(),
                    in_flight: lane.in_flight.load(Ordering::Acquire),
                    pace: state.pace,
                }
            })
            .collect();
        views.sort_by(|a, b| a.key.cmp(&b.key));
        views
    }

    /// Drops the lanes idle for `idle` or longer; answers how many went.
    ///
    /// Under the write lock no one can take a new handle on a lane, so a lane whose only
    /// handle is the map's has no dispatcher, no permit out and no caller about to enqueue.
    pub(crate) fn evict_idle(&self, idle: Duration) -> usize {
        let mut lanes = self.lanes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = lanes.len();
        lanes.retain(|_, lane| {
            if Arc::strong_count(lane) > 1 || lane.in_flight.load(Ordering::Acquire) > 0 {
                return true;
            }
            let state = lane.state();
            state.running || !state.ready.is_empty() || !state.delayed.is_empty() || state.last_active.elapsed() < idle
        });
        before - lanes.len()
    }

    /// Wakes every dispatcher (used at shutdown).
    pub(crate) fn wake_all(&self) {
        for lane in self.lanes.read().unwrap_or_else(std::sync::PoisonError::into_inner).values() {
            lane.notify.notify_one();
        }
    }
}

impl Lane {
    fn state(&self) -> MutexGuard<'_, LaneState> {
        lock(&self.state)
    }
}

/// Puts `item` in `lane`, not to be dispatched before `not_before`.
pub(crate) fn enqueue(shared: &Arc<Shared>, lane: &Arc<Lane>, item: Item, not_before: Option<Instant>) {
    let spawn = {
        let mut state = lane.state();
        state.last_active = Instant::now();
        if matches!(item, Item::Start { .. }) {
            state.queued_jobs += 1;
        }
        let mut wake = false;
        match not_before.filter(|at| *at > Instant::now()) {
            Some(at) => {
                wake = state.delayed.first_key_value().is_none_or(|((first, _), _)| at < *first);
                let seq = state.seq;
                state.seq += 1;
                state.delayed.insert((at, seq), item);
            }
            None => {
                wake = wake || state.ready.is_empty();
                state.ready.push_back(item);
            }
        }
        if state.running {
            if wake {
                lane.notify.notify_one();
            }
            false
        } else {
            state.running = true;
            true
        }
    };
    if spawn {
        tokio::spawn(dispatch(Arc::clone(shared), Arc::clone(lane)));
    }
}

/// Waits for the right to make one request to the host of `key`.
///
/// `None` once the drain started: the caller stops.
pub(crate) async fn acquire(shared: &Arc<Shared>, key: &str) -> Option<Permit> {
    if shared.is_closed() {
        return None;
    }
    let lane = shared.lanes.lane(key);
    let (tx, rx) = oneshot::channel();
    enqueue(shared, &lane, Item::Wait(tx), None);
    rx.await.ok()
}

enum Step {
    Go(Item),
    Sleep(Option<Instant>),
    Exit,
}

fn interval(rps: f64) -> Duration {
    if rps.is_finite() { Duration::try_from_secs_f64(1.0 / rps).unwrap_or(Duration::ZERO) } else { Duration::ZERO }
}

fn next_step(lane: &Lane, closed: bool) -> Step {
    let mut state = lane.state();
    if closed {
        // Dropping the waiters answers their `acquire` with `None` (the job stops where
        // it was saved); the queued jobs stay in the store for the next start.
        state.ready.clear();
        state.delayed.clear();
        state.queued_jobs = 0;
        state.running = false;
        return Step::Exit;
    }
    let now = Instant::now();
    while let Some(entry) = state.delayed.first_entry() {
        if entry.key().0 > now {
            break;
        }
        let item = entry.remove();
        state.ready.push_back(item);
    }
    while matches!(state.ready.front(), Some(Item::Wait(tx)) if tx.is_closed()) {
        state.ready.pop_front();
    }
    if state.ready.is_empty() {
        return match state.delayed.first_key_value() {
            Some(((at, _), _)) => Step::Sleep(Some(*at)),
            None => {
                state.running = false;
                Step::Exit
            }
        };
    }
    if lane.in_flight.load(Ordering::Acquire) >= state.pace.max_concurrent() {
        return Step::Sleep(None);
    }
    let spacing = interval(state.pace.rps());
    let grid = match state.last_grid {
        Some(last) if !spacing.is_zero() => {
            let next = last + spacing;
            let at = next + spacing.mul_f64(state.lateness);
            if at > now {
                return Step::Sleep(Some(at));
            }
            // Behind by less than one interval: keep the grid (the mean rate stays exact);
            // further behind (the lane was idle or blocked): restart it now, no burst.
            if now.saturating_duration_since(next) < spacing { next } else { now }
        }
        _ => now,
    };
    let Some(item) = state.ready.pop_front() else { return Step::Sleep(None) };
    if matches!(item, Item::Start { .. }) {
        state.queued_jobs = state.queued_jobs.saturating_sub(1);
    }
    state.last_grid = Some(grid);
    state.lateness = fastrand::f64() * 0.1;
    lane.in_flight.fetch_add(1, Ordering::AcqRel);
    Step::Go(item)
}

async fn dispatch(shared: Arc<Shared>, lane: Arc<Lane>) {
    loop {
        match next_step(&lane, shared.is_closed()) {
            Step::Exit => return,
            Step::Go(item) => {
                let permit = Permit { lane: Arc::clone(&lane) };
                match item {
                    Item::Start { job_id, tenant } => crate::executor::start(&shared, job_id, tenant, permit),
                    Item::Wait(tx) => {
                        // A waiter that went away returns the permit by dropping it.
                        let _ = tx.send(permit);
                    }
                }
            }
            Step::Sleep(Some(at)) => {
                tokio::select! {
                    () = lane.notify.notified() => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            Step::Sleep(None) => lane.notify.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_from_other_replicas_are_kept_for_at_most_max_shared_paces_hosts() {
        let lanes = Lanes::new(Pace::default(), HashMap::new());
        let learned = Pace::new(3.0, 2).expect("a pace");
        for host in 0..MAX_SHARED_PACES {
            lanes.adopt_pace(&format!("host-{host}:443"), learned);
        }
        assert_eq!(lanes.pace_for("host-0:443"), learned);
        // One host past the cap is not kept: its lane starts at the configured pace.
        lanes.adopt_pace("past-the-cap:443", learned);
        assert_eq!(lanes.pace_for("past-the-cap:443"), Pace::default());
        // A host already kept still takes the newer pace.
        let newer = Pace::new(7.0, 1).expect("a pace");
        lanes.adopt_pace("host-0:443", newer);
        assert_eq!(lanes.pace_for("host-0:443"), newer);
        assert_eq!(lanes.shared.read().unwrap_or_else(std::sync::PoisonError::into_inner).len(), MAX_SHARED_PACES);
    }
}
