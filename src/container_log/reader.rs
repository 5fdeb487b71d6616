//! Reads a log for `supervisor logs`: the rotated file then the current
//! one, the last N lines, with or without their timestamps, and following
//! the current file (across a rotation) until its writer is gone.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use super::Paths;

/// How often a follower looks for more.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep printing what is written until the writer is gone.
    pub follow: bool,
    /// Only the last N lines already written.
    pub tail: Option<usize>,
    /// Keep each line's RFC 3339 timestamp.
    pub timestamps: bool,
}

/// What a follower does once the log is read: the marker of the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The writer is still there: more may come.
    More,
    /// The writer is gone (ended or crashed): nothing more will come.
    Ended,
}

/// Prints `paths`' log to `out` as `options` say.
pub fn read(paths: &Paths, options: &Options, out: &mut dyn Write) -> io::Result<()> {
    let mut old = read_if_there(&paths.rotated)?;
    let mut current = open_if_there(&paths.current)?;
    if let Some(file) = current.as_mut() {
        file.read_to_end(&mut old)?;
    }
    let (complete, mut pending) = split_complete(old);
    let mut lines: Vec<&[u8]> = complete.split_inclusive(|&b| b == b'\n').collect();
    if let Some(n) = options.tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    for line in lines {
        emit(line, options.timestamps, out)?;
    }
    if !options.follow {
        emit_partial(&pending, options.timestamps, out)?;
        return out.flush();
    }
    loop {
        // Before reading: what the writer wrote before it went is then read.
        let state = writer_state(paths);
        out.flush()?;
        let mut fresh = Vec::new();
        if let Some(file) = current.as_mut() {
            file.read_to_end(&mut fresh)?;
        }
        if rotated_away(paths, current.as_ref()) {
            current = open_if_there(&paths.current)?;
            if let Some(file) = current.as_mut() {
                file.read_to_end(&mut fresh)?;
            }
        }
        pending.extend_from_slice(&fresh);
        let (complete, rest) = split_complete(std::mem::take(&mut pending));
        for line in complete.split_inclusive(|&b| b == b'\n') {
            emit(line, options.timestamps, out)?;
        }
        pending = rest;
        if state == Follow::Ended {
            emit_partial(&pending, options.timestamps, out)?;
            return out.flush();
        }
        std::thread::sleep(POLL);
    }
}

/// Whether the log's writer is still there: it holds the lock exclusively.
pub fn writer_state(paths: &Paths) -> Follow {
    let Ok(file) = File::open(&paths.lock) else {
        return Follow::Ended;
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => Follow::Ended,
        Err(_) => Follow::More,
    }
}

/// True when the file at the current path is no longer the one open.
fn rotated_away(paths: &Paths, open: Option<&File>) -> bool {
    let now = fs::metadata(&paths.current).ok().map(|m| m.ino());
    let was = open.and_then(|f| f.metadata().ok()).map(|m| m.ino());
    now.is_some() && now != was
}

fn read_if_there(path: &std::path::Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other,
    }
}

fn open_if_there(path: &std::path::Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        other => other.map(Some),
    }
}

/// The complete lines of `bytes`, and what follows the last newline.
fn split_complete(mut bytes: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let rest = bytes.split_off(end);
    (bytes, rest)
}

fn emit_partial(line: &[u8], timestamps: bool, out: &mut dyn Write) -> io::Result<()> {
    if line.is_empty() {
        return Ok(());
    }
    emit(line, timestamps, out)?;
    out.write_all(b"\n")
}

/// One line, without its timestamp unless asked.
fn emit(line: &[u8], timestamps: bool, out: &mut dyn Write) -> io::Result<()> {
    let text = match line.iter().position(|&b| b == b' ') {
        Some(30) if !timestamps && line[29] == b'Z' => &line[31..],
        _ => line,
    };
    out.write_all(text)
}

#[cfg(test)]
mod tests {
    use super::super::Writer;
    use super::*;

    fn read_all(dir: &std::path::Path, options: Options) -> String {
        let mut out = Vec::new();
        read(&Paths::new(dir, "c"), &options, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn dir(what: &str) -> crate::scratch::Scratch {
        crate::scratch::Scratch::new(&format!("read-{what}"))
    }

    #[test]
    fn tail_keeps_the_last_lines_across_the_rotated_file() {
        let dir = dir("tail");
        let mut w = Writer::create(&dir, "c", 120).unwrap();
        for i in 0..6 {
            w.write(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(Paths::new(&dir, "c").rotated.exists());
        let tail = Options {
            tail: Some(2),
            ..Options::default()
        };
        assert_eq!(read_all(&dir, tail), "line 4\nline 5\n");
    }

    #[test]
    fn timestamps_are_shown_only_when_asked() {
        let dir = dir("stamps");
        let mut w = Writer::create(&dir, "c", 1 << 20).unwrap();
        w.write(b"hello\n").unwrap();
        assert_eq!(read_all(&dir, Options::default()), "hello\n");
        let stamped = read_all(
            &dir,
            Options {
                timestamps: true,
                ..Options::default()
            },
        );
        assert!(stamped.ends_with("Z hello\n"), "{stamped}");
        assert_eq!(stamped.len(), 31 + 6);
    }

    #[test]
    fn follow_ends_when_the_writer_is_gone() {
        let dir = dir("follow");
        let mut w = Writer::create(&dir, "c", 1 << 20).unwrap();
        w.write(b"first\n").unwrap();
        let paths = Paths::new(&dir, "c");
        assert_eq!(writer_state(&paths), Follow::More);
        let reader = std::thread::spawn({
            let dir = dir.to_path_buf();
            move || {
                read_all(
                    &dir,
                    Options {
                        follow: true,
                        ..Options::default()
                    },
                )
            }
        });
        std::thread::sleep(Duration::from_millis(120));
        w.write(b"second\n").unwrap();
        drop(w);
        assert_eq!(reader.join().unwrap(), "first\nsecond\n");
        assert_eq!(writer_state(&paths), Follow::Ended);
    }
}
