//! Bounds on what a tenant's job may ask of the engine: how far ahead it is scheduled, how
//! long its timeouts run, how often it is retried and how many webhooks it fans out to.
//!
//! Without them one tenant could hold queue slots forever (`retry_at` in the year 9999),
//! keep timers alive for centuries, or turn one submission into thousands of retries and
//! deliveries (a reflection amplifier). Each bound is checked at every depth of the job
//! and a job past one is refused with a 400 naming the field.

use std::time::{Duration, SystemTime};

use ezthrottle_core::protocol::{Job, Trigger};

/// The bounds a job is checked against at submission (set with
/// [`EngineBuilder::job_limits`](crate::EngineBuilder::job_limits)).
///
/// ```
/// use std::time::Duration;
/// use ezthrottle_local::JobLimits;
///
/// let limits = JobLimits::default().max_webhooks(4).max_schedule_ahead(Duration::from_secs(3600));
/// assert_eq!(limits.webhooks(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    schedule_ahead: Duration,
    trigger_timeout: Duration,
    on_failure_timeout: Duration,
    retries: u32,
    reroutes: u32,
    webhooks: usize,
    nested_jobs: usize,
}

impl Default for JobLimits {
    /// `retry_at` at most 7 days ahead, a fallback's `timeout_ms` at most 1 hour,
    /// `on_failure_timeout_ms` at most 7 days, `max_retries` and `max_reroutes` at most 10,
    /// at most 10 webhooks per job, at most 32 jobs nested in one job (every
    /// `fallback_job`, `on_success` and `on_failure` at every depth).
    fn default() -> Self {
        Self {
            schedule_ahead: Duration::from_secs(7 * 24 * 3600),
            trigger_timeout: Duration::from_secs(3600),
            on_failure_timeout: Duration::from_secs(7 * 24 * 3600),
            retries: 10,
            reroutes: 10,
            webhooks: 10,
            nested_jobs: 32,
        }
    }
}

impl JobLimits {
    /// How far ahead `retry_at` may be.
    #[must_use]
    pub fn max_schedule_ahead(mut self, ahead: Duration) -> Self {
        self.schedule_ahead = ahead;
        self
    }

    /// The longest `trigger.timeout_ms` of a fallback job.
    #[must_use]
    pub fn max_trigger_timeout(mut self, timeout: Duration) -> Self {
        self.trigger_timeout = timeout;
        self
    }

    /// The longest `on_failure_timeout_ms`.
    #[must_use]
    pub fn max_on_failure_timeout(mut self, timeout: Duration) -> Self {
        self.on_failure_timeout = timeout;
        self
    }

    /// The largest `retry_policy.max_retries`.
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The largest `retry_policy.max_reroutes`.
    #[must_use]
    pub fn max_reroutes(mut self, reroutes: u32) -> Self {
        self.reroutes = reroutes;
        self
    }

    /// The most webhooks one job (each nested job counted on its own) may name.
    #[must_use]
    pub fn max_webhooks(mut self, webhooks: usize) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// The most jobs one job may nest: its `fallback_job`, `on_success` and `on_failure`,
    /// theirs, and so on. Each `on_success`/`on_failure` becomes a job of its own when its
    /// parent ends (never refused for queue space), so without this bound one submission
    /// could become thousands of jobs. (How deep jobs nest is bounded by the protocol,
    /// [`MAX_JOB_DEPTH`](ezthrottle_core::protocol::MAX_JOB_DEPTH), and the serialized size by
    /// [`EngineBuilder::max_body_bytes`](crate::EngineBuilder::max_body_bytes).)
    #[must_use]
    pub fn max_nested_jobs(mut self, jobs: usize) -> Self {
        self.nested_jobs = jobs;
        self
    }

    /// The most webhooks per job.
    #[must_use]
    pub fn webhooks(&self) -> usize {
        self.webhooks
    }

    /// Checks `job` and every job nested in it, at the time `now`.
    pub(crate) fn check(&self, job: &Job, now: SystemTime) -> Result<(), Exceeded> {
        let mut nested = 0usize;
        self.count_nested(job, "", &mut nested)?;
        self.check_at(job, now, "")
    }

    /// Counts the jobs nested in `job` (pre-order); names the first one past the bound.
    fn count_nested(&self, job: &Job, path: &str, nested: &mut usize) -> Result<(), Exceeded> {
        for (name, child) in
            [("fallback_job", &job.fallback_job), ("on_success", &job.on_success), ("on_failure", &job.on_failure)]
        {
            if let Some(child) = child {
                let at = format!("{path}{name}");
                *nested = nested.saturating_add(1);
                if *nested > self.nested_jobs {
                    let bound = self.nested_jobs;
                    return Err(Exceeded::new(at, format!("at most {bound} nested jobs per job (max_nested_jobs)")));
                }
                self.count_nested(child, &format!("{at}."), nested)?;
            }
        }
        Ok(())
    }

    fn check_at(&self, job: &Job, now: SystemTime, path: &str) -> Result<(), Exceeded> {
        let field = |name: &str| format!("{path}{name}");
        if let Some(at) = job.retry_at
            && at.duration_since(now).is_ok_and(|ahead| ahead > self.schedule_ahead)
        {
            return Err(Exceeded::new(field("retry_at"), format!("is more than {} ahead", human(self.schedule_ahead))));
        }
        if let Some(Trigger::OnTimeout { timeout }) = &job.trigger
            && *timeout > self.trigger_timeout
        {
            let bound = human(self.trigger_timeout);
            return Err(Exceeded::new(field("trigger.timeout_ms"), format!("must be at most {bound}")));
        }
        if let Some(timeout) = job.on_failure_timeout
            && timeout > self.on_failure_timeout
        {
            let bound = human(self.on_failure_timeout);
            return Err(Exceeded::new(field("on_failure_timeout_ms"), format!("must be at most {bound}")));
        }
        if let Some(policy) = &job.retry_policy {
            if policy.max_retries.is_some_and(|retries| retries > self.retries) {
                let bound = self.retries;
                return Err(Exceeded::new(field("retry_policy.max_retries"), format!("must be at most {bound}")));
            }
            if policy.max_reroutes.is_some_and(|reroutes| reroutes > self.reroutes) {
                let bound = self.reroutes;
                return Err(Exceeded::new(field("retry_policy.max_reroutes"), format!("must be at most {bound}")));
            }
        }
        if job.webhooks.len() > self.webhooks {
            let bound = self.webhooks;
            return Err(Exceeded::new(field("webhooks"), format!("at most {bound} webhooks per job")));
        }
        for (name, nested) in
            [("fallback_job", &job.fallback_job), ("on_success", &job.on_success), ("on_failure", &job.on_failure)]
        {
            if let Some(nested) = nested {
                self.check_at(nested, now, &format!("{path}{name}."))?;
            }
        }
        Ok(())
    }
}

/// A job past one of its [`JobLimits`]: the field (its path) and the bound.
#[derive(Debug)]
pub(crate) struct Exceeded {
    pub(crate) field: String,
    pub(crate) reason: String,
}

impl Exceeded {
    fn new(field: String, reason: String) -> Self {
        Self { field, reason }
    }
}

/// `7 days`, `1 hour`, `90 s`: a bound as the 400 names it.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s >= 3600 && s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        s => format!("{s} s"),
    }
}

fn plural(count: u64, unit: &str) -> String {
    if count == 1 { format!("1 {unit}") } else { format!("{count} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ezthrottle_core::protocol::{RetryPolicy, Webhook};

    fn refused(job: &Job) -> (String, String) {
        let err =
            JobLimits::default().check(job, SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)).unwrap_err();
        (err.field, err.reason)
    }

    #[test]
    fn each_bound_names_its_field_at_every_depth() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut far = Job::new("https://a.test");
        far.retry_at = Some(now + Duration::from_secs(8 * 24 * 3600));
        assert_eq!(refused(&far), ("retry_at".into(), "is more than 7 days ahead".into()));
        let mut parent = Job::new("https://a.test");
        parent.on_failure = Some(Box::new(far));
        assert_eq!(refused(&parent).0, "on_failure.retry_at");

        let mut slow = Job::new("https://b.test");
        slow.trigger = Some(Trigger::OnTimeout { timeout: Duration::from_secs(3601) });
        let mut parent = Job::new("https://a.test");
        parent.fallback_job = Some(Box::new(slow));
        assert_eq!(refused(&parent), ("fallback_job.trigger.timeout_ms".into(), "must be at most 1 hour".into()));

        let mut waits = Job::new("https://a.test");
        waits.on_failure = Some(Box::new(Job::new("https://c.test")));
        waits.on_failure_timeout = Some(Duration::from_secs(u64::MAX));
        assert_eq!(refused(&waits).0, "on_failure_timeout_ms");

        let mut retries = Job::new("https://a.test");
        retries.retry_policy = Some(RetryPolicy::new().max_retries(u32::MAX));
        assert_eq!(refused(&retries), ("retry_policy.max_retries".into(), "must be at most 10".into()));
        retries.retry_policy = Some(RetryPolicy::new().max_reroutes(11));
        assert_eq!(refused(&retries).0, "retry_policy.max_reroutes");

        let mut fan_out = Job::new("https://a.test");
        fan_out.webhooks = (0..11).map(|i| Webhook::new(format!("https://hook.test/{i}"))).collect();
        assert_eq!(refused(&fan_out), ("webhooks".into(), "at most 10 webhooks per job".into()));
    }

    #[test]
    fn jobs_within_the_bounds_pass_and_the_past_is_not_ahead() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut job = Job::new("https://a.test");
        job.retry_at = Some(now + Duration::from_secs(7 * 24 * 3600));
        job.webhooks = (0..10).map(|i| Webhook::new(format!("https://hook.test/{i}"))).collect();
        job.retry_policy = Some(RetryPolicy::new().max_retries(10).max_reroutes(10));
        assert!(JobLimits::default().check(&job, now).is_ok());
        job.retry_at = Some(SystemTime::UNIX_EPOCH);
        assert!(JobLimits::default().check(&job, now).is_ok());
        assert_eq!(human(Duration::from_secs(90)), "90 s");
        assert_eq!(human(Duration::from_secs(120)), "2 minutes");
    }
}
