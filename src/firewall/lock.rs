//! The firewall lock: element changes hold it shared, a table replacement
//! exclusive, so a replacement never drops an element added while it ran.
//!
//! The file is opened at the first batch and kept open with the
//! `Firewall`; each batch only locks and unlocks it. Opened for each
//! batch, its open (a path walk, and O_CREAT takes the directory's lock)
//! and its close cost a `run` 15% of its publish batch (perf, 119 of the
//! batch's 809 samples), on each of its four batches (the network's
//! elements, publish, unpublish, unguard).
//!
//! The lock is the file's: the supervisor never removes or replaces it, so
//! the file kept open is the one every other supervisor opens by its path.
//! Someone else may (the file unlinked, the state directory made anew
//! while a `run -d` lives): a lock on the file kept open would then exclude
//! nobody, so each hold checks, once locked, that the file is still the
//! path's (an fstat and a stat, far less than the open and close it
//! saves), and opens the path again when it is not.

use std::cell::{Ref, RefCell};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::state::file;

/// The lock file of a state directory, opened once while it stays there.
#[derive(Debug)]
pub(super) struct LockFile {
    path: PathBuf,
    file: RefCell<Option<File>>,
}

/// The lock, held until dropped.
pub(super) struct Held<'a>(Ref<'a, File>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // Closing the file would release it too, but the file stays open
        // for the next batch. Nothing to do on failure: the lock goes with
        // the descriptor at exit at the latest.
        let _ = flock(&self.0, libc::LOCK_UN);
    }
}

impl LockFile {
    pub(super) fn new(path: PathBuf) -> LockFile {
        LockFile {
            path,
            file: RefCell::new(None),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the lock, shared or `exclusive`, on the file at the path.
    /// One hold at a time, as ever: a second flock on the same open file
    /// would convert the first, and a stale file is replaced only when no
    /// hold borrows it.
    pub(super) fn hold(&self, exclusive: bool) -> io::Result<Held<'_>> {
        let operation = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        loop {
            let held = match Ref::filter_map(self.file.borrow(), Option::as_ref) {
                Ok(file) => Held(file),
                Err(none) => {
                    drop(none);
                    let file = self.open()?;
                    *self.file.borrow_mut() = Some(file);
                    continue;
                }
            };
            flock(&held.0, operation)?;
            // Checked once locked, not before: a path replaced while we
            // waited is seen too.
            if file::is_at(&held.0, &self.path)? {
                return Ok(held);
            }
            drop(held);
            *self.file.borrow_mut() = None;
        }
    }

    fn open(&self) -> io::Result<File> {
        let open = || {
            File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.path)
        };
        // The directory is made only when missing: ensured before every
        // open, it cost a statx and a failed mkdir (about 8 us each,
        // traced).
        match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                open()
            }
            opened => opened,
        }
    }
}

/// flock(2) of `file` (LOCK_SH, LOCK_EX or LOCK_UN), again when a signal
/// interrupted the wait.
fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: the descriptor is `file`'s, open for the whole call;
        // flock touches no memory of ours.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("supervisor-lock-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_held_lock_keeps_out_an_exclusive_one_of_another_open_file() {
        let path = scratch_path("held");
        let ours = LockFile::new(path.clone());
        let held = ours.hold(false).unwrap();
        let other = File::open(&path).unwrap();
        // SAFETY: `other` is open for the call.
        let taken = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(taken, -1, "exclusive lock taken while ours was held");
        drop(held);
        // SAFETY: as above.
        let taken = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(taken, 0, "lock still held after it was dropped");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_file_stays_open_between_batches() {
        let path = scratch_path("once");
        let ours = LockFile::new(path.clone());
        let first = ours.hold(true).unwrap().0.as_raw_fd();
        assert_eq!(
            ours.file.borrow().as_ref().map(AsRawFd::as_raw_fd),
            Some(first)
        );
        let second = ours.hold(false).unwrap().0.as_raw_fd();
        assert_eq!(first, second);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_lock_file_unlinked_and_made_anew_is_the_one_locked_at_the_next_hold() {
        let path = scratch_path("anew");
        let ours = LockFile::new(path.clone());
        drop(ours.hold(false).unwrap());
        std::fs::remove_file(&path).unwrap();
        File::create(&path).unwrap();
        let held = ours.hold(true).unwrap();
        let other = File::open(&path).unwrap();
        // SAFETY: `other` is open for the call.
        let taken = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        assert_eq!(taken, -1, "the file now at the path was not locked");
        drop(held);
        std::fs::remove_file(&path).unwrap();
    }
}
