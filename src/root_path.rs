//! Mount points in a container's own root (`--rootfs`), found and made
//! through directory handles, never through paths. Anything else that
//! writes in that root (another container on it, a volume, a host user)
//! can swap a directory for a symbolic link to the host at any moment:
//! a path resolved once and used again to make what is missing would make
//! it where the link leads, as root, on the host (runc's CVE-2021-30465
//! class). So each step opens one name below the handle of the step
//! before (`O_PATH | O_NOFOLLOW`: nothing is followed by the kernel), a
//! symbolic link is read and followed here with the root as `/`, and what
//! is missing is made below the handle of its parent (`mkdirat`,
//! `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`). What is made or found is
//! named by the device and inode the child checks before it mounts on it
//! (see `spawn::mounts`).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

/// Symlinks one path may go through: the kernel's own limit (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// Why a path inside the root cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("it changed while it was made (a symbolic link swapped in by another writer?)")]
    Changed,
}

/// A container's root directory, held open.
pub struct Root {
    dir: OwnedFd,
}

/// A path inside the root as made or found: resolved (no symbolic link,
/// no `..`, relative to the root) and the object there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

impl Found {
    /// Whether this is the root itself (see [`Root::resolves_to_root`]).
    pub fn is_root(&self) -> bool {
        self.path.as_os_str().is_empty()
    }
}

/// The longest existing part of a path, each name with its handle, and
/// the missing rest (plain names).
struct Walk {
    held: Vec<(OsString, OwnedFd)>,
    rest: Vec<OsString>,
}

impl Root {
    pub fn open(dir: &Path) -> io::Result<Root> {
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
            .open(dir)?;
        Ok(Root { dir: dir.into() })
    }

    /// Whether PATH (as the container names it) resolves to the root
    /// itself, through links (`/link -> /`, `/up -> ../..`): nothing can
    /// be mounted there. A mount of the root's directory elsewhere (a bind
    /// on `/mnt`) is another place, not the root.
    pub fn resolves_to_root(&self, path: &Path) -> io::Result<bool> {
        let walk = self.walk(path)?;
        Ok(walk.held.is_empty() && walk.rest.is_empty())
    }

    /// What is at PATH (as the container names it), `None` when missing.
    pub fn stat(&self, path: &Path) -> io::Result<Option<FileStat>> {
        let walk = self.walk(path)?;
        if !walk.rest.is_empty() {
            return Ok(None);
        }
        Ok(Some(nix::sys::stat::fstat(last(&walk.held, &self.dir))?))
    }

    /// PATH (as the container names it) made when missing, a directory (and
    /// its parents) or an empty file. Symlinks on the way are followed
    /// inside the root, as runc does: a dangling one (an image's
    /// /etc/resolv.conf -> ../run/systemd/resolve/…) gets its target made,
    /// for our file to be bound there.
    pub fn make(&self, path: &Path, dir: bool) -> Result<Found, Error> {
        let Walk { mut held, rest } = self.walk(path)?;
        if !rest.is_empty() {
            crate::milestones::pause_at("mount-point");
        }
        for (i, name) in rest.iter().enumerate() {
            let parent = last(&held, &self.dir);
            let made = if dir || i + 1 < rest.len() {
                make_dir(parent, name)
            } else {
                make_file(parent, name)
            };
            held.push((name.clone(), made?));
        }
        let stat = nix::sys::stat::fstat(last(&held, &self.dir)).map_err(io::Error::from)?;
        let found = Found {
            path: held.iter().map(|(name, _)| name).collect(),
            dev: stat.st_dev,
            ino: stat.st_ino,
        };
        // The child opens the path again, in a mount namespace of its own,
        // and refuses to mount on anything but this object: a swap while
        // it was made is told now, before the container's network is.
        if rest.is_empty() {
            return Ok(found);
        }
        match self.reopen(&found.path).map(nix::sys::stat::fstat) {
            Ok(Ok(now)) if (now.st_dev, now.st_ino) == (found.dev, found.ino) => Ok(found),
            _ => Err(Error::Changed),
        }
    }

    /// PATH (resolved) opened again from the root, by the kernel, with
    /// every link resolved inside the root as the child does.
    fn reopen(&self, path: &Path) -> nix::Result<OwnedFd> {
        locate(self.dir.as_fd(), path)
    }

    /// PATH resolved inside the root as the kernel would with the root as
    /// `/`: every symlink followed (an absolute target from the root), `..`
    /// never above it; nothing is made.
    fn walk(&self, path: &Path) -> io::Result<Walk> {
        let mut pending: VecDeque<OsString> = names(path).into();
        let mut held: Vec<(OsString, OwnedFd)> = vec![];
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                held.pop();
                continue;
            }
            let parent = last(&held, &self.dir);
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = match nix::fcntl::openat(parent, name.as_os_str(), flags, Mode::empty()) {
                Ok(fd) => fd,
                // The rest is made, plain names below a missing one; `..`
                // there is no path (the kernel's ENOENT). Taken as a step
                // back, the names after it were never resolved: `gone/../out`
                // with `out` a link to a host directory had a file made, or
                // an existing one emptied, on the host.
                Err(Errno::ENOENT) if !pending.iter().any(|n| n == "..") => {
                    let rest = std::iter::once(name).chain(pending).collect();
                    return Ok(Walk { held, rest });
                }
                Err(err) => return Err(err.into()),
            };
            if !is(&nix::sys::stat::fstat(&fd)?, SFlag::S_IFLNK) {
                held.push((name, fd));
                continue;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::ELOOP.into());
            }
            // The link itself, through its handle: "" is the handle's own.
            let target = PathBuf::from(nix::fcntl::readlinkat(&fd, "")?);
            if target.is_absolute() {
                held.clear();
            }
            for name in names(&target).into_iter().rev() {
                pending.push_front(name);
            }
        }
        Ok(Walk { held, rest: vec![] })
    }
}

/// The handle of the last name HELD, the root's when none is.
/// `path` located (`O_PATH`: nothing opened) by the kernel with `root`
/// as `/` for every step of its resolution: links resolved inside it,
/// `..` never above it, no magic links. The empty path is the root.
pub fn locate(root: BorrowedFd, path: &Path) -> nix::Result<OwnedFd> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    nix::fcntl::openat2(root, relative, how)
}

fn last<'a>(held: &'a [(OsString, OwnedFd)], root: &'a OwnedFd) -> BorrowedFd<'a> {
    held.last().map_or(root.as_fd(), |(_, fd)| fd.as_fd())
}

/// The names of PATH, `..` kept (as a name), `/` and `.` left out.
fn names(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

fn is(stat: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == kind
}

/// The directory NAME below PARENT, made when missing; whatever else is
/// there (a link swapped in meanwhile) is never followed, and refused.
fn make_dir(parent: BorrowedFd, name: &OsString) -> io::Result<OwnedFd> {
    match nix::sys::stat::mkdirat(parent, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(err) => return Err(err.into()),
    }
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    Ok(nix::fcntl::openat(
        parent,
        name.as_os_str(),
        flags,
        Mode::empty(),
    )?)
}

/// The empty file NAME below PARENT, made when missing; whatever else is
/// there is refused.
fn make_file(parent: BorrowedFd, name: &OsString) -> io::Result<OwnedFd> {
    let create = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY;
    let mode = Mode::from_bits_truncate(0o644);
    match nix::fcntl::openat(parent, name.as_os_str(), create | OFlag::O_CLOEXEC, mode) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(err) => return Err(err.into()),
    }
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(parent, name.as_os_str(), flags, Mode::empty())?;
    if !is(&nix::sys::stat::fstat(&fd)?, SFlag::S_IFREG) {
        return Err(Errno::EEXIST.into());
    }
    Ok(fd)
}
