//! `run --env-file FILE` (and `--label-file`), docker's format: one
//! `KEY=VALUE` a line, `KEY` alone for a value the caller gives (the
//! supervisor's own for the environment, dropped when unset), lines
//! starting with `#` (after leading whitespace) and blank lines skipped. No
//! quote processing: a value is taken verbatim, quotes and trailing spaces
//! included, as docker does.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvFileError {
    #[error("reading {option} {path}: {reason}")]
    Read {
        option: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{option} {path}:{line}: {reason}")]
    Line {
        option: &'static str,
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
}

/// The most a file may hold: far more than any environment exec(3) takes
/// (the kernel's limit on argv and envp together is a quarter of the
/// stack's, 2 MiB by default), while `/dev/zero` or an endless pipe would
/// otherwise be read until the OOM killer ends the supervisor.
const MAX_BYTES: usize = 4 << 20;

/// The entries of `path`, given as `option`, in order, each as
/// `(KEY, VALUE)`; `host` gives the value of a bare `KEY`.
pub fn read(
    option: &'static str,
    path: &Path,
    host: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, EnvFileError> {
    let failed = |reason: String| EnvFileError::Read {
        option,
        path: path.to_path_buf(),
        reason,
    };
    // Any kind of file, as docker reads it (`--env-file <(…)` is a pipe):
    // a FIFO waits for its writer, which may never come, and `run` reads
    // it with the signals it forwards blocked.
    let bytes = crate::signals::ending_unblocked(|| {
        std::fs::File::open(path)
            .and_then(|file| crate::regular_file::read_at_most(file, MAX_BYTES))
    })
    .map_err(|e| failed(e.to_string()))?;
    parse(&bytes, host).map_err(|(line, reason)| EnvFileError::Line {
        option,
        path: path.to_path_buf(),
        line,
        reason,
    })
}

/// The parser behind `read`; errors are (line number from 1, reason).
fn parse(
    bytes: &[u8],
    host: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, (usize, &'static str)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut entries = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| (number, "not valid UTF-8"))?;
        if line.contains('\0') {
            return Err((number, "contains a NUL byte"));
        }
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (line, None),
        };
        if key.is_empty() {
            return Err((number, "no variable name before '='"));
        }
        if key.contains(char::is_whitespace) {
            return Err((number, "the variable name contains whitespace"));
        }
        match value {
            Some(value) => entries.push((key.to_string(), value.to_string())),
            None => {
                if let Some(value) = host(key) {
                    entries.push((key.to_string(), value));
                }
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(key: &str) -> Option<String> {
        (key == "FROM_HOST").then(|| "host value".to_string())
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes(), host).expect("valid")
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_verbatim_and_comments_and_blank_lines_are_skipped() {
        let text =
            "# a comment\n\nA=1\n  B=two words  \nC=\"quoted\"\nD=x=y\n   # indented comment\nE=\n";
        assert_eq!(
            pairs(text),
            owned(&[
                ("A", "1"),
                ("B", "two words  "),
                ("C", "\"quoted\""),
                ("D", "x=y"),
                ("E", "")
            ])
        );
    }

    #[test]
    fn a_bare_key_passes_the_hosts_value_or_nothing() {
        assert_eq!(
            pairs("FROM_HOST\nUNSET_HERE\n"),
            owned(&[("FROM_HOST", "host value")])
        );
    }

    #[test]
    fn crlf_endings_a_bom_and_a_missing_last_newline_are_accepted() {
        assert_eq!(
            pairs("\u{feff}A=1\r\nB=2"),
            owned(&[("A", "1"), ("B", "2")])
        );
    }

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        assert_eq!(
            parse(b"A=1\n=2\n", host),
            Err((2, "no variable name before '='"))
        );
        assert_eq!(
            parse(b"\n\nMY VAR=1\n", host),
            Err((3, "the variable name contains whitespace"))
        );
        assert_eq!(parse(b"A=\xff\n", host), Err((1, "not valid UTF-8")));
        assert_eq!(
            parse(b"A=1\nB=x\0y\n", host),
            Err((2, "contains a NUL byte"))
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = EnvFileError::Line {
            option: "--env-file",
            path: "/tmp/app.env".into(),
            line: 4,
            reason: "no variable name before '='",
        };
        assert_eq!(
            err.to_string(),
            "--env-file /tmp/app.env:4: no variable name before '='"
        );
        let missing = read("--env-file", Path::new("/nonexistent/app.env"), host).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("reading --env-file /nonexistent/app.env: No such file"),
            "{missing}"
        );
    }
}
