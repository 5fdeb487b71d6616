//! Who shares whose network: `STATE_DIR/joins/ID/NAME`, an empty file, for
//! each container NAME run with `--network container:` in the network
//! namespace of container ID. A container's end asks who joined it; read
//! from its own directory alone, the answer costs the same however many
//! other records there are (reading every record cost 8-12 ms with 1,000).
//!
//! A marker only points at a record: whether its joiner still runs is its
//! record's to say (`Record::is_stale`), so a crashed joiner's marker keeps
//! nothing alive, and `gc` removes it. Markers are made and removed under
//! the records lock, so that removing a directory found empty never races
//! another joiner's making of its marker there.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::file::{self, FileError};

/// The markers' directory.
#[derive(Debug, Clone)]
pub struct Joins {
    dir: PathBuf,
}

impl Joins {
    /// The markers under `state_dir`. Touches nothing.
    pub fn new(state_dir: &Path) -> Joins {
        Joins {
            dir: state_dir.join("joins"),
        }
    }

    fn marker(&self, target: &str, joiner: &str) -> PathBuf {
        self.dir.join(target).join(joiner)
    }

    /// Marks `joiner` as sharing `target`'s network. Under the records lock.
    pub fn mark(&self, target: &str, joiner: &str) -> Result<(), FileError> {
        let dir = self.dir.join(target);
        fs::create_dir_all(&dir).map_err(FileError::at(&dir))?;
        file::write_atomic(&dir, joiner, b"")?;
        Ok(())
    }

    /// Removes `joiner`'s marker on `target`, and `target`'s directory with
    /// its last marker. True when the marker was there. Under the records
    /// lock.
    pub fn unmark(&self, target: &str, joiner: &str) -> Result<bool, FileError> {
        let removed = file::remove(&self.marker(target, joiner))?;
        let dir = self.dir.join(target);
        match fs::remove_dir(&dir) {
            Ok(()) => {}
            // Others' markers are left, or it was never made.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::NotFound
                ) => {}
            Err(err) => return Err(FileError::at(&dir)(err)),
        }
        Ok(removed)
    }

    /// The names of those marked as sharing `target`'s network: one failed
    /// open for a container nobody joined. Temporaries of a marker whose
    /// writer died are no markers.
    pub fn joiners(&self, target: &str) -> Result<Vec<String>, FileError> {
        let mut names = file::names(&self.dir.join(target))?;
        names.retain(|name| !name.starts_with('.'));
        Ok(names)
    }

    /// Every marker, as (target, joiner, path), temporaries included, for
    /// `gc`.
    pub fn all(&self) -> Result<Vec<(String, String, PathBuf)>, FileError> {
        let mut all = Vec::new();
        for target in file::names(&self.dir)? {
            if !self.dir.join(&target).is_dir() {
                continue;
            }
            for joiner in file::names(&self.dir.join(&target))? {
                let path = self.marker(&target, &joiner);
                all.push((target.clone(), joiner, path));
            }
        }
        Ok(all)
    }
}

/// A marker no live container explains: what `check` reports and `gc`
/// removes, judged once for both (`Store::stale_joins`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleJoin {
    pub target: String,
    pub joiner: String,
    pub path: PathBuf,
    pub why: Gone,
}

/// Why a marker is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// No live container of this name shares the target's network.
    Joiner(String),
    /// The container whose network it shared (this id) is gone: nobody
    /// will ask who joined it.
    Target(String),
    /// A temporary left by a writer that died.
    Unfinished,
}

impl fmt::Display for StaleJoin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.why {
            Gone::Joiner(name) => write!(f, "join marker {path}: its joiner {name} is gone"),
            Gone::Target(id) => write!(f, "join marker {path}: its target {id} is gone"),
            Gone::Unfinished => write!(f, "join marker {path}: unfinished"),
        }
    }
}
