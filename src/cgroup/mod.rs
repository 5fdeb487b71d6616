//! A container's cgroup: `--memory`, `--cpus` and `--pids-limit`.
//!
//! cgroup v2 when the host runs it (cgroup2 at /sys/fs/cgroup), the v1
//! `memory`, `cpu` and `pids` hierarchies otherwise (`v1`, `v2`: one small
//! interface, what `Hierarchy` dispatches on). Only a container with a limit
//! gets a cgroup; one without stays in its supervisor's.
//!
//! ```text
//! v2: /sys/fs/cgroup/supervisor-HASH/ID
//! v1: /sys/fs/cgroup/{memory,cpu,pids}/supervisor-HASH/ID (the ones limited)
//! ```
//!
//! cgroupfs is one tree for the whole machine, whatever mount namespace
//! looks at it: two supervisors with state directories at the same path in
//! different namespaces (every test's /run/supervisor) must not meet there.
//! So HASH is of the state directory's path, device and inode, and ID is
//! the container's. The paths go into the container's record before any is
//! created, so `gc` finds what a crashed supervisor left.
//!
//! The supervisor stays where it is; only the container's first process
//! moves in, before it runs anything of the user's (v2: clone3 puts it
//! there with CLONE_INTO_CGROUP; v1: it writes "0" to each `tasks` file as
//! its first step, see `join_files`), and its init and command inherit it.
//! `exec`'s command joins it itself the same way.

mod v1;
mod v2;

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::values::Resources;

/// Where the hierarchies are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// The name of the directory of one state directory's containers.
const PREFIX: &str = "supervisor-";

const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// How long an rmdir retries while the kernel lets go of the last tasks.
const REMOVE_PATIENCE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--{option} needs the {controller} cgroup controller, which {where_} does not offer")]
    Missing {
        option: &'static str,
        controller: &'static str,
        where_: String,
    },
    #[error("reading state directory {}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("creating cgroup {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {value:?} to {}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("opening {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing cgroup {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a cgroup of the supervisor's", path.display())]
    NotOurs { path: PathBuf },
}

/// Which cgroup version, mounted where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// One cgroup2 tree at `root`.
    V2 { root: PathBuf },
    /// A v1 hierarchy per controller, at `root/CONTROLLER`.
    V1 { root: PathBuf },
}

impl Hierarchy {
    /// The host's: v2 when /sys/fs/cgroup is a cgroup2 (with
    /// cgroup.controllers), else v1, hybrid hosts included.
    pub fn detect() -> Hierarchy {
        let root = PathBuf::from(ROOT);
        if fs_magic(&root) == Some(CGROUP2_SUPER_MAGIC) && root.join("cgroup.controllers").exists()
        {
            Hierarchy::V2 { root }
        } else {
            Hierarchy::V1 { root }
        }
    }

    /// Where container `id` of `state_dir` goes, checked against the
    /// controllers there; creates nothing (`Plan::create` does). On v1,
    /// without limits there is no hierarchy to go in.
    pub fn plan(&self, state_dir: &Path, id: &str, resources: &Resources) -> Result<Plan, Error> {
        let group = format!("{PREFIX}{}", state_dir_hash(state_dir)?);
        let leaves = match self {
            Hierarchy::V2 { root } => vec![v2::check(root, resources)?.join(&group).join(id)],
            Hierarchy::V1 { root } => v1::check(root, resources)?
                .into_iter()
                .map(|dir| dir.join(&group).join(id))
                .collect(),
        };
        Ok(Plan {
            hierarchy: self.clone(),
            leaves,
            resources: *resources,
        })
    }
}

/// Where the cgroup2 hierarchy is mounted, as /proc/self/mountinfo says
/// (`/sys/fs/cgroup` on a v2 host, `/sys/fs/cgroup/unified` on a hybrid
/// one); None when nothing mounts it.
pub fn cgroup2_mount() -> io::Result<Option<PathBuf>> {
    Ok(cgroup2_in_mountinfo(&fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// The first cgroup2 mount point of `mountinfo`: the fifth field, its
/// spaces and other specials escaped as octal (`\040`), of a line whose
/// filesystem type (the first field after ` - `) is `cgroup2`.
fn cgroup2_in_mountinfo(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split(' ').next() != Some("cgroup2") {
            return None;
        }
        mount.split(' ').nth(4).map(unescape_octal)
    })
}

fn unescape_octal(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let code = bytes
            .get(at + 1..at + 4)
            .filter(|_| bytes[at] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte);
                at += 4;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// A container's cgroup before it is created: its paths, for the record.
#[derive(Debug, Clone)]
pub struct Plan {
    hierarchy: Hierarchy,
    /// One per hierarchy (v1) or one (v2).
    leaves: Vec<PathBuf>,
    resources: Resources,
}

impl Plan {
    pub fn paths(&self) -> &[PathBuf] {
        &self.leaves
    }

    /// Makes the directories and writes the limits. What it made goes again
    /// when it fails.
    pub fn create(self) -> Result<Cgroup, Error> {
        let mut cgroup = Cgroup {
            leaves: Vec::new(),
            dir: None,
            joins: Vec::new(),
        };
        for leaf in &self.leaves {
            make_leaf(leaf, &self.hierarchy, &self.resources)?;
            cgroup.leaves.push(leaf.clone());
        }
        for leaf in &self.leaves {
            match &self.hierarchy {
                Hierarchy::V2 { .. } => {
                    v2::limit(leaf, &self.resources)?;
                    cgroup.dir = Some(open_dir(leaf)?);
                }
                Hierarchy::V1 { .. } => v1::limit(leaf, &self.resources)?,
            }
        }
        if cgroup.dir.is_none() {
            cgroup.joins = join_files(&cgroup.leaves)?;
        }
        Ok(cgroup)
    }
}

/// The parent of `leaf` (with its controllers enabled, on v2), then `leaf`.
/// Another container's teardown may remove an empty parent meanwhile: then
/// it is made again.
fn make_leaf(leaf: &Path, hierarchy: &Hierarchy, resources: &Resources) -> Result<(), Error> {
    let parent = leaf.parent().unwrap_or(leaf);
    fn create(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Create {
            path: path.to_path_buf(),
            source,
        }
    }
    for _ in 0..10 {
        match fs::create_dir(parent) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(create(parent)(err)),
        }
        if let Hierarchy::V2 { root } = hierarchy {
            match v2::enable(root, parent, resources) {
                Err(Error::Write { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    continue;
                }
                other => other?,
            }
        }
        match fs::create_dir(leaf) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            other => return other.map_err(create(leaf)),
        }
    }
    Err(create(leaf)(io::Error::from(io::ErrorKind::NotFound)))
}

fn open_dir(path: &Path) -> Result<OwnedFd, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// A container's cgroup, created. Dropping it removes it (best effort: the
/// error paths of a run); `remove` says what went wrong.
#[derive(Debug)]
pub struct Cgroup {
    leaves: Vec<PathBuf>,
    /// v2: the directory, for clone3's CLONE_INTO_CGROUP.
    dir: Option<OwnedFd>,
    /// v1: the files the container's first process joins through.
    joins: Vec<fs::File>,
}

impl Cgroup {
    pub fn paths(&self) -> &[PathBuf] {
        &self.leaves
    }

    /// v2: the cgroup's directory, to clone the container straight into.
    pub fn clone_into(&self) -> Option<RawFd> {
        self.dir.as_ref().map(|fd| fd.as_raw_fd())
    }

    /// v1: the files the container's first process writes "0" to, to
    /// join, before it is released (see `join_files`).
    pub fn join_fds(&self) -> Vec<RawFd> {
        self.joins.iter().map(|file| file.as_raw_fd()).collect()
    }

    /// How many times the OOM killer has killed a process in it.
    pub fn oom_kills(&self) -> Option<u64> {
        oom_kills(&self.leaves)
    }

    /// Removes it, once its processes are gone.
    pub fn remove(mut self) -> Result<(), Error> {
        let leaves = std::mem::take(&mut self.leaves);
        self.dir = None;
        self.joins.clear();
        remove(&leaves).map(drop)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.leaves.is_empty() {
            let _ = remove(&self.leaves);
        }
    }
}

/// How many processes the OOM killer has killed in the cgroup at `paths`
/// (as a record keeps them); None when it has no memory controller there.
pub fn oom_kills(paths: &[PathBuf]) -> Option<u64> {
    paths
        .iter()
        .find_map(|leaf| v2::oom_kills(leaf).or_else(|| v1::oom_kills(leaf)))
}

/// The files through which a process joins the cgroup at `paths`, open
/// for writing: a single-threaded process writing "0" to each joins it (the
/// container's first process does before it is released on v1, `exec`'s
/// command before it runs anything).
///
/// v1's `tasks`, not `cgroup.procs`: a write to `cgroup.procs`, or of a
/// pid, takes the kernel's cgroup_threadgroup_rwsem for writing, which at
/// times waits for an RCU grace period (measured here, busy machine, 40
/// moves each: `cgroup.procs` median 0.26 ms, worst 7-13 ms; `tasks` with
/// "0" never 0.1 ms). Moving only the writing thread skips that lock, and
/// a process that has started no other thread is all there. v2 has no
/// `tasks`: `cgroup.procs` there.
pub fn join_files(paths: &[PathBuf]) -> Result<Vec<fs::File>, Error> {
    paths
        .iter()
        .map(|leaf| {
            let tasks = leaf.join("tasks");
            let path = match tasks.exists() {
                true => tasks,
                false => leaf.join("cgroup.procs"),
            };
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| Error::Open { path, source })
        })
        .collect()
}

/// Removes the cgroup at `paths` (a record's), then its parent when that
/// is empty. True when something was there to remove. Refuses a path that
/// is not a supervisor's cgroup: a record is a file anyone with access to
/// the state directory could have written.
pub fn remove(paths: &[PathBuf]) -> Result<bool, Error> {
    let mut removed = false;
    for leaf in paths {
        let parent = leaf.parent().filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX))
        });
        let Some(parent) = parent else {
            return Err(Error::NotOurs { path: leaf.clone() });
        };
        match fs_magic(parent) {
            None => continue,
            Some(CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC) => {}
            Some(_) => return Err(Error::NotOurs { path: leaf.clone() }),
        }
        removed |= rmdir_patiently(leaf)?;
        // Busy or not empty: another container of this state directory.
        let _ = fs::remove_dir(parent);
    }
    Ok(removed)
}

/// rmdir, retried while the cgroup is busy: the kernel may still be
/// letting go of the tasks of a process that has just been reaped.
fn rmdir_patiently(path: &Path) -> Result<bool, Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err)
                if err.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < REMOVE_PATIENCE =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(Error::Remove {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// The controllers `resources` needs, each with the option that needs it.
fn needed(resources: &Resources) -> Vec<(&'static str, &'static str)> {
    let mut controllers = Vec::new();
    if resources.memory.is_some() {
        controllers.push(("memory", "memory"));
    }
    if resources.nano_cpus.is_some() {
        controllers.push(("cpu", "cpus"));
    }
    if resources.pids_limit.is_some() {
        controllers.push(("pids", "pids-limit"));
    }
    controllers
}

/// Writes `value` to the cgroup file at `path`.
fn write(path: &Path, value: &str) -> Result<(), Error> {
    fs::write(path, value).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// The number after `key` in a flat-keyed cgroup file (memory.events,
/// memory.oom_control).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Whether `path` is a directory of a cgroup2 hierarchy.
pub fn is_cgroup2_dir(path: &Path) -> bool {
    fs_magic(path) == Some(CGROUP2_SUPER_MAGIC) && path.is_dir()
}

/// The filesystem type of `path`; None when it is not there.
fn fs_magic(path: &Path) -> Option<i64> {
    nix::sys::statfs::statfs(path)
        .ok()
        .map(|s| s.filesystem_type().0)
}

/// FNV-1a of the state directory's canonical path, device and inode.
fn state_dir_hash(state_dir: &Path) -> Result<String, Error> {
    let error = |source| Error::StateDir {
        path: state_dir.to_path_buf(),
        source,
    };
    let path = fs::canonicalize(state_dir).map_err(error)?;
    let meta = fs::metadata(&path).map_err(error)?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let key = format!("{}\0{}\0{}", path.display(), meta.dev(), meta.ino());
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(format!("{hash:016x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_state_dir_has_one_hash_and_two_have_two() {
        let a = crate::scratch::Scratch::new("cg-hash-a");
        let b = crate::scratch::Scratch::new("cg-hash-b");
        assert_eq!(state_dir_hash(&a).unwrap(), state_dir_hash(&a).unwrap());
        assert_ne!(state_dir_hash(&a).unwrap(), state_dir_hash(&b).unwrap());
    }

    #[test]
    fn a_path_outside_a_supervisor_cgroup_is_never_removed() {
        let dir = crate::scratch::Scratch::new("cg-not-ours");
        fs::create_dir_all(dir.join("supervisor-x/leaf")).unwrap();
        let err = remove(&[dir.join("leaf")]).unwrap_err();
        assert!(matches!(err, Error::NotOurs { .. }), "{err}");
        // Named like ours, but not on a cgroup filesystem.
        let err = remove(&[dir.join("supervisor-x/leaf")]).unwrap_err();
        assert!(matches!(err, Error::NotOurs { .. }), "{err}");
        assert!(dir.join("supervisor-x/leaf").is_dir());
    }

    #[test]
    fn keyed_files_are_read_by_key() {
        let scratch = crate::scratch::Scratch::new("cg-keyed");
        let path = scratch.join("memory.events");
        fs::write(&path, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(keyed(&path, "oom_kill"), Some(3));
        assert_eq!(keyed(&path, "oom"), None);
    }

    #[test]
    fn the_cgroup2_mount_is_read_from_mountinfo_unescaped() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                      40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_in_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let spaced = "41 31 0:38 / /mnt/my\\040cgroups rw shared:9 - cgroup2 none rw\n";
        assert_eq!(
            cgroup2_in_mountinfo(spaced),
            Some(PathBuf::from("/mnt/my cgroups"))
        );
        assert_eq!(
            cgroup2_in_mountinfo(&hybrid.replace("cgroup2", "cgroup")),
            None
        );
    }
}
