//! `Debug` of every type that holds a request names its headers but never shows a
//! credential header's value or the body (issue 13, "Leaked").

use ezthrottle_core::Job;
use ezthrottle_core::protocol::ProxyEnvelope;

/// The values that must never appear in `Debug` output.
const SECRETS: [&str; 6] = ["sk_live_secret123", "session=abc", "key_456", "card=4242", "tt_789", "qs_secret_1"];
/// The header names that must appear.
const NAMES: [&str; 3] = ["Authorization", "Cookie", "X-Api-Key"];
const BODY: &str = "amount=100&card=4242";

const HEADERS: [(&str, &str); 4] = [
    ("Authorization", "Bearer sk_live_secret123"),
    ("Cookie", "session=abc"),
    ("X-Api-Key", "key_456"),
    ("Accept", "application/json"),
];

/// Checks `{:?}` and `{:#?}` of `value`.
fn assert_redacted(what: &str, value: &impl std::fmt::Debug) {
    for shown in [format!("{value:?}"), format!("{value:#?}")] {
        assert_shown_without_secrets(what, &shown);
    }
}

fn assert_shown_without_secrets(what: &str, shown: &str) {
    for secret in SECRETS {
        assert!(!shown.contains(secret), "{what} shows {secret:?}: {shown}");
    }
    for name in NAMES {
        assert!(
            shown.to_ascii_lowercase().contains(&name.to_ascii_lowercase()),
            "{what} hides the name {name}: {shown}"
        );
    }
    // Other fields stay visible.
    assert!(shown.contains("application/json"), "{what} hides a plain header value: {shown}");
    assert!(shown.contains("api.example.com"), "{what} hides the URL: {shown}");
}

fn job() -> Job {
    let mut job = Job::new("https://api.example.com/charge?q=tea&api_key=qs_secret_1");
    job.method = http::Method::POST;
    job.headers = HEADERS.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    job.body = Some(BODY.to_owned());
    job.webhooks.push(ezthrottle_core::Webhook::new("https://app.example.com/hook?token=tt_789"));
    job
}

#[test]
fn job_debug_hides_credentials_and_body() {
    let mut job = job();
    job.on_failure = Some(Box::new(self::job()));
    assert_redacted("Job", &job);
    let shown = format!("{job:?}");
    assert!(shown.contains(&format!("<{} bytes>", BODY.len())), "{shown}");
    assert!(shown.contains("charge?q=tea&api_key=[redacted]"), "the query's credential only: {shown}");
    // The wire form is untouched.
    let wire = serde_json::to_string(&job).unwrap();
    assert!(wire.contains("Bearer sk_live_secret123") && wire.contains(BODY), "{wire}");
}

#[test]
fn proxy_envelope_debug_hides_credentials_and_body() {
    let job = job();
    let mut envelope = ProxyEnvelope::new("https://api.example.com/api/v1/jobs", "POST", job.to_json());
    envelope.headers.extend(HEADERS.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    assert_redacted("ProxyEnvelope", &envelope);
}

#[cfg(feature = "client")]
mod client {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use bytes::Bytes;
    use ezthrottle_core::{AutoForwardError, ForwardToEZThrottle, Step, Trigger};

    use super::*;

    fn step() -> Step {
        HEADERS
            .iter()
            .fold(Step::new("https://api.example.com/charge"), |step, (name, value)| step.header(*name, *value))
            .method(http::Method::POST)
            .body(BODY)
            .header("X-Tenant-Token", "tt_789")
            .credential_header("x-tenant-token")
    }

    fn forward() -> ForwardToEZThrottle {
        ForwardToEZThrottle::new(step().fallback(step(), Trigger::on_error([500])).on_success(step()))
    }

    #[test]
    fn step_debug_hides_credentials_named_by_the_step_and_body() {
        let step = step().fallback(step(), Trigger::on_error([500]));
        assert_redacted("Step", &step);
        assert!(format!("{step:?}").contains("X-Tenant-Token"));
    }

    #[test]
    fn forward_debug_hides_credentials_and_body() {
        assert_redacted("ForwardToEZThrottle", &forward());
        assert_redacted("AutoForwardError", &AutoForwardError::Failed(forward()));
    }

    #[test]
    fn forward_from_an_http_request_hides_credentials_and_body() {
        let request = HEADERS
            .iter()
            .fold(http::Request::post("https://api.example.com/charge"), |request, (name, value)| {
                request.header(*name, *value)
            })
            .body(Bytes::from_static(BODY.as_bytes()))
            .unwrap();
        assert_redacted("ForwardToEZThrottle", &ForwardToEZThrottle::from_http_request(&request).unwrap());
    }

    #[test]
    fn unwrap_panic_message_has_no_token() {
        // What legacy code returns; `legacy().unwrap()` is how the issue saw the token.
        fn legacy() -> Result<(), ForwardToEZThrottle> {
            Err(forward())
        }
        let payload = catch_unwind(AssertUnwindSafe(|| legacy().unwrap())).unwrap_err();
        let message = payload.downcast::<String>().expect("unwrap panics with a String");
        assert!(message.contains("called `Result::unwrap()` on an `Err` value"), "{message}");
        assert_shown_without_secrets("unwrap()", &message);
    }
}

#[test]
fn a_target_response_hides_its_cookie_and_body() {
    let headers = [("Set-Cookie", "session=abc"), ("Content-Type", "application/json")]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let response = ezthrottle_core::protocol::TargetResponse::new(200, headers, BODY);
    let shown = format!("{response:?}");
    assert!(!shown.contains("session=abc") && !shown.contains("card=4242"), "{shown}");
    assert!(shown.contains("Set-Cookie") && shown.contains("application/json") && shown.contains("200"), "{shown}");
}
