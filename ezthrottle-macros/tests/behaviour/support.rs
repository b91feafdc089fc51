//! A loopback target (the shared recording server), an engine, and a refused port.

use ezthrottle::EZThrottle;
use ezthrottle_local::RunningEngine;
pub use ezthrottle_test_support::engine::unreachable_client;
use ezthrottle_test_support::{Answer, Recorded, RoutedServer, Routes, poll};

/// Whether the engine made a request (rather than the code under test).
pub trait ByEngine {
    fn by_engine(&self) -> bool;
}

impl ByEngine for Recorded {
    fn by_engine(&self) -> bool {
        self.headers.contains_key("x-ezthrottle-job-id")
    }
}

/// The loopback target. Routes (by path):
/// - `/limited/..`: 429 to the code under test, 200 to the engine (which sends `X-EZThrottle-Job-Id`);
/// - `/unavailable/..`: 503 to the code under test, 200 to the engine;
/// - `/missing`: 404;
/// - `/flaky`: 429 on the first call, then 200;
/// - `/refuses`: 429 on the first call, then 400;
/// - `/webhook`: 200 (records the payload).
pub type Target = RoutedServer<MacroTests>;

pub struct MacroTests;

impl Routes for MacroTests {
    fn answer(request: &Recorded) -> Answer {
        match (request.path.as_str(), request.nth) {
            ("/webhook", _) => Answer::text(200, "thanks"),
            ("/missing", _) => Answer::text(404, "no such thing"),
            ("/flaky" | "/refuses", 1) => Answer::text(429, "slow down"),
            ("/flaky", _) => Answer::text(200, "fine now"),
            ("/refuses", _) => Answer::text(400, "bad request"),
            _ if request.by_engine() => Answer::text(200, r#"{"ok":true}"#),
            (path, _) if path.starts_with("/unavailable") => Answer::text(503, "try later"),
            _ => Answer::text(429, "slow down"),
        }
    }
}

/// An open engine with no pacing, and a direct client to it.
pub async fn engine() -> (RunningEngine, EZThrottle) {
    let engine = ezthrottle_test_support::engine::fast().open().start().await.unwrap();
    let client = ezthrottle_test_support::engine::client(&engine);
    (engine, client)
}

/// `GET /api/v1/jobs/{id}` until the job ends (bounded).
pub async fn finished_job(engine: &RunningEngine, job_id: &str) -> serde_json::Value {
    let url = format!("{}/api/v1/jobs/{job_id}", engine.base_url());
    poll(&format!("job {job_id} to finish"), || async {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let job: serde_json::Value = serde_json::from_str(&text).unwrap();
        (job["status"] == "success" || job["status"] == "failed").then_some(job)
    })
    .await
}
