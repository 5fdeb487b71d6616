//! Files shared by concurrent supervisors: a lock per directory, and
//! writes no reader ever sees half done.

use std::fs::{self, File};
use std::io::{self, Write};
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
    fs::create_dir_all(dir).map_err(FileError::at(dir))?;
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
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
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, FileError> {
    let path = dir.join(name);
    let tmp = dir.join(temporary_name(name));
    let mut file = File::create(&tmp).map_err(FileError::at(&tmp))?;
    file.write_all(bytes).map_err(FileError::at(&tmp))?;
    fs::rename(&tmp, &path).map_err(FileError::at(&path))?;
    Ok(path)
}

fn temporary_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// True for the temporaries of [`write_atomic`]: one left behind was being
/// written when its writer died.
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
}
