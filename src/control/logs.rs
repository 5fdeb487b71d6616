//! `logs`: a detached container's log, found by its live record's name or,
//! once the container is gone, by its exited record or the name alone (see
//! `container_log`).

use std::io;
use std::path::Path;

use super::Error;
use crate::container_log::{self, Paths, ReadOptions};
use crate::state::{Found, Store};

/// Prints the log of `target` (a name, id or id prefix) as `options` say.
pub fn logs(
    state_dir: &Path,
    target: &str,
    options: &ReadOptions,
    out: &mut dyn io::Write,
) -> Result<(), Error> {
    let store = Store::new(state_dir);
    let found = store.find_any(target)?;
    let name = match &found {
        Some(Found::Live(record)) => record.name.as_str(),
        Some(Found::Exited(exited)) => exited.name.as_str(),
        // Only a container's name can name a file of the log directory.
        None if target.contains('/') || target.starts_with('.') => {
            return Err(Error::Unknown(target.to_string()));
        }
        None => target,
    };
    let paths = Paths::new(state_dir, name);
    if !paths.exists() {
        return Err(match found {
            Some(Found::Live(_)) => Error::NoLog(name.to_string()),
            _ => Error::Unknown(target.to_string()),
        });
    }
    container_log::read(&paths, options, out).map_err(Error::Output)
}
