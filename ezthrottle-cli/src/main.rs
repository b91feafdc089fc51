//! `ezthrottle`: the EZThrottle command line.
//!
//! ```sh
//! cargo install --path ezthrottle-cli   # from a checkout of the repository
//! ```
//!
//! It is a binary only (no library to `cargo add`) and has no Cargo features.
//!
//! ```text
//! ezthrottle local --open --webhook-secret local-secret-0123456789     # run an engine
//! ezthrottle submit --ezthrottle-url http://127.0.0.1:8080 --url https://api.example.com/x \
//!     --wait --webhook-secret local-secret-0123456789                  # submit, print the result
//! ezthrottle secrets get                                                 # masked secrets
//! ezthrottle sign --secret S < body.json                                 # X-EZThrottle-Signature value
//! ezthrottle verify --secret S --header 't=..,v1=..' < body.json         # valid_primary, exit 0
//! ```
//!
//! Commands:
//!
//! - `local`: the `ezthrottle-local` engine (same flags); prints `listening on http://<addr>`
//!   first and stops on SIGINT or SIGTERM.
//! - `submit`: a job from flags (`--url`, `--method`, `--header`, `--body`, `--webhook`,
//!   `--idempotent-key`, `--regions`, `--retry-codes`) or from a JSON file (`--file`, `-` for
//!   stdin); prints the receipt. `--wait` adds a temporary loopback webhook receiver, verifies
//!   deliveries with `--webhook-secret` and prints the delivered payload.
//! - `job <JOB_ID>`: a job's status and history (attempts, the target's answer, webhook
//!   deliveries, children); `--wait` asks again until it has finished.
//! - `secrets create | get | rotate | delete`: the account's webhook secrets, only ever
//!   printed masked, and read from stdin (`--primary -`, `--secret-stdin`) or the
//!   environment, never from the command line.
//! - `sign` and `verify`: the `X-EZThrottle-Signature` header for a body read from stdin
//!   (at most 16 MiB).
//! - `completions <bash|zsh|fish|powershell|elvish>`: the shell's completion script.
//!
//! `submit`, `job` and `secrets` find EZThrottle through `--api-key` (`EZTHROTTLE_API_KEY`),
//! `--ezthrottle-url` (`EZTHROTTLE_URL`) and `--tracktags-url` (`EZTHROTTLE_TRACKTAGS_URL`),
//! as `EZThrottle::from_env` does: an EZThrottle URL alone means direct mode (a local or
//! self-hosted engine).
//!
//! While `submit --wait`, `job --wait` or `job --follow` waits, a line on stderr shows the
//! elapsed time and the state, redrawn in place, when stderr is a terminal (nothing when
//! it is not).
//!
//! `-v` logs what a command does on stderr (info), `-vv` more (debug); `RUST_LOG`, when
//! set, decides instead.
//!
//! `--json` makes every command print one JSON document on stdout; errors then go to stderr
//! as `{"error": "...", "exit_code": N}` (otherwise as `ezthrottle: <message>`).
//!
//! Exit codes (the table is in `--help` and the README): 0 success; 1 `verify` only, the
//! signature did not verify; 2 usage error or invalid input (nothing sent); 3 any other
//! failure; 4 timed out (a wait, or a call without an answer); 5 not found; 6 EZThrottle
//! unreachable; 7 unauthorised.

mod args;
mod client;
mod job;
mod jobs;
mod local;
mod logs;
mod output;
mod progress;
mod secret_input;
mod secrets;
mod signature;
mod submit;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command};
use crate::output::{CliError, EXIT_NOT_VERIFIED, EXIT_USAGE, Output, Status};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let out = Output { json: cli.json };
    logs::init(cli.verbose, matches!(cli.command, Command::Local(_)));
    match run(cli.command, out) {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::NotVerified) => ExitCode::from(EXIT_NOT_VERIFIED),
        Err(error) => {
            out.error(&error);
            ExitCode::from(error.code())
        }
    }
}

fn run(command: Command, out: Output) -> Result<Status, CliError> {
    match command {
        Command::Sign(args) => signature::run_sign(&args, out),
        Command::Verify(args) => signature::run_verify(&args, out),
        Command::Local(args) => runtime()?.block_on(local::run(&args, out)),
        Command::Submit(args) => runtime()?.block_on(submit::run(&args, out)),
        Command::Job(args) => runtime()?.block_on(job::run(&args, out)),
        Command::Secrets(args) => runtime()?.block_on(secrets::run(&args, out)),
        Command::Jobs(args) => runtime()?.block_on(jobs::run(&args, out)),
        Command::Completions(args) => Ok(completions(args.shell)),
    }
}

/// The shell's completion script, on stdout (written whole: a closed pipe is not a panic).
fn completions(shell: clap_complete::Shell) -> Status {
    use clap::CommandFactory as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ezthrottle", &mut script);
    output::line(String::from_utf8_lossy(&script).trim_end());
    Status::Ok
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::failed_with("cannot start the async runtime", &err))
}

/// clap's own output for `--help` and `--version` (exit 0) and usage errors (exit 2);
/// with `--json` on the command line, a usage error is printed as JSON instead.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os().any(|arg| arg == "--json");
    if !json || matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        error.exit();
    }
    let message = error.render().to_string();
    let message = message.trim().strip_prefix("error: ").unwrap_or(message.trim());
    Output { json }.error(&CliError::usage(message));
    ExitCode::from(EXIT_USAGE)
}
