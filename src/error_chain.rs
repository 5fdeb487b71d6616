//! An error with its causes, on one line: `what failed: why: why deeper`.
//!
//! Each error's message names only its own step and marks what caused it
//! as its `source`, so a cause is printed once, here, wherever the error is
//! shown (the command line, a warning in the log, a list of failures).

use std::error::Error;
use std::fmt;
use std::io::Write;

/// Writes `line` to stderr as eprintln! does, but a stderr that cannot be
/// written (`2>&1 | head -1`, after head exits) loses the line rather than
/// panic: a panic would end the supervisor with 101, mid-run.
pub fn eprint_line(line: impl fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Displays an error followed by each of its sources, `: ` between them.
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("reserving host port {port}")]
        Socket {
            port: u16,
            #[source]
            source: Middle,
        },
        #[error(transparent)]
        Through(#[from] Middle),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("binding 0.0.0.0:{0}")]
    struct Middle(u16, #[source] std::io::Error);

    fn middle() -> Middle {
        Middle(8080, std::io::Error::from_raw_os_error(libc::EADDRINUSE))
    }

    #[test]
    fn each_cause_is_printed_once_after_what_failed() {
        let err = Outer::Socket {
            port: 8080,
            source: middle(),
        };
        let text = Chain(&err).to_string();
        assert!(
            text.starts_with(
                "reserving host port 8080: binding 0.0.0.0:8080: Address already in use"
            ),
            "{text}"
        );
        assert_eq!(text.matches("8080: binding").count(), 1, "{text}");
        assert_eq!(text.matches("already in use").count(), 1, "{text}");
    }

    #[test]
    fn a_transparent_wrapper_adds_nothing_and_repeats_nothing() {
        let text = Chain(&Outer::Through(middle())).to_string();
        assert!(
            text.starts_with("binding 0.0.0.0:8080: Address already in use"),
            "{text}"
        );
        assert_eq!(text.matches("binding").count(), 1, "{text}");
    }
}
