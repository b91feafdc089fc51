//! The tenant's admin calls: list jobs, cancel a queued one, redeliver a finished one's
//! webhooks (`docs/protocol.md` §6.1).

use std::time::SystemTime;

use http::{Method, StatusCode};

use super::{EZThrottle, check_job_id};
use crate::error::Error;
use crate::protocol::{JobList, JobSnapshot, JobStatus, paths};

/// Which jobs [`EZThrottle::list_jobs`] asks for: every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this host (`host:port`, as the engine's lanes name it).
    pub host: Option<String>,
    /// Only jobs accepted at or after this time.
    pub since: Option<SystemTime>,
    /// Only jobs accepted before this time.
    pub until: Option<SystemTime>,
    /// At most this many in the page (the engine's default is 50, its most 500).
    pub limit: Option<usize>,
    /// The page after this one: a [`JobList::next_cursor`].
    pub cursor: Option<String>,
}

impl JobFilter {
    /// No filter: the first page of every job.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only jobs in `status`.
    #[must_use]
    pub fn status(mut self, status: JobStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only jobs of `host` (`host:port`).
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Only jobs accepted in `[since, until)`.
    #[must_use]
    pub fn accepted(mut self, since: Option<SystemTime>, until: Option<SystemTime>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// At most `limit` jobs in the page.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page after `cursor` (a [`JobList::next_cursor`]).
    #[must_use]
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    fn query_string(&self) -> String {
        let ms = |at: SystemTime| crate::protocol::time::to_unix_ms(at).to_string();
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(status) = self.status {
            query.append_pair("status", status.as_str());
        }
        if let Some(host) = &self.host {
            query.append_pair("host", host);
        }
        if let Some(since) = self.since {
            query.append_pair("since", &ms(since));
        }
        if let Some(until) = self.until {
            query.append_pair("until", &ms(until));
        }
        if let Some(limit) = self.limit {
            query.append_pair("limit", &limit.to_string());
        }
        if let Some(cursor) = &self.cursor {
            query.append_pair("cursor", cursor);
        }
        query.finish()
    }
}

impl EZThrottle {
    /// A page of this account's jobs (`GET /api/v1/jobs`), oldest id first; ask for the
    /// next with [`JobFilter::cursor`] set to [`JobList::next_cursor`].
    ///
    /// # Errors
    ///
    /// The server's refusal (a 400 naming a filter it does not take), or the transport's.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<JobList, Error> {
        let query = filter.query_string();
        let path = if query.is_empty() { paths::JOBS.to_owned() } else { format!("{}?{query}", paths::JOBS) };
        self.call(Method::GET, &path, None).await?.success_json()
    }

    /// Cancels a queued job (`POST /api/v1/jobs/{id}/cancel`): it ends failed with the
    /// error `cancelled`, sends no webhook and starts no child. Answers the job as it now is.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`]; [`Error::Api`] with 409 when the job is no longer queued.
    pub async fn cancel_job(&self, job_id: &str) -> Result<JobSnapshot, Error> {
        check_job_id(job_id)?;
        let answer = self.call(Method::POST, &format!("{}/{job_id}/cancel", paths::JOBS), None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(Error::JobNotFound { job_id: job_id.to_owned() });
        }
        answer.success_json()
    }

    /// Delivers a finished job's webhooks again (`POST /api/v1/jobs/{id}/redeliver`), every
    /// one, with the retries of a first delivery. Returns once the engine took it up.
    ///
    /// # Errors
    ///
    /// [`Error::JobNotFound`]; [`Error::Api`] with 409 when the job has not finished, has
    /// no webhooks, or is still delivering.
    pub async fn redeliver_job(&self, job_id: &str) -> Result<(), Error> {
        check_job_id(job_id)?;
        let answer = self.call(Method::POST, &format!("{}/{job_id}/redeliver", paths::JOBS), None).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Err(Error::JobNotFound { job_id: job_id.to_owned() }),
            status if status.is_success() => Ok(()),
            _ => Err(answer.into_error()),
        }
    }
}
