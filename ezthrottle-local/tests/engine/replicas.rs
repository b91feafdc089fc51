//! Engine replicas on one PostgreSQL: one pace per host across replicas, a replica killed
//! with jobs in flight, a replica that loses its lease.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ezthrottle_core::protocol::Pace;
use ezthrottle_local::store::{JobStore, PostgresStore};
use ezthrottle_test_support::PostgresServer;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::*;

async fn shared_store(server: &PostgresServer) -> Arc<dyn JobStore> {
    Arc::new(PostgresStore::open(&server.url).await.expect("open the store"))
}

/// The most requests `hits` has in any window of `width` starting at one of them.
fn busiest_window(hits: &[Hit], width: Duration) -> usize {
    let mut times: Vec<Instant> = hits.iter().map(|hit| hit.at).collect();
    times.sort_unstable();
    let mut end = 0;
    let mut busiest = 0;
    for (start, first) in times.iter().enumerate() {
        while times.get(end).is_some_and(|at| at.duration_since(*first) < width) {
            end += 1;
        }
        busiest = busiest.max(end - start);
    }
    busiest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_keep_a_host_at_its_pace() {
    const JOBS: usize = 200;
    let server = PostgresServer::start().await;
    let target = Server::start().await;
    let pace = Pace::new(5.0, 5).expect("a pace");
    let replica = || async { start(fast_engine().pace(target.host(), pace).store(shared_store(&server).await)).await };
    let ((first, api_a), (second, api_b)) = (replica().await, replica().await);
    let submissions = (0..JOBS).map(|n| {
        let api = if n % 2 == 0 { api_a.clone() } else { api_b.clone() };
        let body = job(&target.url(&format!("/ok?n={n}")), json!({}));
        async move { api.submit_ok(&body).await }
    });
    let ids: Vec<String> = futures_util::stream::iter(submissions).buffered(16).collect().await;
    // Either replica answers for every job, whichever received it.
    let outcomes: HashSet<Value> =
        api_b.wait_all_terminal(&ids).await.iter().map(|job| job["status"].clone()).collect();
    assert_eq!(outcomes, HashSet::from([json!("success")]));
    let hits = target.hits("/ok");
    assert_eq!(hits.len(), JOBS, "every job ran once");
    let busiest = busiest_window(&hits, Duration::from_secs(4));
    assert!(busiest <= 22, "{busiest} requests in 4 s to a host paced at 5 RPS (at most 5.5 per second allowed)");
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_with_jobs_in_flight_has_them_finished_and_delivered_by_the_other() {
    const JOBS: usize = 60;
    let server = PostgresServer::start().await;
    let target = Server::start().await;
    let flags = ["--replica-lease", "2s", "--default-rps", "50", "--default-max-concurrent", "8"];
    let (mut one, api_one) = binary(&server.url, &flags).await;
    let (mut two, api_two) = binary(&server.url, &flags).await;
    let submissions = (0..JOBS).map(|n| {
        let api = if n % 2 == 0 { api_one.clone() } else { api_two.clone() };
        let body = job(&target.url(&format!("/slow/300?n={n}")), json!({"webhooks": [{"url": target.url("/hook")}]}));
        async move { api.submit_ok(&body).await }
    });
    let ids: Vec<String> = futures_util::stream::iter(submissions).buffered(16).collect().await;
    target.wait("a sixth of the jobs started", |hits| hits.len() >= JOBS / 6).await;

    // Kill the replica running the target's host: the one with jobs in flight.
    let runner = host_runner(&server.url).await;
    let (killed, survivor) = if Some(runner) == one.id() { (&mut one, api_two) } else { (&mut two, api_one) };
    signal(killed, "-KILL");
    tokio::time::timeout(DEADLINE, killed.wait()).await.expect("it dies").expect("wait");
    let started_before = target.hits("/slow/300").len();
    assert!(started_before < JOBS, "every job started before the kill: the test proves nothing");

    let done = survivor.wait_all_terminal(&ids).await;
    let outcomes: HashSet<&Value> = done.iter().map(|job| &job["status"]).collect();
    assert_eq!(outcomes, HashSet::from([&json!("success")]), "every job succeeds on the survivor");
    let interrupted = done.iter().filter(|job| job["attempts"][0]["outcome"] == "interrupted").count();
    assert!(interrupted > 0, "no attempt was in flight at the kill: the test proves nothing");
    let wanted: HashSet<String> = ids.iter().cloned().collect();
    let deadline = Instant::now() + DEADLINE;
    while !delivered(&target).is_superset(&wanted) {
        let missing = wanted.difference(&delivered(&target)).count();
        assert!(Instant::now() < deadline, "{missing} jobs never had a verified delivery");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    one.start_kill().ok();
    two.start_kill().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_retry_due_on_a_replica_killed_is_made_by_the_other() {
    let server = PostgresServer::start().await;
    let target = Server::start().await;
    let flags = ["--replica-lease", "2s"];
    let (mut one, api_one) = binary(&server.url, &flags).await;
    let (mut two, api_two) = binary(&server.url, &flags).await;
    // The receiver refuses the first two deliveries: the first retry is due 1 s later.
    let id =
        api_one.submit_ok(&job(&target.url("/ok?hooked"), json!({"webhooks": [{"url": target.url("/hook/2")}]}))).await;
    target.wait_hits("/hook/2", 1).await;
    let runner = host_runner(&server.url).await;
    let (killed, survivor) = if Some(runner) == one.id() { (&mut one, api_two) } else { (&mut two, api_one) };
    signal(killed, "-KILL");
    tokio::time::timeout(DEADLINE, killed.wait()).await.expect("it dies").expect("wait");
    let refused_before = target.hits("/hook/2").len();
    assert!(refused_before < 3, "the delivery succeeded before the kill: the test proves nothing");

    let done = survivor.wait_delivered(&id).await;
    assert_eq!(done["webhooks"][0]["outcome"], "delivered", "{done:#}");
    let hooks = target.hits("/hook/2");
    assert_eq!(hooks.len(), 3, "two refusals, then the delivery the survivor made: {done:#}");
    assert!(hooks.iter().all(|hit| hit.json()["job_id"] == json!(id)));
    assert_eq!(target.hits("/ok?hooked").len(), 1, "the job itself ran once: only its delivery was owed");
    one.start_kill().ok();
    two.start_kill().ok();
}

/// The process id of the replica holding the one host of the test.
async fn host_runner(url: &str) -> u32 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let rows = client.query("SELECT owner FROM ezt_hosts WHERE owner IS NOT NULL", &[]).await.expect("query");
        let owners: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        // A replica id is `r<pid>-<random>`.
        if let [owner] = owners.as_slice()
            && let Some(pid) = owner.strip_prefix('r').and_then(|rest| rest.split('-').next())
        {
            return pid.parse().expect("a pid");
        }
        assert!(Instant::now() < deadline, "no single replica holds the host: {owners:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_lease_is_taken_stops_itself() {
    let server = PostgresServer::start().await;
    let target = Server::start().await;
    let builder = fast_engine().replica_lease(Duration::from_secs(1)).store(shared_store(&server).await);
    let (engine, api) = start(builder).await;
    api.submit_ok(&job(&target.url("/ok?before"), json!({}))).await;
    // What another replica does to one it finds expired.
    let (client, connection) = tokio_postgres::connect(&server.url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client.execute("DELETE FROM ezt_replicas", &[]).await.expect("delete the lease");
    tokio::time::timeout(DEADLINE, engine.lease_lost()).await.expect("the replica notices within its lease");
    let (status, answer) = api.submit(&job(&target.url("/ok?after"), json!({}))).await;
    assert_eq!(status, 503, "a replica without a lease takes no job: {answer}");
}

/// Whether `hit` carries a valid signature by `secret`.
fn signed_by(hit: &Hit, secret: &str) -> bool {
    let verifier = ezthrottle_core::webhook::Verifier::new(secret).expect("a secret");
    hit.header("x-ezthrottle-signature").is_some_and(|header| verifier.verify(&hit.body, header).is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_set_on_one_replica_sign_the_deliveries_of_another() {
    const INITIAL: &str = "whsec_initial_replica_secret";
    const ROTATED: &str = "whsec_rotated_on_the_other_one";
    let server = PostgresServer::start().await;
    let target = Server::start().await;
    let server = &server;
    let replica = |poll| async move {
        let builder = fast_engine().webhook_secret(INITIAL).replica_poll(poll).store(shared_store(server).await);
        start(builder).await
    };
    // The second replica never looks for work: the first runs the host and delivers.
    let (running, api_running) = replica(Duration::from_millis(20)).await;
    let (idle, api_idle) = replica(Duration::from_secs(3_600)).await;
    let hooked =
        |n: usize| job(&target.url(&format!("/ok?n={n}")), json!({"webhooks": [{"url": target.url("/hook")}]}));
    api_running.wait_delivered(&api_idle.submit_ok(&hooked(0)).await).await;
    let first = target.wait_hits("/hook", 1).await;
    assert!(
        first.first().is_some_and(|hit| signed_by(hit, INITIAL)),
        "the first delivery is signed by the initial secret"
    );

    let body = json!({"primary_secret": ROTATED}).to_string();
    let bearer = format!("Bearer {KEY}");
    assert_eq!(api_idle.status_of("POST", "/api/v1/webhook-secrets", Some(&bearer), body).await, 200);
    // The running replica signs with the rotated secret once its cached copy is stale.
    let deadline = Instant::now() + DEADLINE;
    for n in 1.. {
        api_running.wait_delivered(&api_idle.submit_ok(&hooked(n)).await).await;
        let hooks = target.hits("/hook");
        if hooks.last().is_some_and(|hit| signed_by(hit, ROTATED)) {
            break;
        }
        assert!(Instant::now() < deadline, "no delivery was signed by the secret set on the other replica");
    }
    assert_eq!(api_running.status_of("GET", "/api/v1/webhook-secrets", Some(&bearer), String::new()).await, 200);
    running.shutdown().await;
    idle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pace_announced_to_one_replica_holds_on_the_one_that_takes_the_host_over() {
    let server = PostgresServer::start().await;
    let target = Server::start().await;
    let server = &server;
    let replica = || async move {
        start(fast_engine().default_pace(Pace::new(2.0, 1).expect("a pace")).store(shared_store(server).await)).await
    };
    let (first, api_first) = replica().await;
    api_first.wait_terminal(&api_first.submit_ok(&job(&target.url("/pace/20/4"), json!({}))).await).await;
    api_first.assert_pace(&target.host(), 20, 4).await;
    let (second, api_second) = replica().await;
    // The drain hands the host over; the second replica runs it from now on.
    first.shutdown().await;
    let ids = api_second.submit_all((0..3).map(|n| target.url(&format!("/ok?after={n}")))).await;
    api_second.wait_all_terminal(&ids).await;
    // `/ok` announces nothing: the second replica knows the pace from the store alone.
    api_second.assert_pace(&target.host(), 20, 4).await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_replica_streams_a_job_that_another_runs() {
    let server = PostgresServer::start().await;
    let target = Server::start().await;
    let server = &server;
    let replica = |poll| async move { start(fast_engine().replica_poll(poll).store(shared_store(server).await)).await };
    // The second replica runs nothing: the first holds every host.
    let (running, api_running) = replica(Duration::from_millis(20)).await;
    let (idle, _) = replica(Duration::from_secs(3_600)).await;
    let id = api_running.submit_ok(&job(&target.url("/slow/300"), json!({}))).await;
    let client = ezthrottle_core::EZThrottle::builder().api_key(KEY).direct(idle.base_url()).build().expect("a client");
    let events: Vec<_> =
        tokio::time::timeout(DEADLINE, client.job_events(&id).collect::<Vec<_>>()).await.expect("ends");
    let kinds: Vec<_> = events.iter().map(|event| event.as_ref().map(|event| event.kind.as_str()).ok()).collect();
    assert_eq!(kinds, [Some("queued"), Some("dispatching"), Some("completed")]);
    running.shutdown().await;
    idle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_runs_nothing_cancels_and_redelivers_the_jobs_another_runs() {
    let server = PostgresServer::start().await;
    let target = Server::start().await;
    let server = &server;
    let one_at_a_time = Pace::new(100.0, 1).expect("a pace");
    let replica = |poll| async move {
        start(fast_engine().default_pace(one_at_a_time).replica_poll(poll).store(shared_store(server).await)).await
    };
    let (running, api_running) = replica(Duration::from_millis(20)).await;
    let (idle, api_idle) = replica(Duration::from_secs(3_600)).await;
    let admin = ezthrottle_core::EZThrottle::builder().api_key(KEY).direct(idle.base_url()).build().expect("a client");
    let hooked = |path: &str| job(&target.url(path), json!({"webhooks": [{"url": target.url("/hook")}]}));

    let slow = api_idle.submit_ok(&hooked("/slow/1500")).await;
    let queued = api_idle.submit_ok(&hooked("/ok?cancelled")).await;
    target.wait_hits("/slow/1500", 1).await;
    let cancelled = admin.cancel_job(&queued).await.expect("cancelled by a replica that does not hold it");
    assert_eq!(cancelled.error.as_deref(), Some("cancelled"));
    api_running.wait_delivered(&slow).await;
    let after = api_idle.submit_ok(&job(&target.url("/ok?after"), json!({}))).await;
    api_running.wait_terminal(&after).await;
    assert!(target.hits("/ok?cancelled").is_empty(), "the holder ran a job cancelled on another replica");

    admin.redeliver_job(&slow).await.expect("redelivered by a replica that does not hold it");
    let hooks = target.wait_hits("/hook", 2).await;
    assert!(hooks.iter().all(|hit| hit.json()["job_id"] == json!(slow)), "only the redelivered job's webhook");
    assert_eq!(target.hits("/slow/1500").len(), 1, "the job itself did not run again");
    running.shutdown().await;
    idle.shutdown().await;
}
