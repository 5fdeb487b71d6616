//! `supervisor kill`: one signal to each container's PID 1, through a pidfd
//! opened after the same start-time check `stop` makes; returns without
//! waiting for anything to exit.

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use caps::Capability;
use nix::sys::signal::Signal;

use super::Error;
use crate::spawn::Pidfd;
use crate::state::Store;

/// The highest signal number the kernel takes (SIGRTMAX on Linux).
const MAX_SIGNAL: i32 = 64;

/// A signal as `kill -s` takes it: a name with or without `SIG` in any
/// case (`TERM`, `sigusr1`), or a number.
pub fn parse_signal(text: &str) -> Result<i32, String> {
    if let Ok(number) = text.parse::<i32>() {
        return match number {
            1..=MAX_SIGNAL => Ok(number),
            _ => Err(format!(
                "invalid signal {text:?}: numbers go from 1 to {MAX_SIGNAL}"
            )),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = match upper.starts_with("SIG") {
        true => upper,
        false => format!("SIG{upper}"),
    };
    Signal::from_str(&name).map(|s| s as i32).map_err(|_| {
        format!("invalid signal {text:?}: expected a name like TERM or SIGUSR1, or a number")
    })
}

/// Sends `signal` to the container of each of `targets` (names, ids or id
/// prefixes) and prints each target signalled. Every target is tried; the
/// failures are returned together.
pub fn kill(
    state_dir: &Path,
    targets: &[String],
    signal: i32,
    out: &mut dyn Write,
) -> Result<(), Error> {
    super::require(
        "kill",
        &[Capability::CAP_KILL],
        "to signal containers, which run as root",
    )?;
    // As `stop`: the record names the process signalled.
    crate::state::check_dir(state_dir)?;
    let store = Store::new(state_dir);
    let mut failures = Vec::new();
    for target in targets {
        match kill_one(&store, target, signal) {
            Ok(()) => writeln!(out, "{target}").map_err(Error::Output)?,
            Err(err) => failures.push(err),
        }
    }
    super::all_or_failures(failures)
}

fn kill_one(store: &Store, target: &str, signal: i32) -> Result<(), Error> {
    let record = store
        .find_any(target)?
        .ok_or_else(|| Error::Unknown(target.to_string()))?
        .live()
        .map_err(Error::NotRunning)?;
    if record.supervisor.is_none() {
        return Err(Error::Attachment(record.name));
    }
    let not_running = || Error::NotRunning(record.name.clone());
    let process = record.container.ok_or_else(not_running)?;
    let signal_error = |source| Error::Signal {
        what: "the container",
        name: record.name.clone(),
        source,
    };
    let pidfd = Pidfd::of(&process)
        .map_err(signal_error)?
        .ok_or_else(not_running)?;
    match pidfd.send_signal(signal) {
        Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Err(not_running()),
        other => other.map_err(signal_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_with_or_without_sig_in_any_case_or_by_number() {
        assert_eq!(parse_signal("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("SIGTERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("usr1"), Ok(libc::SIGUSR1));
        assert_eq!(parse_signal("SigHup"), Ok(libc::SIGHUP));
        assert_eq!(parse_signal("9"), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("40"), Ok(40));
    }

    #[test]
    fn an_unknown_signal_is_refused_naming_it() {
        assert!(
            parse_signal("TERMINATE")
                .unwrap_err()
                .contains("\"TERMINATE\"")
        );
        assert!(parse_signal("0").unwrap_err().contains("from 1 to 64"));
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("").is_err());
    }
}
