//! Writes a container's output into its log: a timestamp before each line,
//! and the current file moved to `.1` once it reaches the cap.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::thread::JoinHandle;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::SigSet;

use super::{Paths, time};

/// The one writer of a log; holds its lock for as long as it lives.
pub struct Writer {
    paths: Paths,
    file: File,
    size: u64,
    max_size: u64,
    at_line_start: bool,
    /// Bytes of the current line written so far, its timestamp included.
    line_len: u64,
    /// The previous run's log waits in `paths.previous` for this run's
    /// start: discarded, this log puts it back.
    previous: bool,
    _lock: Flock<File>,
}

impl Writer {
    /// Starts `name`'s log afresh and takes its lock; a previous run's
    /// log is set aside until `Paths::forget_previous` or `discard`.
    pub fn create(state_dir: &Path, name: &str, max_size: u64) -> io::Result<Writer> {
        let paths = Paths::new(state_dir, name);
        // Until the log is this run's: a removal checking for a writer
        // never sees it half started.
        let _starts = super::starts_lock(state_dir)?;
        let lock = lock(&paths).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::new(
                e.kind(),
                format!("the log of {name} is being written by another supervisor"),
            ),
            _ => e,
        })?;
        let mut previous = false;
        for (file, aside) in &paths.previous {
            // An aside left by a start that crashed is older still.
            match fs::rename(file, aside) {
                Ok(()) => previous = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::remove_file(aside) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                },
                Err(e) => return Err(e),
            }
        }
        let file = File::create(&paths.current)?;
        Ok(Writer {
            paths,
            file,
            size: 0,
            max_size,
            at_line_start: true,
            line_len: 0,
            previous,
            _lock: lock,
        })
    }

    /// For a run that failed to start, whose log nobody asked for: removes
    /// its files while still holding the lock, the lock's last, or puts the
    /// previous run's log back (its lock file, then, stays as it was).
    pub fn discard(self) -> io::Result<()> {
        if !self.previous {
            return self.paths.remove().map(drop);
        }
        super::remove_all([&self.paths.current, &self.paths.rotated])?;
        for (file, aside) in &self.paths.previous {
            match fs::rename(aside, file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Appends `chunk`, a timestamp before each line it starts.
    pub fn write(&mut self, mut chunk: &[u8]) -> io::Result<()> {
        while !chunk.is_empty() {
            if self.at_line_start {
                // Only between lines unless one line alone passes the cap.
                if self.size >= self.max_size {
                    self.rotate()?;
                }
                let stamp = time::now();
                self.file.write_all(stamp.as_bytes())?;
                self.file.write_all(b" ")?;
                self.size += stamp.len() as u64 + 1;
                self.line_len = stamp.len() as u64 + 1;
                self.at_line_start = false;
            }
            let end = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => chunk.len(),
            };
            // A line longer than the cap is cut there, the rest a new line;
            // one that only crosses it stays whole in this file.
            let room = self.max_size.saturating_sub(self.line_len).max(1);
            let end = end.min(usize::try_from(room).unwrap_or(usize::MAX));
            let (line, rest) = chunk.split_at(end);
            self.file.write_all(line)?;
            self.size += line.len() as u64;
            self.line_len += line.len() as u64;
            if line.ends_with(b"\n") {
                self.at_line_start = true;
            } else if !rest.is_empty() {
                self.file.write_all(b"\n")?;
                self.size += 1;
                self.at_line_start = true;
            }
            chunk = rest;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        fs::rename(&self.paths.current, &self.paths.rotated)?;
        self.file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&self.paths.current)?;
        self.size = 0;
        Ok(())
    }

    /// Copies everything read from `from` into the log until its last
    /// writer closes it, on a thread that takes no signal (they are the
    /// supervisor's to handle). A failed write drops the rest rather than
    /// block the container on a full pipe.
    /// The thread gives the writer back, its lock still held.
    pub fn pump(mut self, from: OwnedFd) -> io::Result<JoinHandle<Writer>> {
        let mut from = File::from(from);
        let old = SigSet::all().thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)?;
        let spawned = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut failed = false;
                loop {
                    match from.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) if !failed => failed = self.write(&buf[..n]).is_err(),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                self
            });
        old.thread_set_mask()?;
        spawned
    }
}

/// Takes the exclusive lock of a log (WouldBlock: a writer holds it). The
/// lock file a discarding writer unlinks may be the one another opened just
/// before: a lock on it guards nothing, so take the one at the path again.
pub(super) fn lock(paths: &Paths) -> io::Result<Flock<File>> {
    past_readers(|| {
        loop {
            let file = File::create(&paths.lock)?;
            let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
                .map_err(|(_, errno)| io::Error::from(errno))?;
            if crate::state::file::is_at(&lock, &paths.lock)? {
                return Ok(lock);
            }
        }
    })
}

/// [`lock`] on a log's lock file that is there, never making it: None when
/// there is none (so no writer either). WouldBlock when a writer holds it.
pub(super) fn lock_if_there(paths: &Paths) -> io::Result<Option<Flock<File>>> {
    past_readers(|| {
        loop {
            let file = match File::open(&paths.lock) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                file => file?,
            };
            let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
                .map_err(|(_, errno)| io::Error::from(errno))?;
            if crate::state::file::is_at(&lock, &paths.lock)? {
                return Ok(Some(lock));
            }
        }
    })
}

/// How many times, 5 ms apart, a log's lock found taken is tried again
/// before it is called a writer's: a reader following the log (`logs -f`)
/// takes it shared for a moment at each poll, a writer for its whole life.
const TRIES: u32 = 10;

/// `try_lock` again while it finds the lock taken (WouldBlock), up to
/// [`TRIES`] times: a reader's poll ends within them, a writer's life not.
///
/// The callers sleep holding the logs directory's start lock (and `rm` the
/// store's lock), so other starts and removals wait with them. Acceptable:
/// a reader holds its lock for the microseconds of a poll's read, so a
/// retry is rare and one 5 ms sleep long; the full 45 ms is paid only when
/// a writer holds the log, and that ends in an error anyway.
fn past_readers<T>(mut try_lock: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 1;
    loop {
        match try_lock() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < TRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn each_line_gets_a_timestamp_even_across_writes() {
        let dir = tempdir("stamps");
        let mut w = Writer::create(&dir, "c", 1 << 20).unwrap();
        w.write(b"one\ntw").unwrap();
        w.write(b"o\nthree").unwrap();
        let got = lines(&Paths::new(&dir, "c").current);
        let text: Vec<&str> = got.iter().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(text, ["one", "two", "three"]);
        assert!(
            got.iter()
                .all(|l| l.as_bytes()[4] == b'-' && l.contains('Z'))
        );
    }

    #[test]
    fn the_log_rotates_to_one_file_at_the_cap() {
        let dir = tempdir("rotate");
        let mut w = Writer::create(&dir, "c", 200).unwrap();
        for i in 0..30 {
            w.write(format!("line {i}\n").as_bytes()).unwrap();
        }
        let paths = Paths::new(&dir, "c");
        let size = |p: &Path| fs::metadata(p).unwrap().len();
        assert!(size(&paths.current) <= 200 + 50);
        assert!(size(&paths.rotated) <= 200 + 50);
        assert!(lines(&paths.current).last().unwrap().ends_with("line 29"));
        assert!(!lines(&paths.rotated).iter().any(|l| l.ends_with("line 0")));
    }

    #[test]
    fn a_line_crossing_the_cap_stays_whole_in_one_file() {
        let dir = tempdir("whole");
        let mut w = Writer::create(&dir, "c", 1000).unwrap();
        let written: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        for line in &written {
            w.write(format!("{line}\n").as_bytes()).unwrap();
        }
        let paths = Paths::new(&dir, "c");
        let mut got = lines(&paths.rotated);
        got.extend(lines(&paths.current));
        let text: Vec<&str> = got.iter().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(text, written[written.len() - text.len()..]);
    }

    #[test]
    fn a_line_longer_than_the_cap_is_cut_at_the_cap() {
        let dir = tempdir("long");
        let mut w = Writer::create(&dir, "c", 100).unwrap();
        w.write(&[b'x'; 300]).unwrap();
        w.write(b"\n").unwrap();
        let paths = Paths::new(&dir, "c");
        let mut got = lines(&paths.rotated);
        got.extend(lines(&paths.current));
        assert!(got.len() > 1, "{got:?}");
        assert!(got.iter().all(|l| l.len() <= 100), "{got:?}");
    }

    #[test]
    fn a_second_writer_of_the_same_log_is_refused() {
        let dir = tempdir("lock");
        let _w = Writer::create(&dir, "c", 100).unwrap();
        let err = Writer::create(&dir, "c", 100).err().unwrap();
        assert!(err.to_string().contains("another supervisor"), "{err}");
    }

    #[test]
    fn a_discarded_log_leaves_no_file() {
        let dir = tempdir("discard");
        let mut w = Writer::create(&dir, "c", 100).unwrap();
        w.write(&[b'x'; 300]).unwrap();
        w.discard().unwrap();
        let left = files(&dir);
        assert!(left.is_empty(), "{left:?}");
        Writer::create(&dir, "c", 100).expect("the name is free again");
    }

    #[test]
    fn a_discarded_log_puts_the_previous_runs_back_and_a_started_one_replaces_it() {
        let dir = tempdir("previous");
        let paths = Paths::new(&dir, "c");
        let mut first = Writer::create(&dir, "c", 100).unwrap();
        first.write(&[b'x'; 300]).unwrap();
        drop(first);
        let before = (
            fs::read(&paths.current).unwrap(),
            fs::read(&paths.rotated).unwrap(),
        );

        let mut failed = Writer::create(&dir, "c", 100).unwrap();
        failed.write(b"failed\n").unwrap();
        failed.discard().unwrap();
        let after = (
            fs::read(&paths.current).unwrap(),
            fs::read(&paths.rotated).unwrap(),
        );
        assert_eq!(after, before);
        assert!(paths.lock.exists(), "the lock file was there before");
        assert!(!paths.previous.iter().any(|(_, aside)| aside.exists()));

        let mut started = Writer::create(&dir, "c", 100).unwrap();
        started.write(b"started\n").unwrap();
        paths.forget_previous().unwrap();
        assert!(lines(&paths.current)[0].ends_with(" started"));
        assert!(!paths.rotated.exists());
        let names = files(&dir);
        assert_eq!(names.len(), 2, "the log and its lock: {names:?}");
    }

    /// The files of the logs directory but its own lock.
    fn files(state_dir: &Path) -> Vec<String> {
        fs::read_dir(super::super::dir(state_dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != ".lock")
            .collect()
    }

    fn tempdir(what: &str) -> crate::scratch::Scratch {
        crate::scratch::Scratch::new(&format!("log-{what}"))
    }
}
