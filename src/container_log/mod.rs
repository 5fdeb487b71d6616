//! A detached container's log: its stdout and stderr (and its supervisor's
//! messages), one timestamped line each, in plain text under the state
//! directory, capped in size with one rotated file.
//!
//! ```text
//! STATE_DIR/logs/NAME.log      the current file: "TIMESTAMP LINE" per line
//! STATE_DIR/logs/NAME.log.1    the one before it, once NAME.log reached the cap
//! STATE_DIR/logs/NAME.lock     flock held by the writer while it lives
//! STATE_DIR/logs/NAME.log.old, NAME.log.1.old
//!                              the previous run's log while a new run starts
//! STATE_DIR/logs/.lock         flock held while a log starts or is removed
//! ```
//!
//! Named by the container's name, not its id, so `logs NAME` works after the
//! container's record is gone (at its exit): a log stays until `gc` (or the
//! next run with the same name, which starts it afresh once it has
//! started). A run that fails to start takes its log away with it (the
//! caller printed why) and puts the previous run's back. The writer's lock
//! tells a reader following the log when no more can come, whether the
//! supervisor ended or crashed.
//!
//! A `run -d` starts its log before it claims its name, so a log without a
//! record may be a starting run's: `gc` and `rm` remove one only when no
//! writer holds its lock (`Paths::remove_unless_written`), and a start and
//! such a removal take the directory's lock, so neither comes between the
//! other's check and its files. A start meeting a removal waits for it: it
//! never fails for it.

mod reader;
mod time;
mod writer;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use self::reader::{Follow, Options as ReadOptions, read, writer_state};
pub use self::writer::Writer;
use crate::values::quoted;

/// docker's json-file default is unlimited; 10 MiB keeps a chatty
/// container from filling /run (a tmpfs).
pub const DEFAULT_MAX_SIZE: &str = "10m";

/// The smallest cap: below a page a file holds a line or two (each has a
/// 31-byte timestamp) and longer lines are cut; `10` is a slip for `10m`.
pub const MIN_MAX_SIZE: u64 = 4 << 10;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error(
        "invalid size {}: a number of bytes with an optional k, m or g suffix, e.g. 10m",
        quoted(.0)
    )]
    Syntax(String),
    #[error(
        "invalid size {}: at least 4k, room for a few timestamped lines (10m is the default)",
        quoted(.0)
    )]
    TooSmall(String),
    /// A file cannot grow past an `off_t`: the log would never move.
    #[error("invalid size {}: more than a file can hold", quoted(.0))]
    TooLarge(String),
}

/// `10m`, `512k`, `1g`, `4096`: bytes, as docker's `max-size`, from
/// MIN_MAX_SIZE to the largest file.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    match crate::values::parse_bytes(text) {
        None => Err(SizeError::Syntax(text.to_string())),
        Some(size) if size < MIN_MAX_SIZE => Err(SizeError::TooSmall(text.to_string())),
        Some(size) if size > i64::MAX as u64 => Err(SizeError::TooLarge(text.to_string())),
        Some(size) => Ok(size),
    }
}

/// Where every container's log lives.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("logs")
}

/// The files of `name`'s log.
#[derive(Debug, Clone)]
pub struct Paths {
    pub current: PathBuf,
    pub rotated: PathBuf,
    pub lock: PathBuf,
    /// Where `current` and `rotated` of the previous run wait while a new
    /// run of the name starts.
    pub previous: [(PathBuf, PathBuf); 2],
}

impl Paths {
    pub fn new(state_dir: &Path, name: &str) -> Paths {
        let dir = dir(state_dir);
        let current = dir.join(format!("{name}.log"));
        let rotated = dir.join(format!("{name}.log.1"));
        let previous = [
            (current.clone(), dir.join(format!("{name}.log.old"))),
            (rotated.clone(), dir.join(format!("{name}.log.1.old"))),
        ];
        Paths {
            current,
            rotated,
            lock: dir.join(format!("{name}.lock")),
            previous,
        }
    }

    /// True when the log has a file.
    pub fn exists(&self) -> bool {
        self.current.exists() || self.rotated.exists()
    }

    /// Removes every file, the lock last; true when there was one.
    pub fn remove(&self) -> io::Result<bool> {
        let [(_, old_current), (_, old_rotated)] = &self.previous;
        remove_all([
            old_current,
            old_rotated,
            &self.current,
            &self.rotated,
            &self.lock,
        ])
    }

    /// Removes every file, as `remove`, unless a writer holds the log's
    /// lock (a run that started it and lives, or is starting: it claims its
    /// name only after); true when there was a file and it went. Under the
    /// directory's lock, with the writer's lock taken exclusive as a writer
    /// holds it, so that no run starts this log between the check and the
    /// removal. Makes nothing: no logs directory or no lock file, no writer.
    pub fn remove_unless_written(&self, state_dir: &Path) -> io::Result<bool> {
        if !dir(state_dir).exists() {
            return Ok(false);
        }
        let _starts = starts_lock(state_dir)?;
        match writer::lock_if_there(self) {
            Ok(_writer) => self.remove(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The previous run's log goes: this one has started.
    pub fn forget_previous(&self) -> io::Result<bool> {
        let [(_, old_current), (_, old_rotated)] = &self.previous;
        remove_all([old_current, old_rotated])
    }
}

/// The lock of the logs directory, held while a log starts
/// (`Writer::create`) or is removed unless written: short, so a start
/// waits for a removal rather than find its writer's lock taken.
fn starts_lock(state_dir: &Path) -> io::Result<crate::state::file::DirLock> {
    crate::state::file::lock(&dir(state_dir)).map_err(|e| io::Error::new(e.source.kind(), e))
}

/// Removes the files that are there; true when there was one.
pub(super) fn remove_all<'p>(paths: impl IntoIterator<Item = &'p PathBuf>) -> io::Result<bool> {
    let mut removed = false;
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// The names that have a log file.
pub fn names(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir(state_dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        // `.lock` is the directory's, no container's.
        .filter(|f| !f.starts_with('.'))
        .filter_map(|f| {
            let f = f.strip_suffix(".old").unwrap_or(&f);
            let stem = f.strip_suffix(".log.1").or(f.strip_suffix(".log"));
            stem.or(f.strip_suffix(".lock")).map(str::to_string)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True once a process waits for a lock on `path` (/proc/locks shows
    /// waiters as `->` lines naming the file's inode).
    fn someone_waits_for(path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(inode) = fs::metadata(path).map(|m| m.ino()) else {
            return false;
        };
        let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
        locks.lines().any(|l| {
            l.contains("->")
                && l.split_whitespace()
                    .any(|w| w.rsplit(':').next() == Some(&inode.to_string()))
        })
    }

    #[test]
    fn a_log_starting_during_a_removal_waits_for_it_then_starts() {
        let state = crate::scratch::Scratch::new("log-start-during-removal");
        let paths = Paths::new(&state, "c");
        // A removal between its check and its files, as
        // `remove_unless_written` holds them.
        let starts = starts_lock(&state).unwrap();
        let checked = writer::lock(&paths).unwrap();
        let state_dir = state.path().to_path_buf();
        let start = std::thread::spawn(move || {
            let mut log = Writer::create(&state_dir, "c", 1 << 20)?;
            log.write(b"started\n")?;
            Ok::<_, io::Error>(log)
        });
        let waits = (0..1000).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            someone_waits_for(&dir(&state).join(".lock"))
        });
        assert!(waits, "the start did not wait for the removal");
        paths.remove().unwrap();
        drop((checked, starts));
        let log = start.join().unwrap().expect("the start, after the removal");
        assert!(
            fs::read_to_string(&paths.current)
                .unwrap()
                .ends_with(" started\n")
        );
        assert!(
            !paths.remove_unless_written(&state).unwrap(),
            "it is written"
        );
        drop(log);
        assert!(paths.remove_unless_written(&state).unwrap());
        assert!(!paths.exists());
    }

    /// A finished log of "c" in `state`, and `logs -f` at a poll of it: a
    /// shared lock on it, let go at once (here after 20 ms).
    fn polled_old_log(state: &Path) -> (Paths, std::thread::JoinHandle<()>) {
        use nix::fcntl::{Flock, FlockArg};
        let paths = Paths::new(state, "c");
        let mut log = Writer::create(state, "c", 1 << 20).unwrap();
        log.write(b"old\n").unwrap();
        drop(log);
        let reading = fs::File::open(&paths.lock).unwrap();
        let reading = Flock::lock(reading, FlockArg::LockSharedNonblock).unwrap();
        let poll = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(reading);
        });
        (paths, poll)
    }

    #[test]
    fn a_reader_polling_the_log_does_not_keep_it_from_removal() {
        let state = crate::scratch::Scratch::new("log-removal-reader");
        let (paths, poll) = polled_old_log(&state);
        assert!(paths.remove_unless_written(&state).unwrap(), "kept");
        assert!(!paths.exists());
        poll.join().unwrap();
    }

    #[test]
    fn a_run_starting_on_a_readers_poll_of_the_old_log_still_writes_it() {
        let state = crate::scratch::Scratch::new("log-start-reader");
        let (_, poll) = polled_old_log(&state);
        let started = Writer::create(&state, "c", 1 << 20);
        poll.join().unwrap();
        started.unwrap();
    }

    #[test]
    fn removing_a_log_that_never_was_makes_nothing() {
        let state = crate::scratch::Scratch::new("log-removal-none");
        let paths = Paths::new(&state, "c");
        assert!(!paths.remove_unless_written(&state).unwrap());
        assert!(!dir(&state).exists(), "made the logs directory");
        fs::create_dir(dir(&state)).unwrap();
        assert!(!paths.remove_unless_written(&state).unwrap());
        assert!(!paths.lock.exists(), "made the lock file");
    }

    #[test]
    fn sizes_take_docker_suffixes() {
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2mb").unwrap(), 2 << 20);
    }

    #[test]
    fn a_bad_or_zero_size_is_named() {
        for bad in ["", "m", "ten", "0", "-1m", "1t", "1x", "1.5m", "１０k"] {
            let err = parse_size(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn a_size_below_4k_is_refused_as_too_small_to_hold_a_line() {
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for small in ["10", "0", "4095", "1k", "0m"] {
            assert_eq!(
                parse_size(small),
                Err(SizeError::TooSmall(small.into())),
                "{small}"
            );
        }
    }

    #[test]
    fn a_size_past_the_largest_file_or_u64_is_refused() {
        assert_eq!(parse_size("8589934591g").unwrap(), (1 << 63) - (1 << 30));
        assert_eq!(
            parse_size("8589934592g"),
            Err(SizeError::TooLarge("8589934592g".into()))
        );
        assert_eq!(
            parse_size("18446744073709551615"),
            Err(SizeError::TooLarge("18446744073709551615".into()))
        );
        for overflow in ["17179869184g", "99999999999999999999"] {
            assert_eq!(
                parse_size(overflow),
                Err(SizeError::Syntax(overflow.into()))
            );
        }
    }
}
