//! One process, named for good: its pid and its start time.
//!
//! A pid alone is reused once its process is reaped; the start time (field
//! 22 of `/proc/PID/stat`, clock ticks after boot) tells the process that
//! wrote a record or lease from a later one that got its pid.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub start_time: u64,
}

impl Process {
    /// No process: the holder of what a CNI attachment holds (its record,
    /// lease and elements) from ADD until the engine's DEL or GC. Never a
    /// process's identity (pid 0 is none), so it is never dead: nothing of
    /// an attachment is reclaimed as a dead supervisor's.
    pub const UNTIL_RELEASED: Process = Process {
        pid: 0,
        start_time: 0,
    };

    /// Whether this is `UNTIL_RELEASED`, not a process: nothing to signal.
    pub fn is_none(&self) -> bool {
        self.pid == 0
    }

    /// The calling process.
    pub fn current() -> io::Result<Process> {
        Ok(Process {
            pid: std::process::id(),
            start_time: own()?.start_time,
        })
    }

    /// Where the calling process's environment strings are, as
    /// /proc/PID/environ reads them (its `env_start` and `env_end`); None
    /// when /proc does not say.
    pub fn own_environment() -> Option<(usize, usize)> {
        own().ok()?.environment
    }

    /// Whatever process has `pid` now.
    pub fn of(pid: u32) -> io::Result<Process> {
        Ok(Process {
            pid,
            start_time: stat(pid)?.start_time,
        })
    }

    /// True while this very process runs. A zombie has ended: it only waits
    /// for its parent to reap it. `UNTIL_RELEASED` is alive. When /proc cannot tell for another reason
    /// the answer is yes, so nothing of a live process is ever reclaimed.
    pub fn is_alive(&self) -> bool {
        if self.is_none() {
            return true;
        }
        match stat(self.pid) {
            Ok(stat) => stat.start_time == self.start_time && !matches!(stat.state, 'Z' | 'X'),
            Err(err) => err.kind() != io::ErrorKind::NotFound,
        }
    }
}

/// The fields of `/proc/PID/stat` we use.
struct Stat {
    state: char,
    start_time: u64,
    /// `env_start` and `env_end`, when the kernel shows them.
    environment: Option<(usize, usize)>,
}

/// What never changes in the calling process's stat.
struct Own {
    start_time: u64,
    environment: Option<(usize, usize)>,
}

/// The fields of the calling process's stat that never change, read once
/// per process: a run asks for them several times before its container
/// starts (its record, its lease, the init's environment), each a read of
/// /proc otherwise. `OWN_PID` says whose they are, so a forked child reads
/// its own; atomics rather than a lock, which a fork could leave taken.
static OWN_PID: AtomicU32 = AtomicU32::new(0);
static OWN_START: AtomicU64 = AtomicU64::new(0);
static OWN_ENV: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

fn own() -> io::Result<Own> {
    let pid = std::process::id();
    if OWN_PID.load(Ordering::Acquire) == pid {
        let [start, end] = [&OWN_ENV[0], &OWN_ENV[1]].map(|a| a.load(Ordering::Relaxed));
        return Ok(Own {
            start_time: OWN_START.load(Ordering::Relaxed),
            environment: (start < end).then_some((start, end)),
        });
    }
    let Stat {
        start_time,
        environment,
        ..
    } = stat(pid)?;
    let (start, end) = environment.unwrap_or((0, 0));
    OWN_START.store(start_time, Ordering::Relaxed);
    OWN_ENV[0].store(start, Ordering::Relaxed);
    OWN_ENV[1].store(end, Ordering::Relaxed);
    OWN_PID.store(pid, Ordering::Release);
    Ok(Own {
        start_time,
        environment,
    })
}

fn stat(pid: u32) -> io::Result<Stat> {
    let path = format!("/proc/{pid}/stat");
    // One read for the whole line, about 300 bytes: no size query, no
    // reads growing from 32 bytes, as fs::read_to_string does here.
    let mut text = String::with_capacity(1024);
    std::fs::File::open(&path)?.read_to_string(&mut text)?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected {path} format"),
        )
    })
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its last closing parenthesis, which starts field 3.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    // Fields 50 and 51.
    let environment = fields
        .nth(50 - 23)
        .zip(fields.next())
        .and_then(|(start, end)| Some((start.parse().ok()?, end.parse().ok()?)))
        .filter(|(start, end)| start < end);
    Some(Stat {
        state,
        start_time,
        environment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        let stat = parse_stat(text).unwrap();
        assert_eq!((stat.state, stat.start_time), ('S', 98765));
        assert_eq!(stat.environment, None, "too short to hold it");
        assert!(parse_stat("42 (x) S 1").is_none());
    }

    #[test]
    fn the_environment_range_is_fields_50_and_51() {
        let fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        let text = format!("42 (a b) {}", fields.join(" "));
        let stat = parse_stat(&text).unwrap();
        assert_eq!(stat.start_time, 22);
        assert_eq!(stat.environment, Some((50, 51)));
    }

    #[test]
    fn this_process_read_once_is_this_process_read_again() {
        let first = Process::current().unwrap();
        assert_eq!(Process::current().unwrap(), first);
        assert_eq!(Process::of(std::process::id()).unwrap(), first);
        let (start, end) = Process::own_environment().unwrap();
        assert!(start < end);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = Process::current().unwrap();
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        let reused = Process {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }

    #[test]
    fn a_reaped_process_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let process = Process::of(child.id()).unwrap();
        child.wait().unwrap();
        assert!(!process.is_alive());
    }

    #[test]
    fn a_zombie_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let process = Process::of(child.id()).unwrap();
        // Not reaped yet: wait until it has exited and is a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process.is_alive() {
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().unwrap();
    }
}
