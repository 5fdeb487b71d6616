//! A command-line error as the user should see it: all of clap's text, one
//! line per paragraph, the first prefixed with `supervisor: `.
//!
//! clap lays an error out over several lines: the message, then indented
//! continuations (the missing arguments' names, `[possible values: …]`),
//! then a `tip:`, the usage and a pointer to --help, each after a blank
//! line. Keeping only the first line loses the names, the tip and the
//! values; joining each paragraph keeps every sentence whole and greppable.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use supervisor::values::quoted;

/// The lines to print on stderr for clap's rendered error `text`.
pub fn lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for paragraph in text.split("\n\n") {
        let mut current: Option<String> = None;
        for line in paragraph.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match current.as_mut() {
                // Each tip is a sentence of its own, even in one paragraph.
                Some(joined) if !line.starts_with("tip:") => {
                    joined.push(' ');
                    joined.push_str(line);
                }
                _ => lines.extend(current.replace(line.to_string())),
            }
        }
        lines.extend(current);
    }
    match lines.first_mut() {
        Some(first) => {
            let message = first.strip_prefix("error: ").unwrap_or(first);
            *first = format!("supervisor: {message}");
        }
        None => lines.push("supervisor: invalid arguments".to_string()),
    }
    lines
}

/// Shortens the values clap's `err` quotes (a bad value, an unexpected
/// argument) as every other refusal quotes them: a 10,000-digit
/// `--stop-timeout` made a 10 KB line.
pub fn shorten_values(err: &mut clap::Error) {
    use clap::error::{ContextKind, ContextValue};
    for kind in [ContextKind::InvalidValue, ContextKind::InvalidArg] {
        let short = match err.get(kind) {
            Some(ContextValue::String(text)) => match supervisor::values::shortened(text) {
                Cow::Owned(short) => short,
                Cow::Borrowed(_) => continue,
            },
            _ => continue,
        };
        err.insert(kind, ContextValue::String(short));
    }
}

/// Takes out of `err`'s usage line the global options clap put there only
/// because their environment variable is set: it counts a value from the
/// environment as given, so with `SUPERVISOR_LOOPBACK6_CGROUP=none` every
/// usage line showed `--loopback6-cgroup <PATH>`, as if it were required.
/// One typed in `args` (the program's name first) stays.
pub fn drop_environment_globals(err: &mut clap::Error, args: &[OsString]) {
    use clap::Args;
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::StyledStr(usage)) = err.get(ContextKind::Usage) else {
        return;
    };
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let typed = |option: &str| {
        args[..end].iter().any(|a| {
            let a = a.as_bytes();
            a == option.as_bytes()
                || a.strip_prefix(option.as_bytes())
                    .is_some_and(|rest| rest.starts_with(b"="))
        })
    };
    let globals = crate::cli::Global::augment_args(clap::Command::new("supervisor"));
    let untyped: Vec<(String, bool)> = globals
        .get_arguments()
        .filter(|a| a.get_env().is_some())
        .filter_map(|a| {
            Some((
                format!("--{}", a.get_long()?),
                a.get_action().takes_values(),
            ))
        })
        .filter(|(option, _)| !typed(option))
        .collect();
    let text = usage.to_string();
    let kept: Vec<String> = text
        .lines()
        .map(|line| {
            let indent = &line[..line.len() - line.trim_start().len()];
            let mut words = line.split_whitespace();
            let mut out = Vec::new();
            while let Some(word) = words.next() {
                match untyped.iter().find(|(option, _)| option == word) {
                    // Its value's name (`<PATH>`) goes with it.
                    Some((_, true)) => drop(words.next()),
                    Some((_, false)) => {}
                    None => out.push(word),
                }
            }
            format!("{indent}{}", out.join(" "))
        })
        .collect();
    let kept = kept.join("\n");
    if kept != text {
        err.insert(ContextKind::Usage, ContextValue::StyledStr(kept.into()));
    }
}

/// The first of `args` (the program's name first) that is not UTF-8,
/// named with the option it is the value of: clap says only "invalid UTF-8
/// was detected in one or more arguments", which leaves the user to find
/// it. Those after `--`, a command's own, may be any bytes.
pub fn not_utf8(args: &[OsString]) -> Option<String> {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let at = args[..end].iter().position(|a| a.to_str().is_none())?;
    let arg = args[at].as_bytes();
    let option = match arg.iter().position(|&b| b == b'=') {
        Some(eq) if arg.starts_with(b"--") => Some((&arg[..eq], &arg[eq + 1..])),
        _ => at
            .checked_sub(1)
            .map(|before| args[before].as_bytes())
            .filter(|before| before.starts_with(b"-") && before.len() > 1)
            .map(|before| (before, arg)),
    };
    Some(match option {
        Some((option, value)) => format!(
            "invalid {} {}: not UTF-8",
            String::from_utf8_lossy(option),
            quoted(OsStr::from_bytes(value))
        ),
        None => format!(
            "invalid argument {}: not UTF-8",
            quoted(OsStr::from_bytes(arg))
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    use clap::Parser;

    use super::{lines, not_utf8};
    use crate::cli::Cli;

    fn words(args: &[&[u8]]) -> Vec<OsString> {
        let args = std::iter::once(&b"supervisor"[..]).chain(args.iter().copied());
        args.map(|a| OsString::from_vec(a.to_vec())).collect()
    }

    #[test]
    fn an_argument_that_is_not_utf8_is_named_with_its_option() {
        let name = words(&[b"run", b"--name", b"\xff", b"true"]);
        assert_eq!(
            not_utf8(&name).as_deref(),
            Some("invalid --name \"\\xFF\": not UTF-8")
        );
        let label = words(&[b"run", b"--label=k=\xfe", b"true"]);
        assert_eq!(
            not_utf8(&label).as_deref(),
            Some("invalid --label \"k=\\xFE\": not UTF-8")
        );
        let alone = words(&[b"ps", b"\xff"]);
        assert_eq!(
            not_utf8(&alone).as_deref(),
            Some("invalid argument \"\\xFF\": not UTF-8")
        );
        // A command's own arguments are its business.
        let command = words(&[b"run", b"--", b"echo", b"\xff"]);
        assert_eq!(not_utf8(&command), None);
    }

    fn error_lines(args: &[&str]) -> Vec<String> {
        let args = std::iter::once("supervisor").chain(args.iter().copied());
        let err = Cli::try_parse_from(args).expect_err("a usage error");
        lines(&err.to_string())
    }

    #[test]
    fn a_missing_argument_is_named_on_the_first_line() {
        let lines = error_lines(&["run"]);
        assert_eq!(
            lines[0],
            "supervisor: the following required arguments were not provided: <CMD>..."
        );
        assert!(lines.iter().any(|l| l.starts_with("Usage: supervisor run")));
    }

    #[test]
    fn a_misspelt_option_keeps_the_did_you_mean_tip() {
        let lines = error_lines(&["run", "--nam", "web", "true"]);
        assert_eq!(lines[0], "supervisor: unexpected argument '--nam' found");
        assert_eq!(lines[1], "tip: a similar argument exists: '--name'");
        assert_eq!(lines[2], "tip: to pass '--nam' as a value, use '-- --nam'");
    }

    #[test]
    fn a_bad_value_keeps_the_allowed_values_on_its_line() {
        let lines = error_lines(&["run", "--network", "host", "true"]);
        assert_eq!(
            lines[0],
            "supervisor: invalid value 'host' for '--network <MODE>': \
             expected bridge, none or container:NAME"
        );
        let lines = error_lines(&["--log-level", "loud", "ps"]);
        assert!(
            lines[0].ends_with("[possible values: error, warn, info, debug, trace]"),
            "{lines:?}"
        );
    }

    #[test]
    fn no_line_is_empty_or_indented() {
        for args in [&["run"][..], &["nosuch"], &["run", "--nam", "x", "true"]] {
            for line in error_lines(args) {
                assert!(!line.is_empty() && line.trim() == line, "{line:?}");
            }
        }
    }
}
