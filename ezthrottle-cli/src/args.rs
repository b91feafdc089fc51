//! The command line: every command, flag and its `--help` text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ezthrottle_core::Method;
use ezthrottle_local::cli::{LocalArgs, parse_duration};

/// The variable holding the primary webhook secret (`submit --wait`, `sign`, `verify`,
/// `secrets`); the conformance app reads the same name.
pub(crate) const ENV_WEBHOOK_SECRET: &str = "EZTHROTTLE_WEBHOOK_SECRET";
/// The variable holding the secondary webhook secret (during a rotation); the conformance
/// app reads the same name.
pub(crate) const ENV_WEBHOOK_SECONDARY_SECRET: &str = "EZTHROTTLE_WEBHOOK_SECONDARY_SECRET";

/// `ezthrottle --help` (the long form; `-h` shows the first line).
const LONG_ABOUT: &str = "\
The EZThrottle command line: run a local engine, submit jobs, manage webhook secrets, \
sign and verify webhook signatures.

Output is plain text on stdout. With --json every command prints one JSON document on \
stdout instead, and errors are printed on stderr as {\"error\": \"...\", \"exit_code\": N}.

Exit codes:
  0  success (verify: the signature is valid)
  1  verify only: the signature did not verify (the reason is printed)
  2  usage error or invalid input, nothing was sent (bad flags, an invalid job, an unreadable file, input over 16 MiB,
     a secret on the command line, submit --wait in cloud mode with a loopback receiver)
  3  any other failure (an error answer such as 400, 429 or 5xx, the engine did not start)
  4  timed out: submit --wait: the job was accepted but its webhook did not arrive in time (or it was a duplicate);
     job --wait / --follow: the job did not finish in time; or a call to EZThrottle got no answer within --request-timeout
  5  not found: the job (job), or the webhook secrets (secrets get)
  6  EZThrottle unreachable: nothing was sent (connection refused, DNS, TLS)
  7  unauthorised: the API key was refused (401) or may not do this (403)";

/// The `ezthrottle` command.
#[derive(clap::Parser)]
#[command(name = "ezthrottle", version, about = "The EZThrottle command line.", long_about = LONG_ABOUT)]
pub(crate) struct Cli {
    /// Machine-readable output: one JSON document on stdout per command, errors as
    /// `{"error": "...", "exit_code": N}` on stderr.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// Log what the command does on stderr: -v at info, -vv at debug (the `ezthrottle`
    /// crates; RUST_LOG, when set, decides instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Run an EZThrottle-compatible engine on this machine (same flags as `ezthrottle-local`).
    ///
    /// Prints `listening on http://<addr>` as its first line on stdout (with --json,
    /// `{"listening_on": "http://<addr>"}`), then serves until SIGINT or SIGTERM.
    Local(LocalCommand),

    /// Submit a job, from flags or from a JSON file, and print its receipt.
    ///
    /// With --wait, a temporary webhook receiver on 127.0.0.1 is added to the job, and the
    /// delivered result is printed once its signature verifies with --webhook-secret. The
    /// engine must be able to reach the receiver: in direct mode (--ezthrottle-url) it
    /// listens on loopback; in cloud mode --receiver-url must be a public URL forwarding to
    /// it (a tunnel), or --wait is refused before anything is sent (exit 2).
    Submit(Box<SubmitArgs>),

    /// Show a job: status, every attempt, the target's answer, webhook deliveries and the
    /// jobs it spawned (`GET /api/v1/jobs/{id}`; the local engine reports all of it).
    ///
    /// With --wait, asks again (every 200 ms) until the job has finished.
    Job(JobArgs),

    /// Manage the account's webhook secrets (never printed in clear).
    Secrets(SecretsArgs),

    /// The account's jobs: list them, cancel a queued one, redeliver a finished one's
    /// webhooks (the engine's admin API; direct or cloud mode).
    Jobs(JobsArgs),

    /// Print the X-EZThrottle-Signature header value for the body read from stdin.
    Sign(SignArgs),

    /// Verify an X-EZThrottle-Signature header for the body read from stdin.
    ///
    /// Prints the reason: `valid_primary` or `valid_secondary` (exit 0), or
    /// `no_signature_header`, `missing_v1_signature`, `invalid_timestamp`,
    /// `timestamp_expired (diff=<d>s, tolerance=<t>s)` or `signature_mismatch` (exit 1).
    Verify(VerifyArgs),

    /// Print the completion script of a shell on stdout.
    ///
    /// For example `ezthrottle completions bash > ~/.local/share/bash-completion/completions/ezthrottle`,
    /// or `ezthrottle completions zsh > "${fpath[1]}/_ezthrottle"`.
    Completions(CompletionsArgs),
}

/// `ezthrottle completions`.
#[derive(clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// `ezthrottle local`.
#[derive(clap::Args)]
pub(crate) struct LocalCommand {
    #[command(flatten)]
    pub(crate) args: LocalArgs,
}

/// Where EZThrottle is and how to authenticate (submit and secrets).
///
/// `--ezthrottle-url` alone means direct mode (a local or self-hosted engine, API key
/// optional); with `--tracktags-url` it is the EZThrottle URL behind that proxy; neither
/// means EZThrottle cloud with the default URLs.
#[derive(clap::Args)]
pub(crate) struct Connection {
    /// API key, sent as `Authorization: Bearer <key>` (required for EZThrottle cloud).
    #[arg(long, value_name = "KEY", env = "EZTHROTTLE_API_KEY", hide_env_values = true, global = true)]
    pub(crate) api_key: Option<String>,

    /// EZThrottle URL. Without --tracktags-url: talk to this engine directly (e.g. an
    /// `ezthrottle local` at `http://127.0.0.1:8080`).
    #[arg(long, env = "EZTHROTTLE_URL", value_name = "URL", global = true)]
    pub(crate) ezthrottle_url: Option<String>,

    /// TrackTags proxy URL (cloud mode; default `https://tracktags.fly.dev`).
    #[arg(long, env = "EZTHROTTLE_TRACKTAGS_URL", value_name = "URL", global = true)]
    pub(crate) tracktags_url: Option<String>,

    /// Timeout of each call to EZThrottle, e.g. 10s, 1m (a bare number is seconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s", global = true)]
    pub(crate) request_timeout: Duration,
}

/// `ezthrottle submit`.
#[derive(clap::Args)]
pub(crate) struct SubmitArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,

    /// Target URL of the job (absolute http or https). Required unless --file.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    pub(crate) url: Option<String>,

    /// HTTP method of the job.
    #[arg(long, short = 'X', value_parser = parse_method, default_value = "GET", conflicts_with = "file")]
    pub(crate) method: Method,

    /// A request header, `Name: value`; repeatable.
    #[arg(
        long = "header",
        short = 'H',
        value_name = "NAME: VALUE",
        value_parser = parse_header,
        conflicts_with = "file"
    )]
    pub(crate) headers: Vec<(String, String)>,

    /// Request body, sent as is.
    #[arg(long, short = 'd', conflicts_with = "file")]
    pub(crate) body: Option<String>,

    /// Regions to run the job in, e.g. iad,lax (comma-separated or repeated).
    #[arg(long = "regions", value_name = "REGION", value_delimiter = ',', conflicts_with = "file")]
    pub(crate) regions: Vec<String>,

    /// Status codes EZThrottle retries, e.g. 429,503 (comma-separated or repeated).
    #[arg(long, value_name = "CODE", value_delimiter = ',', conflicts_with = "file")]
    pub(crate) retry_codes: Vec<u16>,

    /// A JSON job in the wire format (as the SDKs send it) instead of the flags above;
    /// `-` reads it from stdin. --webhook and --idempotent-key still apply.
    #[arg(long, short = 'f', value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,

    /// A webhook receiving the job's result; repeatable (added to the job's webhooks).
    #[arg(long = "webhook", value_name = "URL")]
    pub(crate) webhooks: Vec<String>,

    /// Idempotency key: a second submission with the same key is a duplicate of the first
    /// (replaces the file's key, if any).
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotent_key: Option<String>,

    /// Wait for the job's result on a temporary loopback webhook and print it.
    #[arg(long)]
    pub(crate) wait: bool,

    /// Where the --wait receiver listens (a fixed port for a tunnel to forward to).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", requires = "wait")]
    pub(crate) receiver_bind: SocketAddr,

    /// The URL EZThrottle delivers the --wait result to, instead of the receiver's own
    /// loopback address: a public URL (a tunnel such as cloudflared or ngrok) forwarding to
    /// --receiver-bind (path `/webhook`). Needed with --wait in cloud mode, where loopback is
    /// out of reach.
    #[arg(long, value_name = "URL", requires = "wait")]
    pub(crate) receiver_url: Option<String>,

    /// How long --wait waits for the result once the job is accepted, e.g. 30s, 2m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s", requires = "wait")]
    pub(crate) timeout: Duration,

    /// Secret the --wait receiver verifies deliveries with (the account's primary webhook
    /// secret). Required with --wait.
    #[arg(long, value_name = "SECRET", env = ENV_WEBHOOK_SECRET, hide_env_values = true)]
    pub(crate) webhook_secret: Option<String>,

    /// A second secret the --wait receiver also accepts (during a rotation).
    #[arg(long, value_name = "SECRET", env = ENV_WEBHOOK_SECONDARY_SECRET, hide_env_values = true)]
    pub(crate) webhook_secondary_secret: Option<String>,
}

/// `ezthrottle job`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("waiting").args(["wait", "follow"])))]
pub(crate) struct JobArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,

    /// The job's id, as the submission's receipt printed it.
    #[arg(value_name = "JOB_ID")]
    pub(crate) job_id: String,

    /// Ask again until the job has finished (success or failed).
    #[arg(long)]
    pub(crate) wait: bool,

    /// Print each event of the job as it happens (queued, dispatching, retrying, rerouted,
    /// position, then completed or failed), from its start; one JSON object a line with
    /// --json. Needs an engine URL (direct mode).
    #[arg(long, conflicts_with = "wait")]
    pub(crate) follow: bool,

    /// How long --wait or --follow waits for the job to finish, e.g. 30s, 2m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s", requires = "waiting")]
    pub(crate) timeout: Duration,
}

/// `ezthrottle jobs`.
#[derive(clap::Args)]
pub(crate) struct JobsArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,

    #[command(subcommand)]
    pub(crate) action: JobsAction,
}

/// The admin operations on jobs.
#[derive(clap::Subcommand)]
pub(crate) enum JobsAction {
    /// List jobs, oldest first, one page (or every page with --all).
    List {
        /// Only jobs in this status: queued, running, success, failed.
        #[arg(long, value_parser = ["queued", "running", "success", "failed"])]
        status: Option<String>,
        /// Only jobs of this target host, as `host:port`.
        #[arg(long)]
        host: Option<String>,
        /// Only jobs accepted in the last DURATION (e.g. 1h, 30m).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<Duration>,
        /// Jobs in a page (1 to 500; the engine's default is 50).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: Option<u16>,
        /// The page after this cursor (printed as `next_cursor`).
        #[arg(long, conflicts_with = "all")]
        cursor: Option<String>,
        /// Every page, one after the other.
        #[arg(long)]
        all: bool,
    },
    /// Cancel a queued job: it ends failed (`cancelled`), with no webhook and no child.
    Cancel {
        /// The job's id.
        #[arg(value_name = "JOB_ID")]
        job_id: String,
    },
    /// Deliver a finished job's webhooks again.
    Redeliver {
        /// The job's id.
        #[arg(value_name = "JOB_ID")]
        job_id: String,
    },
}

/// `ezthrottle secrets`.
#[derive(clap::Args)]
pub(crate) struct SecretsArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,

    #[command(subcommand)]
    pub(crate) action: SecretsAction,
}

/// The webhook-secret operations.
///
/// A secret is never taken from the command line (other users see it in the process list,
/// and it stays in the shell's history): `-` reads it from stdin, one a line, and without
/// the flag it comes from its environment variable.
#[derive(clap::Subcommand)]
pub(crate) enum SecretsAction {
    /// Set the webhook secrets (create or replace). Each must be at least 16 characters.
    ///
    /// The primary from `--primary -` (stdin) or EZTHROTTLE_WEBHOOK_SECRET, the secondary
    /// from `--secondary -` or EZTHROTTLE_WEBHOOK_SECONDARY_SECRET; --secret-stdin reads
    /// both from stdin, the primary on the first line, the secondary (if any) on the second.
    Create {
        /// `-`: read the secret every delivery is signed with from stdin (default:
        /// EZTHROTTLE_WEBHOOK_SECRET).
        #[arg(long, value_name = "-")]
        primary: Option<String>,
        /// `-`: read a second secret receivers may still hold (rotation) from stdin
        /// (default: EZTHROTTLE_WEBHOOK_SECONDARY_SECRET, if set).
        #[arg(long, value_name = "-")]
        secondary: Option<String>,
        /// Read the secrets from stdin: the primary on the first line, the secondary (if
        /// any) on the second.
        #[arg(long, conflicts_with_all = ["primary", "secondary"])]
        secret_stdin: bool,
    },
    /// Show the webhook secrets, masked.
    Get,
    /// Rotate: the new secret becomes the primary, the previous one the secondary, so
    /// receivers holding either keep verifying during the switch.
    ///
    /// The new secret from `--new -` (stdin) or EZTHROTTLE_WEBHOOK_SECRET, the previous from
    /// `--previous -` or EZTHROTTLE_WEBHOOK_SECONDARY_SECRET (the variables a receiver then
    /// verifies with); --secret-stdin reads both, the new one on the first line.
    Rotate {
        /// `-`: read the new primary secret from stdin (default: EZTHROTTLE_WEBHOOK_SECRET).
        #[arg(long, value_name = "-")]
        new: Option<String>,
        /// `-`: read the secret in use until now (kept as the secondary) from stdin
        /// (default: EZTHROTTLE_WEBHOOK_SECONDARY_SECRET).
        #[arg(long, value_name = "-")]
        previous: Option<String>,
        /// Read the secrets from stdin: the new one on the first line, the previous on the
        /// second.
        #[arg(long, conflicts_with_all = ["new", "previous"])]
        secret_stdin: bool,
    },
    /// Delete the webhook secrets (deliveries are then unsigned).
    Delete,
}

/// `ezthrottle sign`.
#[derive(clap::Args)]
pub(crate) struct SignArgs {
    /// The webhook secret to sign with.
    #[arg(long, value_name = "SECRET", env = ENV_WEBHOOK_SECRET, hide_env_values = true)]
    pub(crate) secret: String,

    /// The signed timestamp, Unix seconds (default: now).
    #[arg(long, value_name = "UNIX_SECS", allow_negative_numbers = true)]
    pub(crate) timestamp: Option<i64>,
}

/// `ezthrottle verify`.
#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    /// The primary webhook secret.
    #[arg(long, value_name = "SECRET", env = ENV_WEBHOOK_SECRET, hide_env_values = true)]
    pub(crate) secret: String,

    /// A secondary secret, also accepted (during a rotation).
    #[arg(long, value_name = "SECRET", env = ENV_WEBHOOK_SECONDARY_SECRET, hide_env_values = true)]
    pub(crate) secondary: Option<String>,

    /// The X-EZThrottle-Signature header value, `t=<unix secs>,v1=<hex>` (a leading
    /// `X-EZThrottle-Signature:` is ignored).
    #[arg(long, value_name = "VALUE", allow_hyphen_values = true)]
    pub(crate) header: String,

    /// How far the signed timestamp may be from now, in seconds, either way.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub(crate) tolerance: u64,

    /// Verify as if the time were this, Unix seconds (default: now).
    #[arg(long, value_name = "UNIX_SECS", allow_negative_numbers = true)]
    pub(crate) now: Option<i64>,
}

/// An HTTP method, any case.
fn parse_method(text: &str) -> Result<Method, String> {
    Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{text:?} is not an HTTP method"))
}

/// `Name: value`.
fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.trim().to_owned())),
        _ => Err(format!("expected `Name: value`, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_and_headers() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_header("Content-Type: application/json"),
            Ok(("Content-Type".into(), "application/json".into()))
        );
        assert_eq!(parse_header("X-A:b:c"), Ok(("X-A".into(), "b:c".into())));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": v").is_err());
        assert_eq!(parse_method("post"), Ok(Method::POST));
    }
}
