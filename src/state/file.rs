//! Files shared by concurrent supervisors: a lock per directory, and
//! writes no reader ever sees half done.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// A file operation that failed, with the file.
#[derive(Debug, thiserror::Error)]
#[error("{}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FileError {
    /// A `map_err` adapter naming `path`.
    pub fn at(path: &Path) -> impl FnOnce(io::Error) -> FileError + use<> {
        let path = path.to_path_buf();
        move |source| FileError { path, source }
    }
}

/// An exclusive `flock` on `DIR/.lock`, held until dropped. Every change to
/// the files of `DIR` happens under it.
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
}

/// Creates `dir` when absent and takes its lock, waiting for it.
pub fn lock(dir: &Path) -> Result<DirLock, FileError> {
    lock_named(dir, ".lock")
}

/// [`lock`] on `DIR/NAME` (a lock file of another name in the same
/// directory, e.g. the CNI plugin's `cni.lock`).
pub fn lock_named(dir: &Path, name: &str) -> Result<DirLock, FileError> {
    let path = dir.join(name);
    let open = || {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
    };
    // The directory is made only when missing: ensured before every open,
    // it cost a failed mkdir and a statx at each lock, three a CNI ADD.
    let file = match open() {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(FileError::at(dir))?;
            open()
        }
        opened => opened,
    }
    .map_err(FileError::at(&path))?;
    let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| FileError {
        path,
        source: errno.into(),
    })?;
    Ok(DirLock { _lock: lock })
}

/// Writes `DIR/NAME` as a whole: to a dot-named temporary first, renamed
/// into place. The caller holds the directory's lock, so one temporary name
/// per file is enough.
///
/// The temporary is made anew, never opened as found: one left by a writer
/// that died, or planted (a symbolic link to /etc/passwd, in a directory
/// someone else could write), is removed, and a name that is there again
/// at the open fails it rather than being written through.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, FileError> {
    let path = dir.join(name);
    let tmp = dir.join(temporary_name(name));
    let create = || {
        File::options()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
    };
    // Removed only when there: almost never, and an unlink each write.
    let mut file = match create() {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            remove(&tmp)?;
            create()
        }
        created => created,
    }
    .map_err(FileError::at(&tmp))?;
    file.write_all(bytes).map_err(FileError::at(&tmp))?;
    fs::rename(&tmp, &path).map_err(FileError::at(&path))?;
    Ok(path)
}

fn temporary_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// The contents of the file at `path`, which must be a regular file: a
/// FIFO planted there would block the read forever, and a device never end
/// it. NotFound when there is none. A symbolic link is not followed (none
/// of ours is read through one): opening what it points at is already an
/// effect (a FIFO's writer goes on, a device may act on its open).
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let located = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let mut bytes = Vec::new();
    crate::regular_file::reopen(located.into())?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// True for the temporaries of [`write_atomic`]: one left behind was being
/// written when its writer died.
/// Whether `file` is still the one at `path` (the same device and inode):
/// a lock taken on a file unlinked or replaced since it was opened
/// excludes no one who opens the path now.
pub fn is_at(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata()?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Removes `path`; one already gone counts as removed. True when it was there.
pub fn remove(path: &Path) -> Result<bool, FileError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(FileError::at(path)(err)),
    }
}

/// The names in `dir`, none when it does not exist.
pub fn names(dir: &Path) -> Result<Vec<String>, FileError> {
    let entries = match fs::read_dir(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other.map_err(FileError::at(dir))?,
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(FileError::at(dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_leaves_only_the_file() {
        let dir = crate::scratch::unique_path("file");
        let _lock = lock(&dir).unwrap();
        let path = write_atomic(&dir, "a", b"one").unwrap();
        write_atomic(&dir, "a", b"two").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(names(&dir).unwrap(), [".lock", "a"]);
        assert!(is_temporary(&temporary_name("a")));
        assert!(!is_temporary(".lock"));
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        assert_eq!(names(&dir.join("missing")).unwrap(), Vec::<String>::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_atomic_write_never_writes_through_a_planted_temporary() {
        let dir = crate::scratch::unique_path("file-planted");
        let _lock = lock(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(temporary_name("a"))).unwrap();
        let path = write_atomic(&dir, "a", b"record").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read_to_string(&path).unwrap(), "record");
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lock_never_follows_a_planted_link() {
        let dir = crate::scratch::unique_path("file-lock-link");
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("created-through-the-link");
        std::os::unix::fs::symlink(&target, dir.join(".lock")).unwrap();
        let err = lock(&dir).unwrap_err();
        assert!(err.path.ends_with(".lock"), "{err}");
        assert!(!target.exists(), "the lock created its link's target");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_read_never_opens_what_a_planted_link_points_at() {
        let dir = crate::scratch::unique_path("file-read-link");
        fs::create_dir_all(&dir).unwrap();
        let link = dir.join("web.json");
        let opened = crate::scratch::opens_fifo(&dir.join("fifo"), || {
            std::os::unix::fs::symlink(dir.join("fifo"), &link).unwrap();
            assert!(read_regular(&link).is_err());
        });
        assert!(!opened, "the read opened what the link points at");
        fs::write(dir.join("plain"), "text").unwrap();
        std::os::unix::fs::symlink(dir.join("plain"), dir.join("to-plain")).unwrap();
        assert!(read_regular(&dir.join("to-plain")).is_err(), "followed");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_being_opened() {
        let dir = crate::scratch::unique_path("file-fifo-unopened");
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("web.json");
        let opened = crate::scratch::opens_fifo(&fifo, || {
            assert!(read_regular(&fifo).is_err());
        });
        assert!(!opened, "the read opened the FIFO before refusing it");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_a_regular_file_is_read_a_fifo_or_a_device_is_refused_at_once() {
        let dir = crate::scratch::unique_path("file-fifo");
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // /dev/null, not /dev/zero: a read of the device is refused, and
        // one that is not ends anyway.
        let device = dir.join("device");
        std::os::unix::fs::symlink("/dev/null", &device).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send([read_regular(&fifo), read_regular(&device)].map(|r| r.is_err()));
        });
        let refused = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO never ended");
        assert_eq!(refused, [true, true]);
        fs::write(dir.join("plain"), "text").unwrap();
        assert_eq!(read_regular(&dir.join("plain")).unwrap(), b"text");
        let missing = read_regular(&dir.join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        fs::remove_dir_all(&dir).unwrap();
    }
}
