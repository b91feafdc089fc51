//! The store port: the contract suite against every store (one written here, outside the
//! crate), recovery after an abrupt stop, and the drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ezthrottle_core::Pace;
use ezthrottle_local::store::{
    Insert, JobQuery, JobStatus, JobStore, MemoryStore, SqliteStore, StoreFuture, StoredJob, StoredProgress,
    conformance,
};
use ezthrottle_test_support::TempDir;
use serde_json::json;

use crate::support::*;

/// A store written outside the crate: a [`MemoryStore`] that counts the writes (and whose
/// reads of one job can be made to fail), proving the trait can be implemented by users.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryStore,
    writes: AtomicUsize,
    reads_fail: std::sync::atomic::AtomicBool,
}

impl JobStore for CountingStore {
    fn insert_if_absent<'a>(&'a self, job: &'a StoredJob, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Insert> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.insert_if_absent(job, ttl, now)
    }
    fn find<'a>(&'a self, key: &'a str, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Option<StoredJob>> {
        self.inner.find(key, ttl, now)
    }
    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<StoredJob>> {
        if self.reads_fail.load(Ordering::Relaxed) {
            return Box::pin(std::future::ready(Err(ezthrottle_local::store::StoreError::new("switched off"))));
        }
        self.inner.get(job_id)
    }
    fn save<'a>(&'a self, job_id: &'a str, progress: &'a StoredProgress) -> StoreFuture<'a, ()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.save(job_id, progress)
    }
    fn save_if<'a>(
        &'a self,
        job_id: &'a str,
        progress: &'a StoredProgress,
        only_from: &'a [JobStatus],
    ) -> StoreFuture<'a, bool> {
        self.inner.save_if(job_id, progress, only_from)
    }
    fn list<'a>(&'a self, query: &'a JobQuery) -> StoreFuture<'a, Vec<StoredJob>> {
        self.inner.list(query)
    }
    fn unsettled(&self) -> StoreFuture<'_, Vec<StoredJob>> {
        self.inner.unsettled()
    }
    fn sweep(&self, now: SystemTime, ttl: Duration, retention: Duration) -> StoreFuture<'_, usize> {
        self.inner.sweep(now, ttl, retention)
    }
    fn count(&self) -> StoreFuture<'_, usize> {
        self.inner.count()
    }
    fn webhook_secrets<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        self.inner.webhook_secrets(tenant)
    }
    fn save_webhook_secrets<'a>(&'a self, tenant: &'a str, document: &'a Bytes) -> StoreFuture<'a, ()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.save_webhook_secrets(tenant, document)
    }
}

/// A store that binds every key again: the suite must catch it.
#[derive(Debug, Default)]
struct ForgetfulStore(MemoryStore);

impl JobStore for ForgetfulStore {
    fn insert_if_absent<'a>(&'a self, job: &'a StoredJob, _ttl: Duration, now: SystemTime) -> StoreFuture<'a, Insert> {
        self.0.insert_if_absent(job, Duration::ZERO, now)
    }
    fn find<'a>(&'a self, key: &'a str, ttl: Duration, now: SystemTime) -> StoreFuture<'a, Option<StoredJob>> {
        self.0.find(key, ttl, now)
    }
    fn get<'a>(&'a self, job_id: &'a str) -> StoreFuture<'a, Option<StoredJob>> {
        self.0.get(job_id)
    }
    fn save<'a>(&'a self, job_id: &'a str, progress: &'a StoredProgress) -> StoreFuture<'a, ()> {
        self.0.save(job_id, progress)
    }
    fn save_if<'a>(
        &'a self,
        job_id: &'a str,
        progress: &'a StoredProgress,
        only_from: &'a [JobStatus],
    ) -> StoreFuture<'a, bool> {
        self.0.save_if(job_id, progress, only_from)
    }
    fn list<'a>(&'a self, query: &'a JobQuery) -> StoreFuture<'a, Vec<StoredJob>> {
        self.0.list(query)
    }
    fn unsettled(&self) -> StoreFuture<'_, Vec<StoredJob>> {
        self.0.unsettled()
    }
    fn sweep(&self, now: SystemTime, ttl: Duration, retention: Duration) -> StoreFuture<'_, usize> {
        self.0.sweep(now, ttl, retention)
    }
    fn count(&self) -> StoreFuture<'_, usize> {
        self.0.count()
    }
    fn webhook_secrets<'a>(&'a self, tenant: &'a str) -> StoreFuture<'a, Option<Bytes>> {
        self.0.webhook_secrets(tenant)
    }
    fn save_webhook_secrets<'a>(&'a self, tenant: &'a str, document: &'a Bytes) -> StoreFuture<'a, ()> {
        self.0.save_webhook_secrets(tenant, document)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_keeps_the_contract() {
    conformance::check(&MemoryStore::new()).await.expect("MemoryStore");
    let dir = TempDir::new("conformance");
    let sqlite = SqliteStore::open(dir.join("jobs.sqlite3")).expect("open");
    conformance::check(&sqlite).await.expect("SqliteStore");
    let counting = CountingStore::default();
    conformance::check(&counting).await.expect("a store written outside the crate");
    assert!(counting.writes.load(Ordering::Relaxed) > 0);
    let broken = conformance::check(&ForgetfulStore::default()).await;
    assert!(broken.is_err(), "the suite passed a store that binds a live key twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_keeps_jobs_and_keys_across_reopening() {
    let dir = TempDir::new("reopen");
    let path = dir.join("jobs.sqlite3");
    let job = StoredJob {
        id: "job_1".into(),
        key: "tenant\nkey".into(),
        host: "api.example:443".into(),
        accepted_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        submission: "submission".into(),
        progress: StoredProgress {
            status: JobStatus::Queued,
            settled: false,
            finished_at: None,
            document: "progress".into(),
        },
    };
    let now = SystemTime::now();
    let store = SqliteStore::open(&path).expect("open");
    assert!(matches!(store.insert_if_absent(&job, Duration::from_secs(60), now).await, Ok(Insert::Inserted)));
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.get("job_1").await.expect("get"), Some(job.clone()));
    let repeat = StoredJob { id: "job_2".into(), ..job.clone() };
    let again = store.insert_if_absent(&repeat, Duration::from_secs(60), now);
    assert!(matches!(again.await, Ok(Insert::Duplicate(existing)) if existing.id == "job_1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the file holds credentials: {mode:o}");
    }
}

fn sqlite(path: &std::path::Path) -> Arc<dyn JobStore> {
    Arc::new(SqliteStore::open(path).expect("open the store"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_stopped_abruptly_resumes_its_jobs_on_the_same_store() {
    let dir = TempDir::new("resume");
    let path = dir.join("jobs.sqlite3");
    let target = Server::start().await;
    let (engine, api) = start(fast_engine().store(sqlite(&path))).await;
    let running = api
        .submit_ok(&job(
            &target.url("/slow/1500"),
            json!({"idempotent_key": "resume-running", "webhooks": [{"url": target.url("/hook")}]}),
        ))
        .await;
    let later = SystemTime::now() + Duration::from_millis(1500);
    let retry_at = later.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
    let queued = api
        .submit_ok(&job(&target.url("/ok?queued"), json!({"idempotent_key": "resume-queued", "retry_at": retry_at})))
        .await;
    target.wait_hits("/slow/1500", 1).await;
    // No drain: the tasks are dropped mid-attempt, as a crash would.
    drop(engine);

    let (engine, api) = start(fast_engine().store(sqlite(&path))).await;
    let done = api.wait_delivered(&running).await;
    assert_eq!(done["status"], "success", "{done:#}");
    let outcomes: Vec<&str> =
        done["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["interrupted", "success"], "{done:#}");
    assert!(done["events"].to_string().contains("resumed after an engine restart"), "{done:#}");
    assert_eq!(done["webhooks"][0]["outcome"], "delivered", "{done:#}");
    assert_eq!(target.hits("/slow/1500").len(), 2);
    let done = api.wait_terminal(&queued).await;
    assert_eq!(done["status"], "success", "{done:#}");
    // The keys survived: a repeat answers the original job.
    let (status, again) =
        api.submit(&job(&target.url("/slow/1500"), json!({"idempotent_key": "resume-running"}))).await;
    assert_eq!(
        (status, again["job_id"].as_str(), again["duplicate"].as_bool()),
        (200, Some(running.as_str()), Some(true))
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_finishes_running_attempts_refuses_submissions_and_keeps_the_queue() {
    let dir = TempDir::new("drain");
    let path = dir.join("jobs.sqlite3");
    let target = Server::start().await;
    let pace = Pace::new(100.0, 1).unwrap();
    let builder = || fast_engine().pace("127.0.0.1", pace).shutdown_grace(Duration::from_secs(10));
    let (engine, api) = start(builder().store(sqlite(&path))).await;
    let running =
        api.submit_ok(&job(&target.url("/slow/800"), json!({"webhooks": [{"url": target.url("/hook")}]}))).await;
    // One request in flight per host: this one waits for the first to end.
    let waiting = api.submit_ok(&job(&target.url("/ok?waiting"), json!({}))).await;
    target.wait_hits("/slow/800", 1).await;
    let drain = tokio::spawn(engine.shutdown());
    let refused = ezthrottle_test_support::poll("a 503 during the drain", || async {
        let response = api.submit_response(job(&target.url("/ok?late"), json!({})).to_string()).await;
        (response.status() == 503).then(|| response.headers().get("retry-after").cloned())
    })
    .await;
    assert!(refused.is_some(), "a 503 without Retry-After");
    tokio::time::timeout(Duration::from_secs(10), drain).await.expect("the drain ends within its grace").unwrap();
    assert!(target.hits("/ok?waiting").is_empty(), "a queued job started during the drain");
    assert_eq!(target.hits("/hook").len(), 1, "the running job's webhook was delivered during the drain");

    let (engine, api) = start(builder().store(sqlite(&path))).await;
    let done = api.job(&running).await;
    assert_eq!(done["status"], "success", "{done:#}");
    assert_eq!(done["attempts"].as_array().unwrap().len(), 1, "the attempt finished in the drain: {done:#}");
    assert_eq!(done["webhooks"][0]["outcome"], "delivered", "{done:#}");
    let done = api.wait_terminal(&waiting).await;
    assert_eq!(done["status"], "success", "{done:#}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_due_later_stays_due_later_across_a_restart() {
    let dir = TempDir::new("due");
    let path = dir.join("jobs.sqlite3");
    let target = Server::start().await;
    let backoff = Duration::from_millis(1500);
    let builder = || fast_engine().retry_backoff(backoff, backoff);
    let (engine, api) = start(builder().store(sqlite(&path))).await;
    let id = api
        .submit_ok(&job(&target.url("/status/503"), json!({"retry_policy": {"max_retries": 1, "retry_codes": [503]}})))
        .await;
    api.wait_job(&id, |job| job["attempts"][0]["outcome"] == "retry").await;
    drop(engine);

    let (engine, api) = start(builder().store(sqlite(&path))).await;
    let hits = target.wait_hits("/status/503", 2).await;
    let gap = hits[1].at.duration_since(hits[0].at);
    // The backoff is 1.5 s ± 20 %: the restart did not make the retry due at once.
    assert!(gap >= Duration::from_millis(1100), "retried {gap:?} after the first attempt");
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_due_later_stays_due_later_across_a_restart() {
    let dir = TempDir::new("redelivery");
    let path = dir.join("jobs.sqlite3");
    let target = Server::start().await;
    let builder = || fast_engine().webhook_retry(Duration::from_millis(1500), 3);
    let (engine, api) = start(builder().store(sqlite(&path))).await;
    // `/hook/1` answers 503 to the first delivery.
    let id = api.submit_ok(&job(&target.url("/ok"), json!({"webhooks": [{"url": target.url("/hook/1")}]}))).await;
    api.wait_job(&id, |job| job["webhooks"][0]["attempts"].as_array().is_some_and(|a| !a.is_empty())).await;
    drop(engine);

    let (engine, api) = start(builder().store(sqlite(&path))).await;
    let hits = target.wait_hits("/hook/1", 2).await;
    let gap = hits[1].at.duration_since(hits[0].at);
    // The first retry waits 1.5 s ± 10 %: the restart did not make it due at once.
    assert!(gap >= Duration::from_millis(1300), "redelivered {gap:?} after the first delivery");
    let done = api.wait_delivered(&id).await;
    assert_eq!(done["webhooks"][0]["outcome"], "delivered", "{done:#}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_timeout_deadline_is_kept_across_a_restart() {
    let dir = TempDir::new("on-timeout");
    let path = dir.join("jobs.sqlite3");
    let target = Server::start().await;
    let (engine, api) = start(fast_engine().store(sqlite(&path))).await;
    let fallback = json!({"url": target.url("/ok?fallback"), "trigger": {"type": "on_timeout", "timeout_ms": 2000}});
    let id = api.submit_ok(&job(&target.url("/slow/10000"), json!({"fallback_job": fallback}))).await;
    let first = target.wait_hits("/slow/10000", 1).await[0].at;
    drop(engine);
    // The engine is down for 1.2 s: the deadline (2 s after the first start) is not.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let (engine, api) = start(fast_engine().store(sqlite(&path))).await;
    let fell_back = target.wait_hits("/ok?fallback", 1).await[0].at;
    let after = fell_back.duration_since(first);
    assert!(after >= Duration::from_millis(1900), "the fallback came early: {after:?}");
    assert!(after < Duration::from_millis(2900), "the restart restarted the window: {after:?}");
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_set_or_deleted_through_the_api_survive_a_restart() {
    let dir = TempDir::new("secrets");
    let path = dir.join("jobs.sqlite3");
    let bearer = format!("Bearer {KEY}");
    let secrets_of = |api: Api| {
        let bearer = bearer.clone();
        async move { api.status_of("GET", "/api/v1/webhook-secrets", Some(&bearer), String::new()).await }
    };
    let (engine, api) = start(fast_engine().store(sqlite(&path))).await;
    assert_eq!(secrets_of(api.clone()).await, 404, "nothing configured yet");
    let body = json!({"primary_secret": "whsec_kept_across_restarts"}).to_string();
    assert_eq!(api.status_of("POST", "/api/v1/webhook-secrets", Some(&bearer), body).await, 200);
    engine.shutdown().await;

    let (engine, api) = start(fast_engine().store(sqlite(&path))).await;
    assert_eq!(secrets_of(api.clone()).await, 200, "the secrets set before the restart");
    assert_eq!(api.status_of("DELETE", "/api/v1/webhook-secrets", Some(&bearer), String::new()).await, 200);
    engine.shutdown().await;

    let (engine, api) = start(fast_engine().store(sqlite(&path))).await;
    assert_eq!(secrets_of(api).await, 404, "the deletion survived too");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_of_the_first_version_is_migrated_in_place() {
    let dir = TempDir::new("migrate");
    let path = dir.join("jobs.sqlite3");
    let old = rusqlite::Connection::open(&path).expect("create");
    old.execute_batch(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL, key TEXT NOT NULL, submission BLOB NOT NULL,
             settled INTEGER NOT NULL, finished_at_ms INTEGER, progress BLOB NOT NULL);
         CREATE TABLE bindings (key TEXT PRIMARY KEY NOT NULL, job_id TEXT NOT NULL, bound_at_ms INTEGER NOT NULL);
         INSERT INTO jobs VALUES ('job_old', 't\nk', x'01', 0, NULL, x'02');
         PRAGMA user_version = 1;",
    )
    .expect("the first version's schema");
    drop(old);
    let store = SqliteStore::open(&path).expect("migrate");
    let kept = store.get("job_old").await.expect("get").expect("the old job is kept");
    assert_eq!((kept.host.as_str(), &kept.submission[..]), ("", &[1u8][..]));
    store.save_webhook_secrets("t", &Bytes::from_static(b"doc")).await.expect("the new table is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_draining_or_while_the_store_fails_and_health_stays_200() {
    let target = Server::start().await;
    let store = Arc::new(CountingStore::default());
    let builder = fast_engine().store(Arc::clone(&store) as Arc<dyn JobStore>).shutdown_grace(Duration::from_secs(10));
    let (engine, api) = start(builder).await;
    let probe = |path: &'static str| {
        let api = api.clone();
        async move { api.status_of("GET", path, None, String::new()).await }
    };
    assert_eq!(probe("/ready").await, 200);
    store.reads_fail.store(true, Ordering::Relaxed);
    assert_eq!(probe("/ready").await, 503, "the store does not answer");
    assert_eq!(probe("/health").await, 200, "alive all the same");
    store.reads_fail.store(false, Ordering::Relaxed);
    assert_eq!(probe("/ready").await, 200);

    api.submit_ok(&job(&target.url("/slow/1500"), json!({}))).await;
    target.wait_hits("/slow/1500", 1).await;
    let drain = tokio::spawn(engine.shutdown());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while probe("/ready").await != 503 {
        assert!(tokio::time::Instant::now() < deadline, "still ready while draining");
        tokio::task::yield_now().await;
    }
    assert_eq!(probe("/health").await, 200, "a draining engine is alive");
    drain.await.expect("the drain");
}
