//! `supervisor stop`: SIGTERM, SIGKILL after the time, and back only once
//! the container's supervisor has cleaned up and exited.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use caps::Capability;

use super::{Error, block_on, complete};
use crate::reconcile::Reconciler;
use crate::spawn::Pidfd;
use crate::state::{Entry, Found, Record, Store};

/// How long a supervisor gets to clean up after its container was killed,
/// before it is deemed hung, killed, and cleaned up after. Only a stopped
/// or wedged supervisor ever reaches it.
const CLEANUP_GRACE: Duration = Duration::from_secs(10);

/// Stops every container whose supervisor is alive (`stop --all`).
pub fn stop_all(
    state_dir: &Path,
    time: Option<Duration>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    crate::state::check_dir(state_dir)?;
    let names: Vec<String> = Store::new(state_dir)
        .entries()?
        .into_iter()
        .filter_map(|entry| match entry {
            // A CNI attachment is its engine's to remove (CNI DEL).
            Entry::Record(record) if !record.is_stale() && !record.supervisor.is_none() => {
                Some(record.name)
            }
            _ => None,
        })
        .collect();
    stop(state_dir, &names, time, out)
}

/// Stops each of `targets` (names, ids or id prefixes) at once, and prints
/// each one's name once its supervisor has exited; `time` None: each
/// container's own `--stop-timeout`. Every target is tried; the failures
/// are returned together.
pub fn stop(
    state_dir: &Path,
    targets: &[String],
    time: Option<Duration>,
    out: &mut dyn Write,
) -> Result<(), Error> {
    super::require(
        "stop",
        &[Capability::CAP_KILL],
        "to signal containers, which run as root",
    )?;
    // A record names the process signalled: one planted by another user
    // would have us signal any process of theirs to choose.
    crate::state::check_dir(state_dir)?;
    let store = Store::new(state_dir);
    let results = block_on(async {
        let stops = targets.iter().map(|t| stop_one(state_dir, &store, t, time));
        Ok(futures_util::future::join_all(stops).await)
    })?;
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(name) => writeln!(out, "{name}").map_err(Error::Output)?,
            Err(err) => failures.push(err),
        }
    }
    super::all_or_failures(failures)
}

async fn stop_one(
    state_dir: &Path,
    store: &Store,
    target: &str,
    time: Option<Duration>,
) -> Result<String, Error> {
    match store.find_any(target)? {
        Some(Found::Live(record)) => {
            let grace = match time {
                Some(time) => Grace::Asked(time),
                None => Grace::Recorded(record.stop_timeout()),
            };
            stop_record(state_dir, store, *record, grace).await
        }
        // Stopped already: done, as docker's `stop` says of one.
        Some(Found::Exited(exited)) => Ok(exited.name),
        None => Err(Error::Unknown(target.to_string())),
    }
}

/// How long a container gets between SIGTERM and SIGKILL, and who said so.
#[derive(Debug, Clone, Copy)]
pub(super) enum Grace {
    /// `stop -t`, or none (`rm -f`).
    Asked(Duration),
    /// The container's own `run --stop-timeout`.
    Recorded(Duration),
}

/// Stops `record`'s container (a zero grace: kills it at once), or cleans
/// up after its supervisor when that one is dead; returns its name.
pub(super) async fn stop_record(
    state_dir: &Path,
    store: &Store,
    record: Record,
    grace: Grace,
) -> Result<String, Error> {
    let (Grace::Asked(time) | Grace::Recorded(time)) = grace;
    let name = record.name.clone();
    if record.supervisor.is_none() {
        return Err(Error::Attachment(name));
    }
    let signal_error = |what| {
        let name = name.clone();
        move |source| Error::Signal { what, name, source }
    };
    let Some(supervisor) = Pidfd::of(&record.supervisor).map_err(signal_error("the supervisor"))?
    else {
        // Its supervisor died without cleaning up: do it now.
        complete(Reconciler::new(state_dir)?.remove_stale(&record).await)?;
        return Ok(name);
    };
    // The container itself gets the signals, so `time` alone decides when
    // it is killed, not its supervisor's timer. A supervisor still
    // starting (no container recorded yet) forwards them instead, and
    // takes a second SIGTERM as "kill now".
    let container = match record.container {
        Some(process) => Pidfd::of(&process).map_err(signal_error("the container"))?,
        None => None,
    };
    let (target_fd, kill) = match &container {
        Some(fd) => (fd, libc::SIGKILL),
        None => (&supervisor, libc::SIGTERM),
    };
    send(target_fd, libc::SIGTERM).map_err(signal_error("the container"))?;
    if tokio::time::timeout(time, supervisor.exited())
        .await
        .is_err()
    {
        // `rm -f` asked for no grace: nothing to warn of.
        if !time.is_zero() {
            let said = match grace {
                Grace::Asked(_) => "stop --time",
                Grace::Recorded(_) => "its run --stop-timeout",
            };
            tracing::warn!(
                "{name} did not exit within {} s ({said}) of SIGTERM: killing it (SIGKILL); \
             its command handles or ignores SIGTERM without exiting (or, run with \
             --init=false, has no handler as PID 1): make it exit on SIGTERM, or give \
             it more time with stop --time SECS",
                time.as_secs()
            );
        }
        send(target_fd, kill).map_err(signal_error("the container"))?;
        if tokio::time::timeout(CLEANUP_GRACE, supervisor.exited())
            .await
            .is_err()
        {
            tracing::warn!(
                "the supervisor of {name} (pid {}) does not exit: killing it",
                record.supervisor.pid
            );
            send(&supervisor, libc::SIGKILL).map_err(signal_error("the supervisor"))?;
            supervisor
                .exited()
                .await
                .map_err(signal_error("the supervisor"))?;
        }
    }
    finish_cleanup(state_dir, store, &record).await?;
    Ok(name)
}

/// A supervisor removes its record last on its way out; one that was killed
/// half-way left it, with whatever it still held.
async fn finish_cleanup(state_dir: &Path, store: &Store, record: &Record) -> Result<(), Error> {
    if let Some(left) = store.find(&record.name)? {
        if left.id == record.id && left.is_stale() {
            complete(Reconciler::new(state_dir)?.remove_stale(&left).await)?;
        }
    }
    Ok(())
}

/// Sends `signal`; a process already gone is not an error.
fn send(pidfd: &Pidfd, signal: libc::c_int) -> io::Result<()> {
    match pidfd.send_signal(signal) {
        Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other,
    }
}
