//! `ezthrottle jobs list | cancel | redeliver`.

use std::fmt::Write as _;
use std::time::SystemTime;

use ezthrottle_core::JobFilter;
use ezthrottle_core::protocol::{JobSnapshot, JobStatus};
use serde_json::json;

use crate::args::{JobsAction, JobsArgs};
use crate::output::{CliError, Output, Status};

/// Most pages `list --all` reads (500 jobs each): a bound on a server that never ends.
const MAX_PAGES: usize = 10_000;

pub(crate) async fn run(args: &JobsArgs, out: Output) -> Result<Status, CliError> {
    let client = args.connection.client()?;
    match &args.action {
        JobsAction::List { status, host, since, limit, cursor, all } => {
            let mut filter = JobFilter::new();
            if let Some(status) = status {
                filter = filter.status(JobStatus::from_name(status));
            }
            if let Some(host) = host {
                filter = filter.host(host.clone());
            }
            if let Some(since) = since {
                filter = filter.accepted(SystemTime::now().checked_sub(*since), None);
            }
            if let Some(limit) = limit {
                filter = filter.limit(usize::from(*limit));
            }
            if let Some(cursor) = cursor {
                filter = filter.cursor(cursor.clone());
            }
            let mut jobs = Vec::new();
            let mut next = None;
            for _ in 0..MAX_PAGES {
                let page = client.list_jobs(&filter).await?;
                jobs.extend(page.jobs);
                next = page.next_cursor;
                match (&next, all) {
                    (Some(cursor), true) => filter = filter.cursor(cursor.clone()),
                    _ => break,
                }
            }
            let value = json!({"jobs": jobs, "next_cursor": next});
            out.print(&describe_list(&jobs, next.as_deref()), &value);
        }
        JobsAction::Cancel { job_id } => {
            let job = client.cancel_job(job_id).await?;
            let value = serde_json::to_value(&job).unwrap_or_default();
            out.print(&format!("job {}: cancelled", job.job_id), &value);
        }
        JobsAction::Redeliver { job_id } => {
            client.redeliver_job(job_id).await?;
            out.print(
                &format!("job {job_id}: webhooks delivered again"),
                &json!({"job_id": job_id, "redelivered": true}),
            );
        }
    }
    Ok(Status::Ok)
}

/// One job a line: id, status, method and URL host; then the cursor of the next page.
fn describe_list(jobs: &[JobSnapshot], next: Option<&str>) -> String {
    let mut text = String::new();
    for job in jobs {
        let host = ezthrottle_core::telemetry::host_of(&job.url);
        let _ = writeln!(text, "{}  {:<8} {} {host}", job.job_id, job.status.as_str(), job.method);
    }
    if jobs.is_empty() {
        text.push_str("no jobs\n");
    }
    if let Some(next) = next {
        let _ = writeln!(text, "next page: --cursor {next}");
    }
    text
}
