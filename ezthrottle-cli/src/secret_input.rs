//! Where the secrets of `secrets create | rotate` come from: stdin or the environment,
//! never the command line (other users see it in the process list, and it stays in the
//! shell's history).

use std::io::{IsTerminal as _, Write as _};

use crate::output::CliError;
use crate::signature::read_bounded;

/// One secret a command takes: its flag and the variable read without it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecretSource {
    /// The flag, e.g. `--primary`; its only value is `-` (stdin).
    pub(crate) flag: &'static str,
    /// The environment variable read when the flag is absent.
    pub(crate) variable: &'static str,
}

impl SecretSource {
    /// The secret a command cannot do without: its absence is a usage error naming the ways to give it.
    pub(crate) fn required(self, value: Option<String>) -> Result<String, CliError> {
        value.ok_or_else(|| {
            CliError::usage(format!(
                "no {} secret: write it on stdin with `{} -` or --secret-stdin, or set {}",
                self.flag.trim_start_matches('-'),
                self.flag,
                self.variable
            ))
        })
    }
}

/// The secrets, in the order of `sources`: from stdin, one a line in that order, for each
/// flag given as `-` (every one with `--secret-stdin`); from its variable for the others.
/// A value other than `-` on the command line is refused, without repeating it.
pub(crate) fn resolve<const N: usize>(
    sources: [(SecretSource, Option<&str>); N],
    all_from_stdin: bool,
    env: impl Fn(&str) -> Option<String>,
    stdin: impl FnOnce() -> Result<Vec<u8>, CliError>,
) -> Result<[Option<String>; N], CliError> {
    if let Some((source, _)) = sources.iter().find(|(_, value)| value.is_some_and(|value| value != "-")) {
        return Err(CliError::usage(format!(
            "{flag} takes no secret on the command line (other users can see it in the process list, and it \
             stays in the shell's history): write it on stdin with `{flag} -` or --secret-stdin, or set {variable}",
            flag = source.flag,
            variable = source.variable
        )));
    }
    let from_stdin = sources.map(|(_, value)| all_from_stdin || value.is_some());
    let mut lines = Vec::new();
    if from_stdin.contains(&true) {
        let bytes = stdin()?;
        let text = String::from_utf8(bytes).map_err(|_| CliError::usage("the secrets on stdin are not UTF-8"))?;
        lines = text.lines().map(|line| line.trim().to_owned()).collect();
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
    }
    let expected = lines.len();
    let mut lines = lines.into_iter();
    let mut secrets: [Option<String>; N] = std::array::from_fn(|_| None);
    for ((secret, (source, value)), stdin) in secrets.iter_mut().zip(sources).zip(from_stdin) {
        *secret = if stdin {
            let line = lines.next().filter(|line| !line.is_empty());
            if line.is_none() && value.is_some() {
                return Err(CliError::usage(format!("`{} -`: stdin has no line for this secret", source.flag)));
            }
            line
        } else {
            env(source.variable).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty())
        };
    }
    if lines.next().is_some() {
        return Err(CliError::usage(format!(
            "stdin has {expected} lines, more than the secrets it was to give: one secret a line"
        )));
    }
    Ok(secrets)
}

/// The process's stdin, bounded; with a hint on stderr when a person types at a terminal.
pub(crate) fn read_stdin() -> Result<Vec<u8>, CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let _ = writeln!(std::io::stderr(), "ezthrottle: type the secrets, one a line, then Ctrl-D");
    }
    read_bounded(stdin.lock(), "the secrets on stdin")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: SecretSource = SecretSource { flag: "--primary", variable: "P" };
    const SECONDARY: SecretSource = SecretSource { flag: "--secondary", variable: "S" };

    fn env(name: &str) -> Option<String> {
        match name {
            "P" => Some("from-env-primary".into()),
            "S" => Some(" ".into()),
            _ => None,
        }
    }

    fn run(
        primary: Option<&str>,
        secondary: Option<&str>,
        all: bool,
        stdin: &str,
    ) -> Result<[Option<String>; 2], String> {
        let input = stdin.as_bytes().to_vec();
        resolve([(PRIMARY, primary), (SECONDARY, secondary)], all, env, || Ok(input)).map_err(|e| format!("{e:?}"))
    }

    fn some(a: &str, b: Option<&str>) -> Result<[Option<String>; 2], String> {
        Ok([Some(a.into()), b.map(Into::into)])
    }

    #[test]
    fn stdin_lines_go_to_the_flags_given_as_dash_in_order() {
        assert_eq!(run(Some("-"), Some("-"), false, "first\r\nsecond\n\n"), some("first", Some("second")));
        assert_eq!(run(None, Some("-"), false, "second\n"), some("from-env-primary", Some("second")));
        assert_eq!(run(None, None, true, " first \n"), some("first", None));
        assert_eq!(run(None, None, true, "first\nsecond"), some("first", Some("second")));
        // Nothing from stdin: the variables (an empty one is unset), and stdin is not read.
        let untouched = resolve([(PRIMARY, None), (SECONDARY, None)], false, env, || panic!("stdin read"));
        assert_eq!(untouched.map_err(|e| format!("{e:?}")), some("from-env-primary", None));
    }

    #[test]
    fn a_secret_on_the_command_line_is_refused_without_repeating_it() {
        let error = run(Some("whsec_visible_0123456789"), None, false, "").unwrap_err();
        assert!(!error.contains("whsec_visible"), "{error}");
        assert!(
            error.contains("`--primary -`") && error.contains("--secret-stdin") && error.contains("set P"),
            "{error}"
        );
        assert!(
            run(Some("-"), Some("also-visible"), false, "x\n").unwrap_err().contains("--secondary takes no secret")
        );
    }

    #[test]
    fn missing_and_extra_lines_are_named() {
        assert!(
            run(Some("-"), Some("-"), false, "only-one\n").unwrap_err().contains("`--secondary -`: stdin has no line")
        );
        assert!(run(None, None, true, "a\nb\nc\n").unwrap_err().contains("stdin has 3 lines"));
        assert!(run(None, None, true, "").is_ok_and(|[primary, _]| primary.is_none()));
    }
}
