//! `GET /api/v1/jobs/{id}/events`: the history replayed to a late client, resumed after
//! `Last-Event-ID`, followed live; through `EZThrottle::job_events`.

use ezthrottle_core::EZThrottle;
use ezthrottle_core::protocol::{JobEvent, JobEventKind};
use futures_util::StreamExt as _;
use serde_json::json;

use crate::support::*;

fn client(api_base: &str) -> EZThrottle {
    EZThrottle::builder().api_key(KEY).direct(api_base).build().expect("a direct client")
}

fn summary(events: &[JobEvent]) -> Vec<(Option<u64>, JobEventKind, Option<String>)> {
    events.iter().map(|event| (event.id, event.kind, event.region.clone())).collect()
}

async fn all_events(client: &EZThrottle, id: &str) -> Vec<JobEvent> {
    let stream = client.job_events(id);
    let events: Vec<_> = tokio::time::timeout(DEADLINE, stream.collect::<Vec<_>>()).await.expect("the stream ends");
    events.into_iter().map(|event| event.expect("an event")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_retries_and_reroutes_streams_every_step_in_order_live_late_and_resumed() {
    let (target, engine, api) = target_and(fast_engine().region("iad").region("lax")).await;
    let client = client(&engine.base_url());
    let body = job(
        &target.url("/busy-then-fail-in/iad"),
        json!({"regions": ["iad"], "retry_policy": {"max_retries": 1, "retry_codes": [503], "max_reroutes": 1, "reroute_codes": [500]}}),
    );
    let id = api.submit_ok(&body).await;
    // Following from the start...
    let live = tokio::spawn({
        let (client, id) = (client.clone(), id.clone());
        async move { all_events(&client, &id).await }
    });
    let done = api.wait_terminal(&id).await;
    assert_eq!(done["status"], "success", "{done:#}");
    let mut live = live.await.expect("the live follower");
    // A follower that comes while the job waits hears its place in the queue (once per
    // change): not a step of the job.
    let positions: Vec<Option<u64>> =
        live.iter().filter(|event| event.kind == JobEventKind::Position).map(|event| event.position).collect();
    assert!(positions.windows(2).all(|pair| pair.first() != pair.get(1)), "positions repeat: {positions:?}");
    live.retain(|event| event.kind != JobEventKind::Position);
    let expected = vec![
        (Some(1), JobEventKind::Queued, None),
        (Some(2), JobEventKind::Dispatching, Some("iad".to_owned())),
        (Some(3), JobEventKind::Retrying, Some("iad".to_owned())),
        (Some(4), JobEventKind::Dispatching, Some("iad".to_owned())),
        (Some(5), JobEventKind::Rerouted, Some("iad".to_owned())),
        (Some(6), JobEventKind::Dispatching, Some("lax".to_owned())),
        (Some(8), JobEventKind::Completed, None),
    ];
    assert_eq!(summary(&live), expected, "followed live");
    assert_eq!(live.get(2).and_then(|event| event.status_code), Some(503), "the retry names the status that caused it");
    assert_eq!(live.get(4).and_then(|event| event.status_code), Some(500), "and so does the reroute");
    assert_eq!(live.last().and_then(|event| event.status_code), Some(200));
    // ...connecting after the end: the same history.
    assert_eq!(summary(&all_events(&client, &id).await), expected, "replayed to a late client");

    // A client that reconnects after event 3 gets what came after it, nothing before.
    let resumed = reqwest::Client::new()
        .get(format!("{}/api/v1/jobs/{id}/events", engine.base_url()))
        .bearer_auth(KEY)
        .header("last-event-id", "3")
        .send()
        .await
        .expect("an answer");
    assert_eq!(resumed.headers()["content-type"], "text/event-stream");
    let text = resumed.text().await.expect("the stream");
    let ids: Vec<&str> =
        text.lines().filter_map(|line| line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:"))).collect();
    assert_eq!(ids, ["4", "5", "6", "8"], "{text}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_refused_for_an_unknown_job_another_tenant_or_a_bad_last_event_id() {
    const OTHER: &str = "ck_live_other_tenant";
    let (target, engine, api) = target_and(fast_engine().api_key(OTHER)).await;
    let id = api.submit_ok(&job(&target.url("/ok"), json!({}))).await;
    let missing = client(&engine.base_url()).job_events("job_missing").next().await.expect("an item");
    assert!(matches!(missing, Err(ezthrottle_core::Error::JobNotFound { .. })), "{missing:?}");
    let other = EZThrottle::builder().api_key(OTHER).direct(engine.base_url()).build().expect("a client");
    let foreign = other.job_events(&id).next().await.expect("an item");
    assert!(matches!(foreign, Err(ezthrottle_core::Error::JobNotFound { .. })), "another tenant's job: {foreign:?}");
    let bad = reqwest::Client::new()
        .get(format!("{}/api/v1/jobs/{id}/events", engine.base_url()))
        .bearer_auth(KEY)
        .header("last-event-id", "three")
        .send()
        .await
        .expect("an answer");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("a body").contains("last-event-id"));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_hears_of_the_attempt_while_the_target_still_holds_it() {
    let (target, engine, api) = target_and(fast_engine()).await;
    let id = api.submit_ok(&job(&target.url("/slow/1500"), json!({}))).await;
    let mut events = client(&engine.base_url()).job_events(&id);
    let mut kinds = Vec::new();
    while let Some(event) = tokio::time::timeout(DEADLINE, events.next()).await.expect("in time") {
        let kind = event.expect("an event").kind;
        if kind == JobEventKind::Dispatching {
            assert_eq!(api.job(&id).await["status"], "running", "the event came while the attempt was under way");
        }
        kinds.push(kind);
    }
    assert_eq!(kinds, [JobEventKind::Queued, JobEventKind::Dispatching, JobEventKind::Completed]);
    engine.shutdown().await;
}

/// Opens the event stream of `id` (the answer's head; its body streams).
async fn open_stream(base: &str, id: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/jobs/{id}/events"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("an answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_event_streams_a_stream_is_refused_until_one_closes() {
    let (target, engine, api) = target_and(fast_engine().max_event_streams(2)).await;
    let base = engine.base_url();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3_600);
    let retry_at = later.duration_since(std::time::SystemTime::UNIX_EPOCH).expect("after 1970").as_millis() as u64;
    // Scheduled an hour ahead: it waits, and its streams stay open.
    let id = api.submit_ok(&job(&target.url("/ok"), json!({"retry_at": retry_at}))).await;
    let first = open_stream(&base, &id).await;
    let second = open_stream(&base, &id).await;
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let refused = open_stream(&base, &id).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let message = refused.text().await.expect("a body");
    assert!(message.contains("max_event_streams"), "{message}");
    // A stream the client closes frees its place.
    drop(first);
    let admitted = ezthrottle_test_support::poll("a stream admitted after one closed", || async {
        let answer = open_stream(&base, &id).await;
        (answer.status() == 200).then_some(answer)
    })
    .await;
    drop((second, admitted));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_at_its_lifetime_and_the_client_resumes_after_the_last_event() {
    let lifetime = std::time::Duration::from_secs(1);
    let (target, engine, api) = target_and(fast_engine().event_stream_lifetime(lifetime)).await;
    // The attempt takes 4 s: several lifetimes.
    let id = api.submit_ok(&job(&target.url("/slow/4000"), json!({}))).await;
    let raw = open_stream(&engine.base_url(), &id).await;
    let text = tokio::time::timeout(DEADLINE, raw.text()).await.expect("the engine ends the stream").expect("a body");
    assert!(text.contains("event: queued"), "{text}");
    assert!(!text.contains("event: completed"), "ended at its lifetime, before the job: {text}");
    // The client opens it again after the last event it saw, until the job's end.
    let events = all_events(&client(&engine.base_url()), &id).await;
    let kinds: Vec<JobEventKind> = events.iter().map(|event| event.kind).collect();
    assert_eq!(kinds, [JobEventKind::Queued, JobEventKind::Dispatching, JobEventKind::Completed]);
    assert_eq!(api.job(&id).await["status"], "success");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_streams_its_position_when_it_changes_not_at_every_read() {
    // One job every 100 s: the third one waits in the queue for the whole stream.
    let paced = ezthrottle_core::Pace::new(0.01, 1).expect("a pace");
    let lifetime = std::time::Duration::from_secs(2);
    let (target, engine, api) = target_and(fast_engine().default_pace(paced).event_stream_lifetime(lifetime)).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(api.submit_ok(&job(&target.url(&format!("/ok?n={n}")), json!({}))).await);
    }
    let waiting = ids.last().expect("three jobs");
    let raw = open_stream(&engine.base_url(), waiting).await;
    let text = tokio::time::timeout(DEADLINE, raw.text()).await.expect("ended at its lifetime").expect("a body");
    let positions = text.lines().filter(|line| line.trim() == "event: position" || line.trim() == "event:position");
    assert_eq!(positions.count(), 1, "one position while it does not move, over several reads: {text}");
    tokio::time::timeout(std::time::Duration::from_secs(1), engine.shutdown()).await.ok();
}
