//! The shared recording server (`ezthrottle-test-support`), answering like the proxy,
//! EZThrottle or a target, and clients aimed at it.

use ezthrottle_core::EZThrottle;
pub(crate) use ezthrottle_test_support::{Answer, TestServer, refused_url};

/// Clients of the client under test, aimed at a [`TestServer`].
pub(crate) trait Clients {
    /// A cloud client whose proxy is this server.
    fn cloud_client(&self) -> EZThrottle;
    /// A direct-mode client to this server.
    fn direct_client(&self) -> EZThrottle;
}

impl Clients for TestServer {
    fn cloud_client(&self) -> EZThrottle {
        EZThrottle::builder().api_key("ck_test_key").tracktags_url(&self.url).build().expect("client")
    }

    fn direct_client(&self) -> EZThrottle {
        EZThrottle::builder().direct(&self.url).api_key("ck_test_key").build().expect("client")
    }
}

/// The receipt EZThrottle answers a new job with.
pub(crate) fn receipt(job_id: &str) -> serde_json::Value {
    serde_json::json!({"job_id": job_id, "status": "queued", "idempotent_key": format!("key_{job_id}")})
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64
}
