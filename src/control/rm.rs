//! `supervisor rm`: removes what an exited container leaves (its exited
//! record and its log), as docker's `rm`. A running container is refused
//! unless `-f`, which stops it first as `stop` does, with no grace; a dead
//! one (its supervisor crashed) is cleaned up as `stop` does.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use caps::Capability;

use super::{Error, block_on, stop};
use crate::container_log::Paths;
use crate::state::{Found, Store};

/// Removes each of `targets` (names, ids or id prefixes) and prints its
/// name. Every target is tried; the failures are returned together.
pub fn rm(
    state_dir: &Path,
    targets: &[String],
    force: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    // As `stop` (which `-f` and a dead container take), before the state
    // directory's check: that one would tell a user who forgot sudo only
    // that root's directory is not theirs.
    super::require(
        "rm",
        &[Capability::CAP_KILL],
        "to stop containers, which run as root, and remove what they leave",
    )?;
    // A record names the process `-f` signals (see `stop`).
    crate::state::check_dir(state_dir)?;
    let store = Store::new(state_dir);
    let mut failures = Vec::new();
    for target in targets {
        match rm_one(state_dir, &store, target, force) {
            Ok(name) => writeln!(out, "{name}").map_err(Error::Output)?,
            Err(err) => failures.push(err),
        }
    }
    super::all_or_failures(failures)
}

fn rm_one(state_dir: &Path, store: &Store, target: &str, force: bool) -> Result<String, Error> {
    let name = match store.find_any(target)? {
        Some(Found::Live(record)) => {
            if record.supervisor.is_none() {
                return Err(Error::Attachment(record.name));
            }
            if !record.is_stale() && !force {
                return Err(Error::Running(record.name));
            }
            block_on(stop::stop_record(
                state_dir,
                store,
                *record,
                stop::Grace::Asked(Duration::ZERO),
            ))?
        }
        Some(Found::Exited(exited)) => exited.name,
        None if !target.contains('/')
            && !target.starts_with('.')
            && Paths::new(state_dir, target).exists() =>
        {
            // A log without an exited record: an earlier version's.
            target.to_string()
        }
        None => return Err(Error::Unknown(target.to_string())),
    };
    remove_remains(state_dir, store, &name)?;
    Ok(name)
}

/// Removes `name`'s exited record and log, unless a new run has taken the
/// name meanwhile: they are that run's now. A `run -d` starts its log
/// before it claims the name: a log with a live writer is that run's.
fn remove_remains(state_dir: &Path, store: &Store, name: &str) -> Result<(), Error> {
    let _lock = store.lock()?;
    if store.get(name).is_some_and(|r| !r.is_stale()) {
        return Err(Error::Running(name.to_string()));
    }
    store.exited().remove(name)?;
    Paths::new(state_dir, name)
        .remove_unless_written(state_dir)
        .map_err(|source| Error::RemoveLog {
            name: name.to_string(),
            source,
        })?;
    Ok(())
}
