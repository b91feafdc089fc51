//! `ezthrottle job <JOB_ID> [--wait | --follow]`.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use ezthrottle_core::protocol::time::to_unix_ms;
use ezthrottle_core::protocol::{JobEvent, JobSnapshot};
use futures_util::StreamExt as _;
use tokio::time::Instant;

use crate::args::JobArgs;
use crate::output::{CliError, Output, Status};
use crate::progress::Progress;

/// How often `--wait` asks again.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// The longest wait an `Instant` is asked to represent.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Prints the job; with `--wait`, once it has finished.
pub(crate) async fn run(args: &JobArgs, out: Output) -> Result<Status, CliError> {
    let client = args.connection.client()?;
    let start = Instant::now();
    // Checked: `--timeout 1000000y` waits as long as an `Instant` can say, never panics.
    let deadline = start.checked_add(args.timeout).or_else(|| start.checked_add(FAR_FUTURE)).unwrap_or(start);
    if args.follow {
        return follow(&client, args, deadline, out).await;
    }
    let progress = args.wait.then(|| Progress::start(format!("job {}", args.job_id), "asking"));
    let snapshot = loop {
        let snapshot = client.get_job(&args.job_id).await?;
        if let Some(progress) = &progress {
            progress.set(snapshot.status.to_string());
        }
        tracing::debug!(job_id = %snapshot.job_id, status = %snapshot.status, "job asked for");
        if !args.wait || snapshot.is_finished() {
            break snapshot;
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(CliError::timed_out(format!(
                "job {} is still {} after {}",
                snapshot.job_id,
                snapshot.status,
                humantime::format_duration(args.timeout)
            )));
        }
        // The last look is at the deadline itself, so "still running after T" is true.
        tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
    };
    drop(progress);
    let value = serde_json::to_value(&snapshot)
        .map_err(|err| CliError::failed(format!("cannot print the job as JSON: {err}")))?;
    out.print(&describe(&snapshot), &value);
    Ok(Status::Ok)
}

/// Prints each event of the job until its end (or the deadline).
async fn follow(
    client: &ezthrottle_core::EZThrottle,
    args: &JobArgs,
    deadline: Instant,
    out: Output,
) -> Result<Status, CliError> {
    let mut events = client.job_events(&args.job_id);
    let progress = Progress::start(format!("job {}", args.job_id), "connecting");
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => {
                return Err(CliError::timed_out(format!(
                    "job {} had not finished after {}",
                    args.job_id,
                    humantime::format_duration(args.timeout)
                )));
            }
            Ok(None) => return Ok(Status::Ok),
            Ok(Some(event)) => {
                let event = event?;
                progress.set(event.kind.as_str());
                tracing::debug!(job_id = %args.job_id, event = event.kind.as_str(), "job event");
                out.print(&describe_event(&event), &event_json(&event));
            }
        }
    }
}

/// One event as JSON: its data, with its `id` and `event` name.
fn event_json(event: &JobEvent) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("event".into(), event.kind.as_str().into());
        if let Some(id) = event.id {
            object.insert("id".into(), id.into());
        }
    }
    value
}

/// One event in plain words: `dispatching  attempt 1 in iad`.
fn describe_event(event: &JobEvent) -> String {
    let mut text = format!("{:<12}", event.kind.as_str());
    if let Some(attempt) = event.attempt {
        let _ = write!(text, " attempt {attempt}");
    }
    if let Some(region) = &event.region {
        let _ = write!(text, " in {region}");
    }
    if let Some(position) = event.position {
        let _ = write!(text, " #{position} in its host's queue");
    }
    if let Some(code) = event.status_code {
        let _ = write!(text, " HTTP {code}");
    }
    if let Some(error) = &event.error {
        let _ = write!(text, " ({error})");
    }
    text.trim_end().to_owned()
}

/// The job in plain words, one fact a line.
fn describe(job: &JobSnapshot) -> String {
    let mut text = format!("job {}: {} ({} {})\n", job.job_id, job.status, job.method, job.url);
    if let Some(key) = &job.idempotent_key {
        let _ = writeln!(text, "  idempotent key: {key}");
    }
    let mut times = format!("  created {}", timestamp(to_unix_ms(job.created_at)));
    for (what, at) in [("started", job.started_at), ("finished", job.finished_at)] {
        if let Some(at) = at {
            let after = at.duration_since(job.created_at).unwrap_or_default();
            let _ = write!(times, ", {what} +{} ms", after.as_millis());
        }
    }
    let _ = writeln!(text, "{times}");
    if !job.attempts.is_empty() {
        let _ = writeln!(text, "  attempts:");
    }
    for attempt in &job.attempts {
        let answer = match (attempt.status_code, &attempt.error) {
            (Some(code), _) => code.to_string(),
            (None, Some(error)) => error.clone(),
            (None, None) => "-".to_owned(),
        };
        let latency = attempt.latency.map(|latency| format!("  {} ms", latency.as_millis())).unwrap_or_default();
        let _ = writeln!(
            text,
            "    {:>2}  {:<14} {:<6} {:<9} {answer}{latency}",
            attempt.attempt,
            attempt.job,
            attempt.region,
            attempt.outcome.as_str()
        );
    }
    if let Some(response) = &job.response {
        let _ = writeln!(text, "  response: {}, {} bytes", response.status_code, response.body.len());
    }
    if let Some(error) = &job.error {
        let _ = writeln!(text, "  error: {error}");
    }
    if !job.webhooks.is_empty() {
        let quorum = &job.webhook_quorum;
        let met = match quorum.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "pending",
        };
        let _ = writeln!(text, "  webhooks (quorum {} of {}: {met}):", quorum.required, quorum.voters);
    }
    for hook in &job.webhooks {
        let tries = hook.attempts.len();
        let last = hook.attempts.last().and_then(|a| a.status_code).map(|code| format!(", last {code}"));
        let _ = writeln!(
            text,
            "    {}  {} ({tries} {}{})",
            hook.url,
            hook.outcome.as_str(),
            if tries == 1 { "try" } else { "tries" },
            last.unwrap_or_default()
        );
    }
    for child in &job.children {
        let duplicate = if child.duplicate { " (duplicate)" } else { "" };
        let _ = writeln!(text, "  {} child: {}{duplicate}", child.relation.as_str(), child.job_id);
    }
    for event in &job.events {
        let _ = writeln!(text, "  event: {event}");
    }
    text
}

/// Unix milliseconds as an RFC 3339 time; as a number past what RFC 3339 can write (a
/// peer sends the value, and humantime's `Display` fails past year 9999).
fn timestamp(unix_ms: u64) -> String {
    const YEAR_10000_MS: u64 = 253_402_300_800_000;
    if unix_ms >= YEAR_10000_MS {
        return format!("{unix_ms} ms after the Unix epoch");
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_timestamp_prints() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(timestamp(u64::MAX), format!("{} ms after the Unix epoch", u64::MAX));
    }
}
