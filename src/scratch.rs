//! Scratch directories for unit tests. Each is unique to its test: a pid
//! alone is not, since every run of the suite starts in a pid namespace of
//! its own (so pids repeat across concurrent runs) while all of them share
//! /tmp. Each is removed when dropped, so a run leaves nothing behind and
//! never removes another run's files.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Scratch(PathBuf);

impl Scratch {
    /// An empty directory named after `tag`.
    pub fn new(tag: &str) -> Scratch {
        let path = unique_path(tag);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// A path named after `tag` that nothing else uses, not made: for a test
/// whose code under test makes (and the test removes) the directory.
pub fn unique_path(tag: &str) -> PathBuf {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "sv-{tag}-{}-{nanos}-{}",
        std::process::id(),
        MADE.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a FIFO at `fifo` that tells whether it was opened: runs `probe`,
/// then true when `probe` opened it (for reading: its waiting writer's
/// open returned). Removes the FIFO.
pub fn opens_fifo(fifo: &Path, probe: impl FnOnce()) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    nix::unistd::mkfifo(fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = fifo.to_path_buf();
    std::thread::spawn(move || {
        let _ = std::fs::OpenOptions::new().write(true).open(&writer);
        let _ = tx.send(());
    });
    // Its writer is blocked in its open by then.
    std::thread::sleep(std::time::Duration::from_millis(100));
    probe();
    let opened = rx
        .recv_timeout(std::time::Duration::from_millis(300))
        .is_ok();
    // Lets the writer go.
    let _ = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo);
    rx.recv_timeout(std::time::Duration::from_secs(10)).ok();
    std::fs::remove_file(fifo).unwrap();
    opened
}

/// Runs `f` on a thread of its own in a fresh network namespace (with
/// nothing up, not even `lo`), for a unit test that talks to the kernel.
/// None, said loudly, without root; under CI a skip is a failure.
pub fn in_own_netns<T: Send + 'static>(
    test: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if !root(test) {
        return None;
    }
    let thread = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    });
    Some(
        thread
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e)),
    )
}

/// Whether a unit test that needs root may go on: false, said loudly,
/// without root; under CI a skip is a failure.
pub fn root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none_or(|v| v.is_empty()),
        "{test}: needs root"
    );
    eprintln!("\n!!! SKIPPED {test}: needs root !!!\n");
    false
}
