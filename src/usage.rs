//! A command-line error as the user should see it: all of clap's text, one
//! line per paragraph, the first prefixed with `supervisor: `.
//!
//! clap lays an error out over several lines: the message, then indented
//! continuations (the missing arguments' names, `[possible values: …]`),
//! then a `tip:`, the usage and a pointer to --help, each after a blank
//! line. Keeping only the first line loses the names, the tip and the
//! values; joining each paragraph keeps every sentence whole and greppable.

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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::lines;
    use crate::cli::Cli;

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
