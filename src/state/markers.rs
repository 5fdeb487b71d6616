//! Markers: `STATE_DIR/KIND/KEY/NAME`, an empty file saying that record
//! NAME belongs under KEY, so that the records under one key are found by
//! opening one directory, whatever other records there are (reading every
//! record cost 8-12 ms with 1,000). Two kinds:
//!
//! - `joins/ID/NAME`: container NAME runs with `--network container:` in
//!   the network namespace of container ID. A container's end asks who
//!   joined it.
//! - `ids/ID/NAME`: record NAME has the id ID. A lookup by id opens the
//!   one directory; by a prefix of an id, reads the names of `ids` alone.
//!   Ids are hashes, so two records may share one: a directory, not a file.
//!
//! A marker only points at a record: whether it says so still is the
//! record's to say (a lookup reads the record and checks), so a crashed
//! writer's marker keeps nothing alive, and `gc` removes it. A marker is
//! made under the records lock; its directory, removed with its last
//! marker by someone not holding it, is made again (see [`Markers::mark`]).

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::file::{self, FileError};

/// One kind of markers.
#[derive(Debug, Clone)]
pub struct Markers {
    dir: PathBuf,
}

impl Markers {
    /// The join markers under `state_dir`. Touches nothing.
    pub fn joins(state_dir: &Path) -> Markers {
        Markers {
            dir: state_dir.join("joins"),
        }
    }

    /// The id markers under `state_dir`. Touches nothing.
    pub fn ids(state_dir: &Path) -> Markers {
        Markers {
            dir: state_dir.join("ids"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn marker(&self, key: &str, name: &str) -> PathBuf {
        self.dir.join(key).join(name)
    }

    /// Marks `name` under `key`. Under the records lock. An empty file
    /// needs no temporary: it is whole once it is there. Never follows a
    /// planted link, never blocks on a planted FIFO, never truncates what
    /// a planted hard link points at.
    pub fn mark(&self, key: &str, name: &str) -> Result<(), FileError> {
        let dir = self.dir.join(key);
        let path = dir.join(name);
        let create = || {
            File::options()
                .write(true)
                .create(true)
                .truncate(false)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&path)
        };
        // Its directory is made only when missing; an unmark that does not
        // hold the lock may remove it between the two, so again then.
        let mut tries = 0;
        loop {
            match create() {
                Ok(_) => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::NotFound && tries < 3 => {
                    tries += 1;
                    fs::create_dir_all(&dir).map_err(FileError::at(&dir))?;
                }
                Err(err) => return Err(FileError::at(&path)(err)),
            }
        }
    }

    /// Removes `name`'s marker under `key`, and `key`'s directory with its
    /// last marker. True when the marker was there.
    pub fn unmark(&self, key: &str, name: &str) -> Result<bool, FileError> {
        let removed = file::remove(&self.marker(key, name))?;
        let dir = self.dir.join(key);
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

    /// The names marked under `key`: one failed open when there are none.
    /// Temporaries of an earlier version's writer that died are no
    /// markers.
    pub fn names(&self, key: &str) -> Result<Vec<String>, FileError> {
        let mut names = file::names(&self.dir.join(key))?;
        names.retain(|name| !name.starts_with('.'));
        Ok(names)
    }

    /// The keys that have markers, from the directory's names alone.
    pub fn keys(&self) -> Result<Vec<String>, FileError> {
        let mut keys = file::names(&self.dir)?;
        keys.retain(|key| !key.starts_with('.'));
        Ok(keys)
    }

    /// Every marker, as (key, name, path), temporaries included, for `gc`.
    pub fn all(&self) -> Result<Vec<(String, String, PathBuf)>, FileError> {
        let mut all = Vec::new();
        for key in file::names(&self.dir)? {
            // Not followed: a link planted for a key's directory would
            // have `gc` remove, as stale markers, what it points at.
            let is_dir = fs::symlink_metadata(self.dir.join(&key)).is_ok_and(|m| m.is_dir());
            if !is_dir {
                continue;
            }
            for name in file::names(&self.dir.join(&key))? {
                let path = self.marker(&key, &name);
                all.push((key.clone(), name, path));
            }
        }
        Ok(all)
    }
}

/// A marker no record explains: what `check` reports and `gc` removes,
/// judged once for both (`Store::stale_joins`, `Store::stale_ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleMarker {
    pub kind: Kind,
    pub key: String,
    pub name: String,
    pub path: PathBuf,
    pub why: Gone,
}

/// Which markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Join,
    Id,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Join => "join",
            Kind::Id => "id",
        })
    }
}

/// Why a marker is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// No live container of this name shares the target's network.
    Joiner(String),
    /// The container whose network it shared (this id) is gone: nobody
    /// will ask who joined it.
    Target(String),
    /// No record of this name has the marker's id.
    Record(String),
    /// A temporary left by a writer that died.
    Unfinished,
}

impl fmt::Display for StaleMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, path) = (self.kind, self.path.display());
        match &self.why {
            Gone::Joiner(name) => write!(f, "{kind} marker {path}: its joiner {name} is gone"),
            Gone::Target(id) => write!(f, "{kind} marker {path}: its target {id} is gone"),
            Gone::Record(name) => write!(f, "{kind} marker {path}: its record {name} is gone"),
            Gone::Unfinished => write!(f, "{kind} marker {path}: unfinished"),
        }
    }
}
