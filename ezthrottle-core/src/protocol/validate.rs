//! Checks a job before it is sent (client) or accepted (engine).

use http::{HeaderName, HeaderValue, Method};

use super::job::{Job, LOCAL_STEPS_METADATA_KEY, Trigger, Webhook};

/// How deeply jobs may nest (`fallback_job`, `on_success`, `on_failure`).
pub const MAX_JOB_DEPTH: usize = 32;

/// A job field that cannot be sent, with the path of the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
#[non_exhaustive]
pub struct InvalidJob {
    /// Path of the offending field, e.g. `fallback_job.trigger.codes`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidJob {
    /// `field` is invalid because of `reason` (for servers' and tools' own checks).
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// Methods a job may use.
pub const SUPPORTED_METHODS: [Method; 7] =
    [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS];

impl Job {
    /// Checks every field of the job and of its nested jobs.
    ///
    /// # Errors
    ///
    /// The first field that EZThrottle would refuse, with its path.
    pub fn validate(&self) -> Result<(), InvalidJob> {
        validate_job(self, &Path::root(), Role::Primary)
    }
}

/// Whether `url` is an absolute `http`/`https` URL; the reason otherwise.
pub fn check_absolute_url(url: &str) -> Result<(), String> {
    if url.trim().is_empty() {
        return Err("is required".into());
    }
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => Ok(()),
        Ok(parsed) => Err(format!("must be an http or https URL, not {:?}", parsed.scheme())),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            Err(format!("must be an absolute http(s) URL, got the relative {url:?}"))
        }
        Err(err) => Err(format!("is not a valid URL ({err})")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Primary,
    Fallback,
}

struct Path(String);

impl Path {
    fn root() -> Self {
        Path(String::new())
    }

    fn field(&self, name: &str) -> String {
        if self.0.is_empty() { name.to_owned() } else { format!("{}.{name}", self.0) }
    }

    fn child(&self, name: &str) -> Path {
        Path(self.field(name))
    }

    fn depth(&self) -> usize {
        if self.0.is_empty() { 0 } else { self.0.matches('.').count() + 1 }
    }

    fn invalid(&self, name: &str, reason: impl Into<String>) -> InvalidJob {
        InvalidJob { field: self.field(name), reason: reason.into() }
    }
}

/// A job carrying FRUGAL children ([`LOCAL_STEPS_METADATA_KEY`]) must deliver them: to
/// a webhook of its own, and not as a fallback (a fallback's result is delivered with its
/// primary's metadata).
fn validate_carried_steps(job: &Job, path: &Path, role: Role) -> Result<(), InvalidJob> {
    let Some(carried) = job.metadata.get(LOCAL_STEPS_METADATA_KEY) else { return Ok(()) };
    let field = super::local_steps_field();
    let Some(carried) = carried.as_object() else {
        return Err(path.invalid(&field, "must be an object of FRUGAL steps (on_success, on_failure)"));
    };
    if role == Role::Fallback {
        return Err(path.invalid(
            &field,
            "a fallback cannot have a FRUGAL child: its result is delivered with its primary's metadata, \
             so the child would never run; make the child PERFORMANCE or attach it to the primary",
        ));
    }
    if job.webhooks.is_empty() {
        return Err(path.invalid(
            &field,
            "a FRUGAL child of a job EZThrottle runs where the job's webhook is received, and the job has \
             no webhook; add one, or make the child PERFORMANCE",
        ));
    }
    if job.on_failure_timeout.is_some() && carried.contains_key("on_failure") {
        return Err(path.invalid(
            "on_failure_timeout_ms",
            "a FRUGAL on_failure runs when a failed delivery is received, never on a timeout; make it \
             PERFORMANCE to keep the timeout",
        ));
    }
    Ok(())
}

fn validate_job(job: &Job, path: &Path, role: Role) -> Result<(), InvalidJob> {
    if path.depth() > MAX_JOB_DEPTH {
        return Err(path.invalid("fallback_job", format!("jobs nest deeper than {MAX_JOB_DEPTH} levels")));
    }
    check_absolute_url(&job.url).map_err(|reason| path.invalid("url", reason))?;
    if !SUPPORTED_METHODS.iter().any(|m| m.as_str().eq_ignore_ascii_case(job.method.as_str())) {
        return Err(path.invalid("method", format!("unsupported method {:?}", job.method.as_str())));
    }
    for (name, value) in &job.headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(path.invalid("headers", format!("{name:?} is not a valid header name")));
        }
        if HeaderValue::from_str(value).is_err() {
            return Err(path.invalid("headers", format!("the value of {name:?} is not a valid header value")));
        }
        if super::headers::is_reserved_for_engine(name) {
            return Err(path.invalid("headers", format!("{name:?} is set by the engine; a job may not set it")));
        }
    }
    validate_webhooks(&job.webhooks, job.webhook_quorum, path)?;
    if job.regions.iter().any(|region| region.trim().is_empty()) {
        return Err(path.invalid("regions", "region names must not be empty"));
    }
    if let Some(policy) = &job.retry_policy {
        check_codes(&policy.retry_codes, &path.field("retry_policy.retry_codes"))?;
        check_codes(&policy.reroute_codes, &path.field("retry_policy.reroute_codes"))?;
    }
    match (role, &job.trigger) {
        (Role::Primary, Some(_)) => return Err(path.invalid("trigger", "is only valid on a fallback job")),
        (Role::Fallback, None) => {
            return Err(
                path.invalid("trigger", "a fallback job needs a trigger (on_error, on_timeout or {} for any failure)")
            );
        }
        (Role::Fallback, Some(Trigger::OnError { codes })) => {
            if codes.is_empty() {
                return Err(path.invalid("trigger.codes", "must list at least one status code"));
            }
            check_codes(codes, &path.field("trigger.codes"))?;
        }
        // Sent in whole milliseconds: under 1 ms would be sent as 0.
        (Role::Fallback, Some(Trigger::OnTimeout { timeout })) if super::time::duration_to_ms(*timeout) == 0 => {
            return Err(path.invalid("trigger.timeout_ms", "must be greater than 0"));
        }
        _ => {}
    }
    validate_carried_steps(job, path, role)?;
    if job.on_failure_timeout.is_some() && job.on_failure.is_none() {
        return Err(path.invalid("on_failure_timeout_ms", "is set but there is no on_failure job"));
    }
    if let Some(fallback) = &job.fallback_job {
        validate_job(fallback, &path.child("fallback_job"), Role::Fallback)?;
    }
    if let Some(child) = &job.on_success {
        validate_job(child, &path.child("on_success"), Role::Primary)?;
    }
    if let Some(child) = &job.on_failure {
        validate_job(child, &path.child("on_failure"), Role::Primary)?;
    }
    Ok(())
}

fn validate_webhooks(webhooks: &[Webhook], quorum: u32, path: &Path) -> Result<(), InvalidJob> {
    for (index, webhook) in webhooks.iter().enumerate() {
        check_absolute_url(&webhook.url).map_err(|reason| path.invalid(&format!("webhooks[{index}].url"), reason))?;
    }
    if quorum == 0 {
        return Err(path.invalid("webhook_quorum", "must be at least 1"));
    }
    let voters = webhooks.iter().filter(|webhook| webhook.has_quorum_vote).count();
    // The default quorum of 1 with no webhooks at all means "no delivery", which is fine.
    let no_delivery = webhooks.is_empty() && quorum == 1;
    if !no_delivery && quorum as usize > voters {
        return Err(
            path.invalid("webhook_quorum", format!("{quorum} is larger than the number of voting webhooks ({voters})"))
        );
    }
    Ok(())
}

fn check_codes(codes: &[u16], field: &str) -> Result<(), InvalidJob> {
    match codes.iter().find(|code| !(100..=599).contains(*code)) {
        Some(code) => Err(InvalidJob { field: field.to_owned(), reason: format!("{code} is not an HTTP status code") }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Webhook;

    fn field_of(job: &Job) -> String {
        job.validate().expect_err("job should be invalid").field
    }

    #[test]
    fn a_plain_job_is_valid() {
        assert_eq!(Job::new("https://api.example.com/x").validate(), Ok(()));
    }

    #[test]
    fn missing_and_relative_urls_are_refused() {
        assert_eq!(field_of(&Job::new("")), "url");
        let err = Job::new("/relative").validate().expect_err("relative");
        assert!(err.reason.contains("relative"), "{err}");
        assert_eq!(field_of(&Job::new("ftp://host/x")), "url");
    }

    #[test]
    fn quorum_larger_than_voters_is_refused() {
        let mut job = Job::new("https://a.example");
        job.webhooks =
            vec![Webhook::new("https://hook.example"), Webhook::new("https://b.example").has_quorum_vote(false)];
        job.webhook_quorum = 2;
        let err = job.validate().expect_err("quorum");
        assert_eq!(err.field, "webhook_quorum");
        assert!(err.reason.contains("(1)"), "{err}");
        job.webhook_quorum = 1;
        assert_eq!(job.validate(), Ok(()));
    }

    #[test]
    fn nested_paths_are_reported() {
        let mut fallback = Job::new("https://fallback.example");
        fallback.trigger = Some(Trigger::on_error([700]));
        let mut job = Job::new("https://a.example");
        job.fallback_job = Some(Box::new(fallback));
        assert_eq!(field_of(&job), "fallback_job.trigger.codes");

        let mut child = Job::new("relative");
        child.idempotent_key = Some("k".into());
        let mut job = Job::new("https://a.example");
        job.on_success = Some(Box::new(child));
        assert_eq!(field_of(&job), "on_success.url");
    }

    #[test]
    fn triggers_belong_to_fallbacks_only() {
        let mut job = Job::new("https://a.example");
        job.trigger = Some(Trigger::on_timeout(std::time::Duration::from_millis(5)));
        assert_eq!(field_of(&job), "trigger");
        let mut job = Job::new("https://a.example");
        job.fallback_job = Some(Box::new(Job::new("https://b.example")));
        assert_eq!(field_of(&job), "fallback_job.trigger");
    }

    #[test]
    fn unsupported_methods_and_bad_headers_are_refused() {
        let mut job = Job::new("https://a.example");
        job.method = Method::from_bytes(b"BREW").expect("token");
        assert_eq!(field_of(&job), "method");
        let mut job = Job::new("https://a.example");
        job.headers.insert("bad header".into(), "v".into());
        assert_eq!(field_of(&job), "headers");
    }

    #[test]
    fn headers_the_engine_sets_are_refused_at_every_depth() {
        for name in
            ["Host", "content-length", "Transfer-Encoding", "connection", "X-EZThrottle-Job-Id", "x-ezthrottle-x"]
        {
            let mut job = Job::new("https://a.example");
            job.headers.insert(name.into(), "1".into());
            let err = job.validate().unwrap_err();
            assert_eq!(err.field, "headers", "{name}");
            assert!(err.reason.contains("set by the engine"), "{name}: {}", err.reason);
            let mut parent = Job::new("https://a.example");
            parent.on_success = Some(Box::new(job));
            assert_eq!(field_of(&parent), "on_success.headers", "{name}");
        }
        let mut job = Job::new("https://a.example");
        job.headers.insert("x-ezthrottlex".into(), "1".into());
        job.headers.insert("authorization".into(), "Bearer t".into());
        assert!(job.validate().is_ok());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut job = Job::new("https://a.example");
        for _ in 0..40 {
            let mut parent = Job::new("https://a.example");
            parent.on_success = Some(Box::new(job));
            job = parent;
        }
        let err = job.validate().expect_err("too deep");
        assert!(err.reason.contains("deeper"), "{err}");
    }
}
