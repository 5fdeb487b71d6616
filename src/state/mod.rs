//! The supervisor's state directory (`/run/supervisor` by default): one
//! record per running container, so `ps`, `stop`, `inspect` and `gc` can
//! find every container and what it holds, and so a crashed supervisor's
//! leftovers can be told from a live one's.
//!
//! ```text
//! STATE_DIR/containers/.lock        flock: every write happens under it
//! STATE_DIR/containers/NAME.json    a record (see `Record`)
//! STATE_DIR/exited/NAME.json        a detached container that ended (see `exited`)
//! STATE_DIR/leases/BRIDGE/ADDRESS   an address lease (see `ipam`)
//! STATE_DIR/files/ID/               the container's /etc files (see `etc_files`)
//! STATE_DIR/seccomp/KEY.bpf         compiled seccomp programs (see `confinement`)
//! STATE_DIR/logs/NAME.log           a detached container's log (see `container_log`)
//! STATE_DIR/joins/ID/NAME           NAME shares ID's network (see `markers`)
//! STATE_DIR/ids/ID/NAME             record NAME has the id ID (see `markers`)
//! ```
//!
//! A record is named by its container's name, so a name is unique by
//! construction: claiming it checks the one file, under the lock. A record
//! whose supervisor is dead is stale; its name can be claimed again, and
//! what it held (lease, link, firewall elements) is nobody's.
//!
//! Knows no network: the cleanup of what a stale record held is
//! `reconcile`'s.

mod exited;
pub mod file;
pub mod markers;
mod record;

use std::fs;
use std::path::{Path, PathBuf};

pub use self::exited::{Exited, ExitedDir};
pub use self::file::{DirLock, FileError};
pub use self::markers::{Gone, Kind, Markers, StaleMarker};
pub use self::record::{
    DEFAULT_STOP_TIMEOUT, ExecContext, Limits, PublishedPort, Record, cni_label,
};

const SUFFIX: &str = ".json";

/// What a target names (see `Store::find_any`).
#[derive(Debug)]
pub enum Found {
    /// A running container's record, or a dead one's (its supervisor
    /// crashed).
    Live(Box<Record>),
    Exited(Exited),
}

impl Found {
    /// The running (or dead) container's record, or the exited one's name
    /// (for "not running").
    pub fn live(self) -> Result<Record, String> {
        match self {
            Found::Live(record) => Ok(*record),
            Found::Exited(exited) => Err(exited.name),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the name {name:?} is in use by container {id} (supervisor pid {pid}); stop it or choose another name"
    )]
    NameTaken { name: String, id: String, pid: u32 },
    #[error("container name {0:?} cannot name a record file")]
    BadName(String),
    #[error(
        "{0:?} names no container: a name, an id or a prefix of one has no '/', no control character, does not begin with '.' and has at most {MAX_TARGET} bytes"
    )]
    BadTarget(String),
    #[error("{target:?} matches several containers: {}", ids.join(", "))]
    Ambiguous { target: String, ids: Vec<String> },
    #[error("writing record {}", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "--state-dir {}: it holds {entry:?}, which is not the supervisor's: give an empty or new directory",
        dir.display()
    )]
    Foreign { dir: PathBuf, entry: String },
    #[error(
        "{}: {why}; a state directory and what it holds must be writable by their owner, who runs the supervisor, alone",
        path.display()
    )]
    NotOurs { path: PathBuf, why: String },
    #[error(transparent)]
    File(#[from] FileError),
}

/// What the supervisor makes in its state directory (see the table above),
/// and nothing else: a directory holding anything more is someone else's.
const OURS: [&str; 10] = [
    "containers",
    "exited",
    "joins",
    "ids",
    "leases",
    "files",
    "seccomp",
    "logs",
    "firewall.lock",
    "cni.lock",
];

/// The refusal of a name `holder`, a live supervisor's record, has.
fn name_taken(holder: Record) -> Error {
    Error::NameTaken {
        name: holder.name,
        id: holder.id,
        pid: holder.supervisor.pid,
    }
}

/// `--state-dir`'s value: a directory, or a path where one can be made.
/// Refuses one that is, or is under, something else (a file), so that the
/// error names the option rather than the first file a command opens
/// there; what is missing, the supervisor makes.
pub fn parse_dir(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    for ancestor in path.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match fs::metadata(ancestor) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Err(format!("{} is not a directory", ancestor.display())),
            // Missing, or under a file: an ancestor tells which.
            Err(err)
                if err.kind() == std::io::ErrorKind::NotFound
                    || err.raw_os_error() == Some(libc::ENOTDIR) => {}
            Err(err) => return Err(format!("{}: {err}", ancestor.display())),
        }
    }
    Ok(path)
}

/// Refuses a state directory that holds anything the supervisor does not
/// make (`--state-dir /etc`): `run` writes there and `gc` removes what it
/// thinks stale. A missing or empty directory is fine; an earlier
/// version's is too, having only these names.
///
/// Refuses one someone else could write too: the directory, or what it
/// holds of ours, owned by another user, writable by every user, or (below
/// it) a symbolic link. Whoever writes there writes what the supervisor
/// trusts: a record names the host link its DEL or `gc` deletes, and a link
/// planted for a directory of ours sends our writes where it points.
pub fn check_dir(state_dir: &Path) -> Result<(), Error> {
    check_parent(state_dir)?;
    let names = file::names(state_dir)?;
    if let Some(entry) = names.iter().find(|n| !OURS.contains(&n.as_str())) {
        return Err(Error::Foreign {
            dir: state_dir.to_path_buf(),
            entry: entry.clone(),
        });
    }
    let me = nix::unistd::geteuid().as_raw();
    let ours = names.iter().map(|name| (state_dir.join(name), false));
    for (path, follow) in std::iter::once((state_dir.to_path_buf(), true)).chain(ours) {
        let meta = match if follow {
            fs::metadata(&path)
        } else {
            fs::symlink_metadata(&path)
        } {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            other => other.map_err(FileError::at(&path))?,
        };
        if let Some(why) = not_ours(&meta, me) {
            return Err(Error::NotOurs { path, why });
        }
    }
    Ok(())
}

/// Refuses a state directory that another user could put in place of
/// ours between this check and its use: one not made yet in a directory
/// every user can write (`/tmp/sv`: whoever makes it first owns it), or
/// one in such a directory without the sticky bit (it can be renamed away
/// and another put there). The same for every step of the way to it, links
/// followed: a directory or symbolic link on the way that is another
/// user's under the sticky bit (`/tmp/link/sv`, the link repointed at
/// will), or in a directory another user owns, can be replaced too.
fn check_parent(state_dir: &Path) -> Result<(), Error> {
    use std::collections::VecDeque;
    use std::os::unix::fs::MetadataExt;
    use std::path::Component;
    let me = nix::unistd::geteuid().as_raw();
    let trusted = |uid: u32| uid == 0 || uid == me;
    // Where the walk is: a directory every step to which was checked.
    let mut at = match state_dir.is_absolute() {
        true => PathBuf::from("/"),
        false => PathBuf::from("."),
    };
    // Each step a name, or None for `..`.
    let steps_of = |path: &Path| -> Vec<Option<std::ffi::OsString>> {
        path.components()
            .filter_map(|step| match step {
                Component::Normal(name) => Some(Some(name.to_os_string())),
                Component::ParentDir => Some(None),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
            })
            .collect()
    };
    let mut steps: VecDeque<Option<std::ffi::OsString>> = steps_of(state_dir).into();
    // As the kernel's limit on links followed in one lookup.
    let mut links_left = 40;
    while let Some(step) = steps.pop_front() {
        let Some(name) = step else {
            at.pop();
            continue;
        };
        let path = at.join(&name);
        let parent = fs::metadata(&at).map_err(FileError::at(&at))?;
        let mode = parent.mode() & 0o7777;
        if !trusted(parent.uid()) {
            return Err(Error::NotOurs {
                path: at,
                why: format!(
                    "owned by uid {}, not {me}: {} could be renamed away and another put in its place",
                    parent.uid(),
                    path.display()
                ),
            });
        }
        let meta = match fs::symlink_metadata(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if mode & 0o002 != 0 {
                    return Err(Error::NotOurs {
                        path: at,
                        why: format!(
                            "writable by every user (mode {mode:o}), and {} is not made yet: another user could make it first",
                            path.display()
                        ),
                    });
                }
                // What is missing from here on is made by us, in ours.
                return Ok(());
            }
            other => other.map_err(FileError::at(&path))?,
        };
        if mode & 0o002 != 0 {
            if mode & 0o1000 == 0 {
                return Err(Error::NotOurs {
                    path: at,
                    why: format!(
                        "writable by every user (mode {mode:o}) without the sticky bit: {} could be renamed away and another put in its place",
                        path.display()
                    ),
                });
            }
            // The directory itself, another user's, is refused below
            // (not_ours) as anywhere else.
            let last = steps.is_empty() && !meta.file_type().is_symlink();
            if !trusted(meta.uid()) && !last {
                return Err(Error::NotOurs {
                    why: format!(
                        "owned by uid {} in {}, which every user can write (mode {mode:o}): it could put another in its place",
                        meta.uid(),
                        at.display()
                    ),
                    path,
                });
            }
        }
        if meta.file_type().is_symlink() {
            links_left -= 1;
            let target = fs::read_link(&path).map_err(FileError::at(&path))?;
            if links_left == 0 {
                let source = std::io::Error::from_raw_os_error(libc::ELOOP);
                return Err(FileError::at(&path)(source).into());
            }
            if target.is_absolute() {
                at = PathBuf::from("/");
            }
            for step in steps_of(&target).into_iter().rev() {
                steps.push_front(step);
            }
        } else {
            at = path;
        }
    }
    Ok(())
}

/// Why a file of the state directory may be written by someone other
/// than `me` (our effective uid), if it may.
fn not_ours(meta: &fs::Metadata, me: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if meta.file_type().is_symlink() {
        Some("a symbolic link".to_string())
    } else if meta.uid() != me {
        Some(format!("owned by uid {}, not {me}", meta.uid()))
    } else if meta.mode() & 0o002 != 0 {
        Some(format!(
            "writable by every user (mode {:o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// One file of the records directory, as read.
#[derive(Debug)]
pub enum Entry {
    Record(Box<Record>),
    /// Not a record this version can read: truncated, garbage, or with
    /// missing fields.
    Corrupt {
        path: PathBuf,
        problem: String,
    },
    /// A temporary left behind by a writer that died before renaming it.
    Temporary {
        path: PathBuf,
    },
}

/// The records directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    joins: Markers,
    ids: Markers,
    exited: ExitedDir,
}

impl Store {
    /// The records under `state_dir`. Touches nothing.
    pub fn new(state_dir: &Path) -> Store {
        Store {
            dir: state_dir.join("containers"),
            joins: Markers::joins(state_dir),
            ids: Markers::ids(state_dir),
            exited: ExitedDir::new(state_dir),
        }
    }

    /// The exited records: written, read and removed under [`Store::lock`].
    pub fn exited(&self) -> &ExitedDir {
        &self.exited
    }

    /// Removes `name`'s exited record, under the lock: a new run of the
    /// name has started, and replaces it as it replaces its log.
    pub fn forget_exited(&self, name: &str) -> Result<bool, Error> {
        let _lock = self.lock()?;
        self.exited.remove(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the records lock: what is read under it stays true until the
    /// lock is dropped, except that live records may appear and go.
    pub fn lock(&self) -> Result<DirLock, Error> {
        Ok(file::lock(&self.dir)?)
    }

    /// Every file of the directory that is ours, in name order.
    pub fn entries(&self) -> Result<Vec<Entry>, Error> {
        let mut entries = Vec::new();
        for name in file::names(&self.dir)? {
            let path = self.dir.join(&name);
            if file::is_temporary(&name) {
                entries.push(Entry::Temporary { path });
            } else if !name.starts_with('.') && name.ends_with(SUFFIX) && !path.is_dir() {
                match read(&path) {
                    Ok(Some(record)) => entries.push(Entry::Record(Box::new(record))),
                    // Removed since the listing: its supervisor just ended.
                    Ok(None) => {}
                    Err(problem) => entries.push(Entry::Corrupt { path, problem }),
                }
            }
        }
        Ok(entries)
    }

    /// Every readable record, in name order.
    pub fn records(&self) -> Result<Vec<Record>, Error> {
        Ok(self
            .entries()?
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::Record(record) => Some(*record),
                _ => None,
            })
            .collect())
    }

    /// The record named `name`, read alone: None when there is none, or
    /// when its file cannot be read as a record (logged). Unlike
    /// [`Store::find`] it never goes on to read every record for an id, so
    /// it costs the same with 10 records or 10,000: a CNI DEL or CHECK is
    /// often of an attachment that is gone, and read them all (8-12 ms of
    /// CPU with 1,000 attached).
    pub fn get(&self, name: &str) -> Option<Record> {
        if !valid_name(name) {
            return None;
        }
        let path = self.path_of(name);
        match read(&path) {
            Ok(record) => record,
            Err(problem) => {
                tracing::warn!("record {} cannot be read: {problem}", path.display());
                None
            }
        }
    }

    /// The live containers that share container `id`'s network, read from
    /// their markers (see `markers`) and their own records alone: a
    /// container's end asks it, and must not cost a read of every record.
    pub fn live_joiners_of(&self, id: &str) -> Result<Vec<Record>, Error> {
        let mut joiners = self.marked(&self.joins, id)?;
        joiners.retain(|r| r.joined.as_deref() == Some(id) && !r.is_stale());
        Ok(joiners)
    }

    /// The markers of `joins` that no live record explains: a temporary,
    /// one whose joiner is gone (crashed, or now sharing another network),
    /// or one whose target is. `live` are the records read under the lock,
    /// which the caller holds when it goes on to remove them.
    pub fn stale_joins(&self, live: &[&Record]) -> Result<Vec<StaleMarker>, Error> {
        let mut stale = Vec::new();
        for (target, joiner, path) in self.joins.all()? {
            let why = if file::is_temporary(&joiner) {
                Gone::Unfinished
            } else if !live
                .iter()
                .any(|r| r.name == joiner && r.joined.as_deref() == Some(target.as_str()))
            {
                Gone::Joiner(joiner.clone())
            } else if !live.iter().any(|r| r.id == target) {
                Gone::Target(target.clone())
            } else {
                continue;
            };
            stale.push(StaleMarker {
                kind: Kind::Join,
                key: target,
                name: joiner,
                path,
                why,
            });
        }
        Ok(stale)
    }

    /// The markers of `ids` that no record explains: no record of their
    /// name has their id. `records` are every record read, live or not: a
    /// stale record's marker goes with it.
    pub fn stale_ids(&self, records: &[&Record]) -> Result<Vec<StaleMarker>, Error> {
        let mut stale = Vec::new();
        for (id, name, path) in self.ids.all()? {
            if records.iter().any(|r| r.name == name && r.id == id) {
                continue;
            }
            stale.push(StaleMarker {
                kind: Kind::Id,
                key: id,
                why: Gone::Record(name.clone()),
                name,
                path,
            });
        }
        Ok(stale)
    }

    /// The records of `records` whose id has no marker of theirs: written
    /// by an earlier version, or by a writer that died between the two.
    /// A lookup by id does not find them until `gc` marks them.
    pub fn unmarked<'a>(&self, records: &[&'a Record]) -> Vec<&'a Record> {
        records
            .iter()
            .filter(|r| valid_name(&r.id) && valid_name(&r.name))
            .filter(|r| !self.ids.dir().join(&r.id).join(&r.name).is_file())
            .copied()
            .collect()
    }

    /// Marks the id of `record`, which [`Store::unmarked`] found unmarked.
    /// Under the lock.
    pub fn mark_id(&self, record: &Record) -> Result<(), Error> {
        Ok(self.ids.mark(&record.id, &record.name)?)
    }

    /// The markers `stale` lists, removed; those that were there. The
    /// caller holds the lock their records were read under.
    pub fn remove_markers(&self, stale: Vec<StaleMarker>) -> Result<Vec<StaleMarker>, Error> {
        let mut removed = Vec::new();
        for marker in stale {
            let markers = match marker.kind {
                Kind::Join => &self.joins,
                Kind::Id => &self.ids,
            };
            if markers.unmark(&marker.key, &marker.name)? {
                removed.push(marker);
            }
        }
        Ok(removed)
    }

    /// The record for `target`: a name, an id, or a prefix of one id.
    /// Opens the record of that name, then the id's markers (see
    /// `markers`), then reads the names of every id, never another record.
    /// Refuses a target that could name no record file: it would be looked
    /// up outside the directory, or fail the open for another reason.
    pub fn find(&self, target: &str) -> Result<Option<Record>, Error> {
        if !valid_target(target) {
            return Err(Error::BadTarget(target.to_string()));
        }
        if let Some(record) = self.get(target) {
            return Ok(Some(record));
        }
        if let Some(record) = self.with_id(target)?.into_iter().next() {
            return Ok(Some(record));
        }
        match &self.ids_prefixed(target)?[..] {
            [] => Ok(None),
            [id] => self.only_of_id(target, id),
            ids => Err(Error::Ambiguous {
                target: target.to_string(),
                ids: ids.to_vec(),
            }),
        }
    }

    /// The live ids `prefix` starts.
    fn ids_prefixed(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut ids = self.ids.keys()?;
        ids.retain(|id| id.starts_with(prefix));
        Ok(ids)
    }

    /// The one record of `id`, which `target` prefixes; two records
    /// claiming one id are ambiguous too.
    fn only_of_id(&self, target: &str, id: &str) -> Result<Option<Record>, Error> {
        let mut matches = self.with_id(id)?;
        match matches.len() {
            0 | 1 => Ok(matches.pop()),
            _ => Err(Error::Ambiguous {
                target: target.to_string(),
                ids: matches.into_iter().map(|r| r.id).collect(),
            }),
        }
    }

    /// The container `target` names, running (or dead) or exited. A name
    /// or a whole id names its container whatever else it prefixes: a
    /// live name, an exited name, a live id, an exited id, in that order.
    /// Only then is it a prefix, of ids of both kinds: one of several is
    /// refused naming them all (docker: "multiple IDs found with provided
    /// prefix"), rather than the running one winning silently.
    pub fn find_any(&self, target: &str) -> Result<Option<Found>, Error> {
        if !valid_target(target) {
            return Err(Error::BadTarget(target.to_string()));
        }
        let live = |record: Record| Ok(Some(Found::Live(Box::new(record))));
        if let Some(record) = self.get(target) {
            return live(record);
        }
        let exited = self.exited();
        if let Some(record) = exited.get(target) {
            return Ok(Some(Found::Exited(record)));
        }
        if let Some(record) = self.with_id(target)?.into_iter().next() {
            return live(record);
        }
        let mut prefixed = exited.prefixed(target)?;
        if let Some(whole) = prefixed.iter().position(|e| e.id == target) {
            return Ok(Some(Found::Exited(prefixed.swap_remove(whole))));
        }
        let live_ids = self.ids_prefixed(target)?;
        match (&live_ids[..], prefixed.len()) {
            ([], 0) => Ok(None),
            ([], 1) => Ok(prefixed.pop().map(Found::Exited)),
            ([id], 0) => Ok(self
                .only_of_id(target, id)?
                .map(|r| Found::Live(Box::new(r)))),
            _ => Err(Error::Ambiguous {
                target: target.to_string(),
                ids: live_ids
                    .into_iter()
                    .chain(prefixed.into_iter().map(|e| e.id))
                    .collect(),
            }),
        }
    }

    /// The records with the id `id`, in name order, found by its markers
    /// alone (see `markers`): a CNI ADD that finds its host link taken
    /// asks whose it is, and must not read every record.
    pub fn with_id(&self, id: &str) -> Result<Vec<Record>, Error> {
        let mut holders = self.marked(&self.ids, id)?;
        holders.retain(|r| r.id == id);
        Ok(holders)
    }

    /// The records `markers` marks under `key`, each read alone, in name
    /// order; what they say is the caller's to check.
    fn marked(&self, markers: &Markers, key: &str) -> Result<Vec<Record>, Error> {
        if !valid_name(key) {
            return Ok(Vec::new());
        }
        Ok(markers
            .names(key)?
            .iter()
            .filter_map(|name| self.get(name))
            .collect())
    }

    /// The container whose live supervisor is `pid`, as people name it:
    /// `container NAME (ID)`; None when no live record says so.
    pub fn container_of(&self, pid: u32) -> Option<String> {
        let records = self.records().ok()?;
        let record = records
            .into_iter()
            .find(|r| r.supervisor.pid == pid && !r.supervisor.is_none() && !r.is_stale())?;
        Some(format!("container {} ({})", record.name, record.id))
    }

    /// Removes `record`'s file if it still holds that record (same id).
    /// The caller holds the lock. True when it removed it.
    pub fn remove(&self, record: &Record) -> Result<bool, Error> {
        let path = self.path_of(&record.name);
        match read(&path) {
            Ok(Some(current)) if current.id == record.id => {
                self.unmark(record)?;
                Ok(file::remove(&path)?)
            }
            _ => Ok(false),
        }
    }

    /// Removes the markers of `record`: its id's, and its join's if it
    /// joined a network. Under the lock.
    fn unmark(&self, record: &Record) -> Result<(), Error> {
        self.unmark_id(record)?;
        if let Some(target) = record.joined.as_deref().filter(|t| valid_name(t)) {
            self.joins.unmark(target, &record.name)?;
        }
        Ok(())
    }

    /// Removes the marker of `record`'s id. Needs no lock (see
    /// [`Markers::mark`]).
    fn unmark_id(&self, record: &Record) -> Result<(), Error> {
        if valid_name(&record.id) {
            self.ids.unmark(&record.id, &record.name)?;
        }
        Ok(())
    }

    /// Removes a corrupt or temporary file found by [`Store::entries`].
    /// The caller holds the lock.
    pub fn remove_path(&self, path: &Path) -> Result<bool, Error> {
        Ok(file::remove(path)?)
    }

    /// Refuses `name` as `claim` would (a live supervisor's record has
    /// it), changing nothing: `run --dry-run` fails as the run would.
    pub fn check_name_free(&self, name: &str) -> Result<(), Error> {
        if !valid_name(name) {
            return Err(Error::BadName(name.to_string()));
        }
        match self.get(name) {
            Some(holder) if !holder.is_stale() => Err(name_taken(holder)),
            _ => Ok(()),
        }
    }

    /// Claims `record.name` for `record`, the caller's own: refused when a
    /// live supervisor's record has that name. A stale record of that name
    /// (or a corrupt file) is replaced; the stale record is returned, so
    /// the caller can clean up what it held.
    pub fn claim(&self, record: Record) -> Result<(Registration, Option<Record>), Error> {
        if !valid_name(&record.name) {
            return Err(Error::BadName(record.name));
        }
        // They name the directories of its markers (see `markers`).
        if !valid_name(&record.id) {
            return Err(Error::BadName(record.id));
        }
        if let Some(target) = record.joined.as_ref().filter(|t| !valid_name(t)) {
            return Err(Error::BadName(target.clone()));
        }
        let _lock = self.lock()?;
        let path = self.path_of(&record.name);
        let replaced = match read(&path) {
            Ok(None) => None,
            Ok(Some(holder)) if !holder.is_stale() => return Err(name_taken(holder)),
            Ok(Some(stale)) => Some(stale),
            Err(problem) => {
                tracing::warn!("replacing corrupt record {}: {problem}", path.display());
                None
            }
        };
        if let Some(stale) = &replaced
            && stale.id != record.id
        {
            self.unmark_id(stale)?;
        }
        self.write(&record)?;
        // Before the join (clone3), so the target's end, after its
        // container's, finds every container that did join it.
        let marked = self.ids.mark(&record.id, &record.name).and_then(|()| {
            record
                .joined
                .as_ref()
                .map_or(Ok(()), |target| self.joins.mark(target, &record.name))
        });
        if let Err(err) = marked {
            let _ = self.ids.unmark(&record.id, &record.name);
            let _ = file::remove(&path);
            return Err(err.into());
        }
        let registration = Registration {
            store: self.clone(),
            record,
            removed: false,
            exited: None,
        };
        Ok((registration, replaced))
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{SUFFIX}"))
    }

    fn write(&self, record: &Record) -> Result<(), Error> {
        let name = format!("{}{SUFFIX}", record.name);
        let json = serde_json::to_vec_pretty(record).map_err(|source| Error::Encode {
            path: self.dir.join(&name),
            source,
        })?;
        file::write_atomic(&self.dir, &name, &json)?;
        Ok(())
    }
}

/// Names are checked by `spec`; this only keeps a record inside its directory.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\0'])
}

/// The longest name a record file can have: NAME_MAX less its suffix.
const MAX_TARGET: usize = 255 - SUFFIX.len();

/// A name, id or prefix given by a user that could name a record file,
/// and prints on one line.
fn valid_target(target: &str) -> bool {
    valid_name(target) && target.len() <= MAX_TARGET && !target.contains(char::is_control)
}

/// The record at `path`; None when there is none; the problem when it
/// cannot be read as one.
fn read(path: &Path) -> Result<Option<Record>, String> {
    match file::read_regular(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| err.to_string()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err.to_string()),
    }
}

/// The record of the calling supervisor, from claim to removal. Dropping
/// it removes the record too.
#[derive(Debug)]
pub struct Registration {
    store: Store,
    record: Record,
    removed: bool,
    /// What [`Registration::remove`] leaves in its place.
    exited: Option<Exited>,
}

impl Registration {
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Changes the record and writes it, under the lock.
    pub fn update(&mut self, change: impl FnOnce(&mut Record)) -> Result<(), Error> {
        change(&mut self.record);
        let _lock = self.store.lock()?;
        self.store.write(&self.record)
    }

    /// Leaves the record in place after this process: its holder is no
    /// process (a CNI attachment, see `Process::UNTIL_RELEASED`) and its
    /// DEL removes it.
    pub fn keep(mut self) {
        self.removed = true;
    }

    /// Once the run has started (a failed start leaves it as it was): the
    /// exited record of an earlier run of the name goes, whether this one
    /// is detached or not, so it cannot come back when this one ends.
    pub fn forget_earlier_exited(&self) -> Result<bool, Error> {
        self.store.forget_exited(&self.record.name)
    }

    /// Has [`Registration::remove`] leave an exited record (see
    /// `exited`) for a detached container that ended with `exit_code`.
    pub fn exited_with(&mut self, exit_code: u8) {
        self.exited = Some(Exited::of(&self.record, exit_code));
    }

    /// Removes the record: the last step of a teardown. Nobody else writes
    /// a live supervisor's record, so this needs no lock; its join's
    /// marker, if any, goes first, under the lock (see `markers`). An
    /// exited record is written first, under the lock, so the name is
    /// never without either.
    pub fn remove(self) -> Result<(), Error> {
        self.remove_releasing(())
    }

    /// [`Registration::remove`], letting go of `held` last. An exited
    /// record replaces the live one under the lock, and `held` goes before
    /// the lock: whoever takes the lock (`rm`, `gc`) and finds the exited
    /// record finds `held` gone too, and whoever waits for `held` to go
    /// finds the exited record and no live one (`run -d` holds its log's
    /// writer, whose lock `rm` and `gc` take for a new run's, and whose
    /// end `logs -f` waits for).
    pub fn remove_releasing<T>(mut self, held: T) -> Result<(), Error> {
        self.removed = true;
        let Some(exited) = self.exited.take() else {
            self.unmark()?;
            file::remove(&self.store.path_of(&self.record.name))?;
            drop(held);
            return Ok(());
        };
        // One that cannot be written still lets the live record go: left,
        // it would show a dead container.
        let (lock, written) = match self.store.lock() {
            Ok(lock) => {
                let written = self.store.exited.write(&exited);
                (Some(lock), written)
            }
            Err(err) => (None, Err(err)),
        };
        let unmarked = match lock {
            Some(_) => self.store.unmark(&self.record),
            None => self.unmark(),
        };
        let removed = unmarked.and_then(|()| {
            file::remove(&self.store.path_of(&self.record.name))?;
            Ok(())
        });
        drop(held);
        drop(lock);
        removed.and(written)
    }

    fn unmark(&self) -> Result<(), Error> {
        if self.record.joined.is_none() {
            return self.store.unmark_id(&self.record);
        }
        let _lock = self.store.lock()?;
        self.store.unmark(&self.record)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.unmark();
            let _ = fs::remove_file(self.store.path_of(&self.record.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Process;

    fn temp_store(test: &str) -> Store {
        Store::new(&crate::scratch::unique_path(&format!("state-{test}")))
    }

    /// Exited records of these names and ids.
    fn write_exited(store: &Store, exited: &[(&str, &str)]) {
        let _lock = store.lock().unwrap();
        for (name, id) in exited {
            store
                .exited()
                .write(&Exited::of(&mine(name, id), 0))
                .unwrap();
        }
    }

    fn mine(name: &str, id: &str) -> Record {
        Record::new(name, id, Process::current().unwrap(), vec!["true".into()])
    }

    fn dead(name: &str, id: &str) -> Record {
        let mut record = mine(name, id);
        record.supervisor.start_time += 1;
        record
    }

    fn plant(store: &Store, record: &Record) {
        let _lock = store.lock().unwrap();
        store.write(record).unwrap();
    }

    fn cleanup(store: &Store) {
        let _ = fs::remove_dir_all(store.dir().parent().unwrap());
    }

    fn joiner(name: &str, id: &str, target: &str) -> Record {
        let mut record = mine(name, id);
        record.joined = Some(target.to_string());
        record
    }

    fn names(records: Vec<Record>) -> Vec<String> {
        records.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn an_exited_record_takes_the_live_ones_place_and_one_unwritable_still_lets_it_go() {
        let store = temp_store("exited-teardown");
        let (mut registration, _) = store.claim(mine("job", "aaa")).unwrap();
        registration.exited_with(3);
        registration.remove().unwrap();
        assert!(store.get("job").is_none());
        let exited = store.exited().get("job").expect("its exited record");
        assert_eq!((exited.id.as_str(), exited.exit_code), ("aaa", 3));

        let (mut registration, _) = store.claim(mine("blocked", "bbb")).unwrap();
        registration.exited_with(1);
        // A directory where its file goes: the rename fails.
        fs::create_dir_all(store.dir().parent().unwrap().join("exited/blocked.json/x")).unwrap();
        assert!(registration.remove().is_err());
        assert!(
            store.get("blocked").is_none(),
            "the live record went all the same"
        );
        cleanup(&store);
    }

    /// What `remove_releasing` lets go of: when it goes, the exited record
    /// has replaced the live one and the store's lock is still held.
    struct Held<'a>(&'a Store, &'a std::cell::Cell<Option<(bool, bool, bool)>>);

    impl Drop for Held<'_> {
        fn drop(&mut self) {
            let lock = fs::File::open(self.0.dir().join(".lock")).unwrap();
            let locked =
                nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err();
            let exited = self.0.exited().get("job").is_some();
            self.1
                .set(Some((exited, self.0.get("job").is_none(), locked)));
        }
    }

    #[test]
    fn what_an_exited_record_releases_goes_after_the_live_record_under_the_lock() {
        let store = temp_store("exited-releasing");
        let (mut registration, _) = store.claim(mine("job", "aaa")).unwrap();
        registration.exited_with(3);
        let seen = std::cell::Cell::new(None);
        registration.remove_releasing(Held(&store, &seen)).unwrap();
        assert_eq!(
            seen.get(),
            Some((true, true, true)),
            "(exited record there, live one gone, store locked)"
        );
        cleanup(&store);
    }

    #[test]
    fn a_running_joiner_is_found_by_its_marker_and_gone_with_its_record() {
        let store = temp_store("joiners");
        let (side, _) = store.claim(joiner("side", "bbb", "aaa")).unwrap();
        let (other, _) = store.claim(joiner("other", "ccc", "zzz")).unwrap();
        assert_eq!(names(store.live_joiners_of("aaa").unwrap()), ["side"]);
        assert!(store.live_joiners_of("bbb").unwrap().is_empty());
        side.remove().unwrap();
        assert!(store.live_joiners_of("aaa").unwrap().is_empty());
        let joins = store.dir().parent().unwrap().join("joins");
        assert!(
            !joins.join("aaa").exists(),
            "its last marker takes it along"
        );
        drop(other);
        assert_eq!(file::names(&joins).unwrap(), Vec::<String>::new());
        cleanup(&store);
    }

    #[test]
    fn a_stale_marker_is_named_with_why_and_removed_and_a_live_join_kept() {
        let store = temp_store("joiners-crashed");
        let (target, _) = store.claim(mine("target", "aaa")).unwrap();
        let (other_target, _) = store.claim(mine("other", "eee")).unwrap();
        let (live, _) = store.claim(joiner("live", "bbb", "aaa")).unwrap();
        let crashed = joiner("crashed", "ccc", "aaa");
        let (registration, _) = store.claim(crashed.clone()).unwrap();
        // Its supervisor died: the record stays, stale, as its marker does.
        std::mem::forget(registration);
        plant(&store, &dead("crashed", "ccc"));
        // One that died between its marker and its record.
        store.joins.mark("aaa", "unborn").unwrap();
        // One whose name now joins another network.
        store.joins.mark("aaa", "moved").unwrap();
        let (moved, _) = store.claim(joiner("moved", "ddd", "eee")).unwrap();
        // A live joiner of a target that is gone.
        let (orphan, _) = store.claim(joiner("orphan", "fff", "ggg")).unwrap();
        // A marker's writer that died before its rename.
        let joins = store.dir().parent().unwrap().join("joins");
        fs::write(joins.join("aaa/.half.tmp"), "").unwrap();
        assert_eq!(names(store.live_joiners_of("aaa").unwrap()), ["live"]);
        let records = store.records().unwrap();
        let live_records: Vec<&Record> = records.iter().filter(|r| !r.is_stale()).collect();
        let found: Vec<String> = store
            .stale_joins(&live_records)
            .unwrap()
            .iter()
            .map(|stale| stale.to_string())
            .collect();
        let at = |path: &str| joins.join(path).display().to_string();
        assert_eq!(
            found,
            [
                format!("join marker {}: unfinished", at("aaa/.half.tmp")),
                format!(
                    "join marker {}: its joiner crashed is gone",
                    at("aaa/crashed")
                ),
                format!("join marker {}: its joiner moved is gone", at("aaa/moved")),
                format!(
                    "join marker {}: its joiner unborn is gone",
                    at("aaa/unborn")
                ),
                format!("join marker {}: its target ggg is gone", at("ggg/orphan")),
            ]
        );
        let removed = store
            .remove_markers(store.stale_joins(&live_records).unwrap())
            .unwrap();
        let removed: Vec<String> = removed.iter().map(|s| s.to_string()).collect();
        assert_eq!(removed, found, "gc removes what check names");
        assert!(store.stale_joins(&live_records).unwrap().is_empty());
        assert_eq!(store.joins.names("aaa").unwrap(), ["live"]);
        assert_eq!(store.joins.names("eee").unwrap(), ["moved"]);
        assert!(
            !joins.join("ggg").exists(),
            "its last marker takes it along"
        );
        drop((live, moved, orphan, target, other_target));
        cleanup(&store);
    }

    /// Runs `lookup` with a stranger's record planted as a FIFO that tells
    /// when it is opened (its writer's open returns then): true when
    /// `lookup` opened it.
    fn opens_another_record(store: &Store, lookup: impl FnOnce()) -> bool {
        crate::scratch::opens_fifo(&store.dir().join("stranger.json"), lookup)
    }

    #[test]
    fn gc_never_removes_through_a_link_planted_for_a_markers_directory() {
        let store = temp_store("joins-link");
        let (target, _) = store.claim(mine("target", "aaa")).unwrap();
        let victim = store.dir().parent().unwrap().join("victim");
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("precious"), "x").unwrap();
        let joins = store.dir().parent().unwrap().join("joins");
        fs::create_dir_all(&joins).unwrap();
        std::os::unix::fs::symlink(&victim, joins.join("bbb")).unwrap();
        std::os::unix::fs::symlink(&victim, store.ids.dir().join("ccc")).unwrap();
        let records = store.records().unwrap();
        let live: Vec<&Record> = records.iter().collect();
        let stale = store.stale_joins(&live).unwrap();
        let stale_ids = store.stale_ids(&live).unwrap();
        store.remove_markers(stale).unwrap();
        store.remove_markers(stale_ids).unwrap();
        assert!(victim.join("precious").exists(), "removed through the link");
        drop(target);
        cleanup(&store);
    }

    #[test]
    fn a_containers_end_opens_no_other_record_to_find_its_joiners() {
        let store = temp_store("joiners-fifo");
        let (side, _) = store.claim(joiner("side", "bbb", "aaa")).unwrap();
        let opened = opens_another_record(&store, || {
            assert_eq!(names(store.live_joiners_of("aaa").unwrap()), ["side"]);
            assert!(store.live_joiners_of("nobody").unwrap().is_empty());
        });
        assert!(!opened, "another record was opened");
        drop(side);
        cleanup(&store);
    }

    #[test]
    fn a_lookup_by_id_or_prefix_opens_no_other_record() {
        let store = temp_store("ids-fifo");
        let (a, _) = store.claim(mine("alpha", "abc123")).unwrap();
        let (b, _) = store.claim(mine("beta", "abd456")).unwrap();
        let (c, _) = store.claim(mine("gamma", "ffe789")).unwrap();
        let lookups = [
            ("exact id", "ffe789", Some("gamma")),
            ("unique prefix", "abc", Some("alpha")),
            ("unknown id", "0123", None),
        ];
        for (what, target, found) in lookups {
            let opened = opens_another_record(&store, || {
                let record = store.find(target).unwrap();
                assert_eq!(record.map(|r| r.name).as_deref(), found, "{what}");
            });
            assert!(!opened, "{what}: another record was opened");
        }
        let opened = opens_another_record(&store, || {
            let err = store.find("ab").unwrap_err();
            assert_eq!(
                err.to_string(),
                "\"ab\" matches several containers: abc123, abd456"
            );
        });
        assert!(!opened, "ambiguous prefix: another record was opened");
        let opened = opens_another_record(&store, || {
            assert_eq!(names(store.with_id("abd456").unwrap()), ["beta"]);
        });
        assert!(!opened, "with_id: another record was opened");
        drop((a, b, c));
        cleanup(&store);
    }

    #[test]
    fn a_shared_id_finds_each_holder_and_a_marker_that_lies_finds_nothing() {
        let store = temp_store("ids-shared");
        let (a, _) = store.claim(mine("alpha", "abc123")).unwrap();
        let (b, _) = store.claim(mine("beta", "abc123")).unwrap();
        assert_eq!(names(store.with_id("abc123").unwrap()), ["alpha", "beta"]);
        // As before: the first in name order; a prefix of both is ambiguous.
        assert_eq!(store.find("abc123").unwrap().unwrap().name, "alpha");
        assert!(matches!(
            store.find("abc"),
            Err(Error::Ambiguous { ids, .. }) if ids == ["abc123", "abc123"]
        ));
        drop(b);
        // A marker naming a record that has another id.
        store.ids.mark("0000aa", "alpha").unwrap();
        assert!(store.with_id("0000aa").unwrap().is_empty());
        assert!(store.find("0000").unwrap().is_none());
        drop(a);
        cleanup(&store);
    }

    #[test]
    fn a_target_that_could_name_no_record_file_is_refused_naming_it() {
        let store = temp_store("ids-hostile");
        let (a, _) = store.claim(mine("alpha", "abc123")).unwrap();
        let long = "a".repeat(MAX_TARGET + 1);
        for target in [
            "../x",
            ".",
            "..",
            "",
            "a/b",
            "x\ny",
            "\u{1}\u{7f}",
            "\u{9b}1m",
            &long,
        ] {
            let err = store.find(target).unwrap_err();
            assert!(matches!(&err, Error::BadTarget(t) if t == target), "{err}");
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("{target:?} names no container: ")),
                "{message}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
        // The longest that can be is looked up, and odd but printable
        // names too.
        assert!(store.find(&long[1..]).unwrap().is_none());
        assert!(store.find("é\u{202e}x").unwrap().is_none());
        drop(a);
        cleanup(&store);
    }

    #[test]
    fn gc_removes_the_id_markers_no_record_explains_and_marks_the_live_ones_missing() {
        let store = temp_store("ids-stale");
        let (a, _) = store.claim(mine("alpha", "abc123")).unwrap();
        // An earlier version's record: no marker.
        plant(&store, &mine("old", "0ld000"));
        // A marker whose record is gone, and one whose record has
        // another id now.
        store.ids.mark("dead00", "ghost").unwrap();
        store.ids.mark("fff000", "alpha").unwrap();
        let records = store.records().unwrap();
        let all: Vec<&Record> = records.iter().collect();
        let ids = store.dir().parent().unwrap().join("ids");
        let stale: Vec<String> = store
            .stale_ids(&all)
            .unwrap()
            .iter()
            .map(|m| m.to_string())
            .collect();
        assert_eq!(
            stale,
            [
                format!(
                    "id marker {}: its record ghost is gone",
                    ids.join("dead00/ghost").display()
                ),
                format!(
                    "id marker {}: its record alpha is gone",
                    ids.join("fff000/alpha").display()
                ),
            ]
        );
        assert_eq!(
            names(store.unmarked(&all).into_iter().cloned().collect()),
            ["old"]
        );
        assert!(store.find("0ld").unwrap().is_none(), "not found unmarked");
        let removed = store
            .remove_markers(store.stale_ids(&all).unwrap())
            .unwrap();
        assert_eq!(removed.len(), 2);
        store.mark_id(all[1]).unwrap();
        assert!(store.stale_ids(&all).unwrap().is_empty());
        assert!(store.unmarked(&all).is_empty());
        assert_eq!(store.find("0ld").unwrap().unwrap().name, "old");
        assert_eq!(file::names(&ids).unwrap(), ["0ld000", "abc123"]);
        drop(a);
        let _ = store.remove(&store.get("old").unwrap());
        assert_eq!(file::names(&ids).unwrap(), Vec::<String>::new());
        cleanup(&store);
    }

    #[test]
    fn a_live_name_is_refused_naming_its_holder() {
        let store = temp_store("taken");
        let (first, replaced) = store.claim(mine("web", "aaa")).unwrap();
        assert!(replaced.is_none());
        let err = store.claim(mine("web", "bbb")).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "the name \"web\" is in use by container aaa (supervisor pid {})",
                std::process::id()
            )),
            "{err}"
        );
        first.remove().unwrap();
        let (second, _) = store.claim(mine("web", "bbb")).unwrap();
        assert_eq!(store.find("web").unwrap().unwrap().id, "bbb");
        drop(second);
        assert!(store.find("web").unwrap().is_none(), "dropping removes it");
        cleanup(&store);
    }

    #[test]
    fn a_stale_name_is_reclaimed_and_the_stale_record_returned() {
        let store = temp_store("stale");
        plant(&store, &dead("web", "old"));
        store.ids.mark("old", "web").unwrap();
        let (registration, replaced) = store.claim(mine("web", "new")).unwrap();
        assert_eq!(replaced.map(|r| r.id), Some("old".to_string()));
        assert_eq!(store.find("web").unwrap().unwrap().id, "new");
        // The old id's marker went with it; the new id finds the record.
        assert_eq!(store.ids.keys().unwrap(), ["new"]);
        assert_eq!(store.find("ne").unwrap().unwrap().name, "web");
        drop(registration);
        cleanup(&store);
    }

    #[test]
    fn a_corrupt_record_is_listed_as_such_and_replaced_by_a_claim() {
        let store = temp_store("corrupt");
        fs::create_dir_all(store.dir()).unwrap();
        fs::write(store.dir().join("web.json"), "{\"name\":\"web\",\"id").unwrap();
        fs::write(store.dir().join(".x.json.tmp"), "half").unwrap();
        fs::write(store.dir().join("notes.txt"), "a stranger").unwrap();
        let entries = store.entries().unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert!(
            matches!(&entries[0], Entry::Temporary { .. }),
            "{entries:?}"
        );
        assert!(matches!(&entries[1], Entry::Corrupt { .. }), "{entries:?}");
        assert!(store.records().unwrap().is_empty());
        assert!(store.find("web").unwrap().is_none());
        let (registration, replaced) = store.claim(mine("web", "new")).unwrap();
        assert!(replaced.is_none());
        registration.remove().unwrap();
        cleanup(&store);
    }

    #[test]
    fn find_takes_a_name_an_id_or_a_unique_id_prefix() {
        let store = temp_store("find");
        let (a, _) = store.claim(mine("alpha", "abc123")).unwrap();
        let (b, _) = store.claim(mine("beta", "abd456")).unwrap();
        assert_eq!(store.find("alpha").unwrap().unwrap().id, "abc123");
        assert_eq!(store.find("abd456").unwrap().unwrap().name, "beta");
        assert_eq!(store.find("abc").unwrap().unwrap().name, "alpha");
        assert!(matches!(
            store.find("ab"),
            Err(Error::Ambiguous { ids, .. }) if ids.len() == 2
        ));
        assert!(store.find("zzz").unwrap().is_none());
        assert!(matches!(store.find("../x"), Err(Error::BadTarget(_))));
        drop((a, b));
        cleanup(&store);
    }

    #[test]
    fn a_prefix_of_a_live_and_an_exited_id_is_ambiguous_but_a_name_or_whole_id_is_not() {
        let store = temp_store("find-any");
        let (up, _) = store.claim(mine("up", "abc123")).unwrap();
        write_exited(&store, &[("done", "abd456"), ("old", "abd789")]);
        let ids = |target| match store.find_any(target) {
            Err(Error::Ambiguous { mut ids, .. }) => {
                ids.sort();
                ids
            }
            other => panic!("{target}: {other:?}"),
        };
        assert_eq!(ids("ab"), ["abc123", "abd456", "abd789"]);
        assert_eq!(ids("abd"), ["abd456", "abd789"]);
        let name = |target| match store.find_any(target).unwrap() {
            Some(Found::Live(record)) => record.name,
            Some(Found::Exited(exited)) => exited.name,
            None => String::new(),
        };
        assert_eq!(name("abc"), "up");
        assert_eq!(name("abd4"), "done");
        assert_eq!(name("done"), "done");
        assert_eq!(name("abc123"), "up");
        assert_eq!(name("zzz"), "");
        drop(up);
        cleanup(&store);
    }

    #[test]
    fn an_exited_name_or_whole_id_wins_over_an_ambiguous_prefix_of_running_ids() {
        let store = temp_store("find-any-exact");
        let (one, _) = store.claim(mine("one", "a1")).unwrap();
        let (two, _) = store.claim(mine("two", "a2")).unwrap();
        write_exited(&store, &[("a", "b9"), ("c", "a")]);
        let exited = |target| match store.find_any(target) {
            Ok(Some(Found::Exited(exited))) => exited.id,
            other => panic!("{target}: {other:?}"),
        };
        assert_eq!(exited("a"), "b9", "the exited name first");
        {
            let _lock = store.lock().unwrap();
            store.exited().remove("a").unwrap();
        }
        assert_eq!(exited("a"), "a", "then the exited whole id");
        drop((one, two));
        cleanup(&store);
    }

    #[test]
    fn an_update_is_written_and_remove_takes_only_the_same_record() {
        let store = temp_store("update");
        let (mut registration, _) = store.claim(mine("web", "aaa")).unwrap();
        registration
            .update(|r| r.address = Some(std::net::Ipv4Addr::new(172, 16, 0, 9)))
            .unwrap();
        let read = store.find("web").unwrap().unwrap();
        assert_eq!(read.address, registration.record().address);
        let other = mine("web", "bbb");
        assert!(!store.remove(&other).unwrap());
        assert!(store.remove(&read).unwrap());
        registration.remove().unwrap();
        cleanup(&store);
    }

    #[test]
    fn a_record_planted_as_a_fifo_reads_as_none_at_once() {
        let store = temp_store("fifo");
        fs::create_dir_all(store.dir()).unwrap();
        let fifo = store.dir().join("c1:eth0.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = store.clone();
        std::thread::spawn(move || {
            let _ = tx.send(reader.get("c1:eth0").is_none());
        });
        let none = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading the record never ended");
        assert!(none);
        assert!(matches!(
            &store.entries().unwrap()[..],
            [Entry::Corrupt { .. }]
        ));
        cleanup(&store);
    }

    #[test]
    fn a_state_directory_someone_else_can_write_is_refused_naming_what() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::scratch::unique_path("state-not-ours");
        fs::create_dir_all(dir.join("leases")).unwrap();
        check_dir(&dir).unwrap();
        let refused = |dir: &Path| match check_dir(dir) {
            Err(Error::NotOurs { path, why }) => format!("{} {why}", path.display()),
            other => panic!("{other:?}"),
        };
        // Planted in place of a directory of ours: records would be
        // written where it points.
        std::os::unix::fs::symlink("/etc", dir.join("containers")).unwrap();
        assert_eq!(
            refused(&dir),
            format!("{} a symbolic link", dir.join("containers").display())
        );
        fs::remove_file(dir.join("containers")).unwrap();
        fs::set_permissions(dir.join("leases"), fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            refused(&dir),
            format!(
                "{} writable by every user (mode 777)",
                dir.join("leases").display()
            )
        );
        fs::set_permissions(dir.join("leases"), fs::Permissions::from_mode(0o755)).unwrap();
        if nix::unistd::geteuid().is_root() {
            let nobody = Some(nix::unistd::Uid::from_raw(65534));
            nix::unistd::chown(&dir, nobody, None).unwrap();
            assert!(refused(&dir).ends_with("owned by uid 65534, not 0"));
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_directory_another_user_could_make_or_swap_first_is_refused_naming_its_parent() {
        use std::os::unix::fs::PermissionsExt;
        let shared = crate::scratch::unique_path("state-shared-parent");
        fs::create_dir_all(&shared).unwrap();
        let state = shared.join("sv");
        let refused = |mode: u32| {
            fs::set_permissions(&shared, fs::Permissions::from_mode(mode)).unwrap();
            match check_dir(&state) {
                Err(Error::NotOurs { path, why }) => {
                    assert_eq!(path, shared);
                    Some(why)
                }
                Ok(()) => None,
                Err(other) => panic!("{other}"),
            }
        };
        // Not made yet, as /tmp/sv: whoever makes it first owns it.
        let why = refused(0o1777).expect("a missing directory under /tmp");
        assert_eq!(
            why,
            format!(
                "writable by every user (mode 1777), and {} is not made yet: another user could make it first",
                state.display()
            )
        );
        assert!(refused(0o755).is_none(), "a parent only we can write");
        fs::create_dir(&state).unwrap();
        assert!(refused(0o1777).is_none(), "ours, under the sticky bit");
        let why = refused(0o777).expect("renamed away and replaced");
        assert!(why.contains("without the sticky bit"), "{why}");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_dir_all(&shared).unwrap();
    }

    #[test]
    fn a_state_directory_reached_through_what_another_user_can_change_is_refused_naming_it() {
        use std::os::unix::fs::PermissionsExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        // /tmp as it is: every user's, sticky; a directory of ours there.
        let shared = crate::scratch::unique_path("state-ancestors");
        fs::create_dir_all(shared.join("ours/sv")).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let refused = |state: &Path| match check_dir(state) {
            Err(Error::NotOurs { path, why }) => Some((path, why)),
            Ok(()) => None,
            Err(other) => panic!("{other}"),
        };
        assert_eq!(refused(&shared.join("ours/sv")), None);
        // Another user's link there, to a directory of ours: it can point
        // it elsewhere whenever it likes.
        let link = shared.join("link");
        std::os::unix::fs::symlink(shared.join("ours"), &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
        let (path, why) = refused(&link.join("sv")).expect("through another user's link");
        assert_eq!(path, link);
        assert_eq!(
            why,
            format!(
                "owned by uid 65534 in {}, which every user can write (mode 1777): it could put another in its place",
                shared.display()
            )
        );
        // Another user's directory on the way.
        let theirs = shared.join("theirs");
        fs::create_dir_all(theirs.join("sv")).unwrap();
        nix::unistd::chown(&theirs, nobody, None).unwrap();
        let (path, why) = refused(&theirs.join("sv")).expect("under another user's directory");
        assert_eq!(path, theirs);
        assert!(why.starts_with("owned by uid 65534"), "{why}");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_dir_all(&shared).unwrap();
    }

    #[test]
    fn names_that_would_leave_the_directory_are_refused() {
        let store = temp_store("badname");
        for name in ["", ".hidden", "a/b"] {
            assert!(matches!(
                store.claim(mine(name, "x")),
                Err(Error::BadName(_))
            ));
            assert!(matches!(
                store.claim(joiner("side", "x", name)),
                Err(Error::BadName(_))
            ));
        }
        assert!(store.records().unwrap().is_empty(), "nothing claimed");
        cleanup(&store);
    }
}
